package keyring

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func TestBundled(t *testing.T) {
	tests := []struct {
		keyring, fingerprint, algorithm string
	}{
		// The Ed25519 stable release keys of bookworm and trixie, which
		// x/crypto/openpgp cannot read.
		{Debian, "4D64FEC119C2029067D6E791F8D2585B8783D481", "ed25519"},
		{Debian, "41587F7DB8C774BCCF131416762F67A0B2C39DE4", "ed25519"},
		{Debian, "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8", "rsa4096"},
		// The key behind the seed's NO_PUBKEY 871920D1991BC93C.
		{Ubuntu, "F6ECB3762474EDA9D21B7022871920D1991BC93C", "rsa4096"},
	}
	for _, tt := range tests {
		t.Run(tt.fingerprint, func(t *testing.T) {
			k, err := Named(tt.keyring)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range k.Keys() {
				if key.Fingerprint == tt.fingerprint {
					if key.Algorithm != tt.algorithm || key.Keyring != tt.keyring || key.UserID == "" || key.Created.IsZero() {
						t.Errorf("key %+v", key)
					}
					return
				}
			}
			t.Fatalf("keyring %s lacks %s", tt.keyring, tt.fingerprint)
		})
	}
	if ForOrigin("Debian").Name != Debian || ForOrigin("ubuntu").Name != Ubuntu || ForOrigin("Devuan") != nil {
		t.Error("ForOrigin chose wrongly")
	}
	if _, err := Named("nope"); err == nil || !strings.Contains(err.Error(), "have debian, ubuntu") {
		t.Errorf("Named(nope) err = %v", err)
	}
}

func TestLoadArmoredAndBinary(t *testing.T) {
	ub, _ := Named(Ubuntu)
	dir := t.TempDir()
	bin := filepath.Join(dir, "k.gpg")
	os.WriteFile(bin, ub.Raw, 0o644)
	var arm bytes.Buffer
	w, _ := armor.Encode(&arm, "PGP PUBLIC KEY BLOCK", nil)
	w.Write(ub.Raw)
	w.Close()
	asc := filepath.Join(dir, "k.asc")
	os.WriteFile(asc, append([]byte("comment line\n"), arm.Bytes()...), 0o644)
	for _, path := range []string{bin, asc, "ubuntu"} {
		k, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got, want := strings.Join(k.Fingerprints(), ","), strings.Join(ub.Fingerprints(), ","); got != want {
			t.Errorf("%s: fingerprints %s, want %s", path, got, want)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not a key"), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad keyring: err = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing keyring accepted")
	}
}

func TestMerge(t *testing.T) {
	d, _ := Named(Debian)
	u, _ := Named(Ubuntu)
	m := Merge("both", d, u)
	if len(m.Keys()) != len(d.Keys())+len(u.Keys()) {
		t.Fatalf("merged %d keys", len(m.Keys()))
	}
	if len(m.Digest()) != 64 {
		t.Fatal("no digest")
	}
}

func FuzzRead(f *testing.F) {
	u, _ := Named(Ubuntu)
	f.Add(u.Raw[:200])
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Read(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		if len(k.Keys()) == 0 {
			t.Fatal("accepted a keyring without keys")
		}
	})
}

// TestLoadDir: a directory of keyrings gives its *.gpg and *.asc files,
// as apt reads trusted.gpg.d; other files are not read, and a directory
// without any, or with a bad one, is an error naming it.
func TestLoadDir(t *testing.T) {
	ub, _ := Named(Ubuntu)
	deb, _ := Named(Debian)
	tests := []struct {
		name  string
		files map[string][]byte
		want  int
		fails bool
	}{
		{"two keyrings and a README", map[string][]byte{"a.gpg": ub.Raw, "b.gpg": deb.Raw, "README": []byte("x")}, 2, false},
		{"no keyring", map[string][]byte{"README": []byte("x"), "k.pgp.bak": ub.Raw}, 0, true},
		{"a bad keyring", map[string][]byte{"a.gpg": ub.Raw, "bad.asc": []byte("not a key")}, 0, true},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for n, b := range tt.files {
			os.WriteFile(filepath.Join(dir, n), b, 0o644)
		}
		ks, err := LoadDir(dir)
		if (err != nil) != tt.fails || len(ks) != tt.want {
			t.Errorf("%s: %d keyrings, %v", tt.name, len(ks), err)
		}
		if err != nil && !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: the error does not name the directory: %v", tt.name, err)
		}
	}
}
