package apt

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nroot/format/keyring"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "inrelease", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyInReleaseFixtures(t *testing.T) {
	tests := []struct {
		file     string
		keyring  string
		codename string
		signer   string // one of the keys that may sign it
	}{
		{"debian-bookworm-InRelease", keyring.Debian, "bookworm", ""},
		{"debian-trixie-InRelease", keyring.Debian, "trixie", ""},
		{"ubuntu-jammy-InRelease", keyring.Ubuntu, "jammy", "F6ECB3762474EDA9D21B7022871920D1991BC93C"},
		{"ubuntu-noble-InRelease", keyring.Ubuntu, "noble", "F6ECB3762474EDA9D21B7022871920D1991BC93C"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readFixture(t, tt.file)
			kr, err := chooseKeyring(nil, data)
			if err != nil {
				t.Fatal(err)
			}
			if kr.Name != tt.keyring {
				t.Fatalf("chose keyring %s, want %s", kr.Name, tt.keyring)
			}
			signed, err := VerifyInRelease(data, kr, time.Now())
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tt.signer != "" && signed.Fingerprint != tt.signer {
				t.Errorf("signer %s, want %s", signed.Fingerprint, tt.signer)
			}
			if !strings.Contains(strings.Join(kr.Fingerprints(), " "), signed.Fingerprint) {
				t.Errorf("signer %s is not in keyring %s", signed.Fingerprint, kr.Name)
			}
			rel, err := ParseRelease(signed.Text)
			if err != nil {
				t.Fatal(err)
			}
			if rel.Codename != tt.codename {
				t.Errorf("codename %q, want %q", rel.Codename, tt.codename)
			}
			if len(rel.Files) < 50 {
				t.Errorf("only %d SHA256 entries", len(rel.Files))
			}
			if err := rel.Check(CheckOptions{Suite: tt.codename}); err != nil {
				t.Errorf("check: %v", err)
			}
		})
	}
}

func TestVerifyInReleaseRefuses(t *testing.T) {
	trixie := readFixture(t, "debian-trixie-InRelease")
	noble := readFixture(t, "ubuntu-noble-InRelease")
	debian, _ := keyring.Named(keyring.Debian)
	flip := func(b []byte, marker string) []byte {
		c := bytes.Clone(b)
		i := bytes.Index(c, []byte(marker))
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name    string
		data    []byte
		ring    *keyring.Keyring
		wantErr string
	}{
		{"flipped byte in signed text", flip(trixie, "Codename: trixie"), debian, "bad signature"},
		{"flipped byte in a hash", flip(trixie, "main/binary-amd64/Packages.xz"), debian, "bad signature"},
		{"wrong keyring", noble, debian, "unknown key 871920D1991BC93C"},
		{"unsigned text appended", append(bytes.Clone(trixie), []byte("\nOrigin: Evil\n")...), debian, "data after the signature"},
		{"text before the message", append([]byte("Origin: Evil\n"), trixie...), debian, "not a clearsigned message"},
		{"not signed at all", []byte("Origin: Debian\nSuite: stable\n"), debian, "not a clearsigned message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyInRelease(tt.data, tt.ring, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnknownKeyNamesTheKey(t *testing.T) {
	_, err := VerifyInRelease(readFixture(t, "ubuntu-jammy-InRelease"), mustNamed(t, keyring.Debian), time.Now())
	var uk *UnknownKeyError
	if !errors.As(err, &uk) {
		t.Fatalf("err = %v, want UnknownKeyError", err)
	}
	if !strings.Contains(strings.Join(uk.KeyIDs, " "), "871920D1991BC93C") {
		t.Errorf("key IDs %v do not name 871920D1991BC93C", uk.KeyIDs)
	}
}

func mustNamed(t testing.TB, name string) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const syntheticRelease = `Origin: Test
Label: Test
Suite: stable
Codename: testing-nroot
Date: %s
Valid-Until: %s
Architectures: amd64
Components: main
SHA256:
 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages
`

func TestValidUntil(t *testing.T) {
	s := newTestSigner(t, "nroot-test")
	now := time.Now().UTC()
	text := []byte(fmt.Sprintf(syntheticRelease, now.Add(-48*time.Hour).Format(time.RFC1123), now.Add(-24*time.Hour).Format(time.RFC1123)))
	signed, err := VerifyInRelease(s.clearsign(t, text), s.ring, now)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := ParseRelease(signed.Text)
	if err != nil {
		t.Fatal(err)
	}
	err = rel.Check(CheckOptions{Suite: "stable", Now: now})
	if err == nil || !strings.Contains(err.Error(), "--no-check-valid-until") {
		t.Fatalf("expired release: err = %v", err)
	}
	if err := rel.Check(CheckOptions{Suite: "stable", Now: now, NoCheckValidUntil: true}); err != nil {
		t.Fatalf("with NoCheckValidUntil: %v", err)
	}
	if err := rel.Check(CheckOptions{Suite: "bookworm", Now: now, NoCheckValidUntil: true}); err == nil {
		t.Fatal("suite mismatch accepted")
	}
	// The detached form verifies the same way.
	if _, err := VerifyRelease(text, s.detach(t, text), s.ring, now); err != nil {
		t.Fatalf("detached: %v", err)
	}
	if _, err := VerifyRelease(append(bytes.Clone(text), ' '), s.detach(t, text), s.ring, now); err == nil {
		t.Fatal("detached signature accepted for altered text")
	}
}

var fixedNow = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
