package identity

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/e2e/testenv"
	"nroot/node/initrd"
	"nroot/serve/inventory"
)

// TestEnsureKeepsTheIdentity: the first call makes keys and a
// machine-id, later calls read the same back (a changed hostname is
// recorded), and OpenSSH's own ssh-keygen reads the keys with the
// fingerprints nroot reports.
func TestEnsureKeepsTheIdentity(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "ids")}
	first, err := s.Ensure("node01", "node01")
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || len(first.MachineID) != 32 || len(first.Keys) != len(KeyTypes) {
		t.Fatalf("first: %+v", first)
	}
	again, err := s.Ensure("node01", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.MachineID != first.MachineID || again.Hostname != "web1" {
		t.Errorf("again: %+v", again)
	}
	for i, k := range again.Keys {
		if k.Fingerprint != first.Keys[i].Fingerprint || !bytes.Equal(k.Private, first.Keys[i].Private) {
			t.Errorf("%s key changed", k.Type)
		}
	}
	other, err := s.Ensure("node02", "node02")
	if err != nil {
		t.Fatal(err)
	}
	if other.MachineID == first.MachineID || other.Keys[0].Fingerprint == first.Keys[0].Fingerprint {
		t.Error("two nodes share an identity")
	}
	keygen := testenv.Command(t, "ssh-keygen")
	for _, k := range first.Keys {
		key := filepath.Join(s.Dir, "node01", "ssh_host_"+k.Type+"_key")
		out, err := exec.Command(keygen, "-l", "-f", key).Output()
		if err != nil || !strings.Contains(string(out), k.Fingerprint) {
			t.Errorf("ssh-keygen -l %s: %v %s, want %s", key, err, out, k.Fingerprint)
		}
		// -y derives the public key from the private one.
		out, err = exec.Command(keygen, "-y", "-f", key).Output()
		if err != nil || !strings.HasPrefix(k.Public, strings.TrimSpace(string(out))) {
			t.Errorf("ssh-keygen -y %s: %v %s", key, err, out)
		}
		if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", key, fi.Mode().Perm())
		}
	}
}

func TestStoreRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string)
	}{
		{"a store others can read", func(dir string) { os.MkdirAll(dir, 0o755); os.Chmod(dir, 0o755) }},
		{"a key that is a symlink", func(dir string) {
			(Store{Dir: dir}).Ensure("n1", "n1")
			os.Remove(filepath.Join(dir, "n1/ssh_host_rsa_key"))
			os.Symlink("/etc/passwd", filepath.Join(dir, "n1/ssh_host_rsa_key"))
		}},
		{"a public key of another pair", func(dir string) {
			(Store{Dir: dir}).Ensure("n1", "n1")
			(Store{Dir: dir}).Ensure("n2", "n2")
			b, _ := os.ReadFile(filepath.Join(dir, "n2/ssh_host_ed25519_key.pub"))
			os.WriteFile(filepath.Join(dir, "n1/ssh_host_ed25519_key.pub"), b, 0o600)
		}},
		{"a machine-id that is not one", func(dir string) {
			(Store{Dir: dir}).Ensure("n1", "n1")
			os.WriteFile(filepath.Join(dir, "n1/machine-id"), []byte("../../x\n"), 0o600)
		}},
		{"a key file too large", func(dir string) {
			(Store{Dir: dir}).Ensure("n1", "n1")
			os.WriteFile(filepath.Join(dir, "n1/ssh_host_ecdsa_key"), make([]byte, maxFile+1), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ids")
			tt.setup(dir)
			if id, err := (Store{Dir: dir}).Ensure("n1", "n1"); err == nil {
				t.Fatalf("took %+v", id)
			}
		})
	}
	if _, err := (Store{Dir: t.TempDir() + "/x"}).Ensure("../n1", "n1"); err == nil {
		t.Error("took a name that leaves the store")
	}
	dir := filepath.Join(t.TempDir(), "ids")
	os.MkdirAll(dir, 0o755)
	if _, err := (Store{Dir: dir}).Ensure("n1", "n1"); !errors.Is(err, ErrUnsafeStore) {
		t.Errorf("a readable store: %v, want ErrUnsafeStore", err)
	}
}

// TestSegment: the segment is one newc archive, read back by nroot's
// reader, holding the files the dracut hook copies, and the same
// identity always gives the same bytes.
func TestSegment(t *testing.T) {
	id, err := (Store{Dir: filepath.Join(t.TempDir(), "ids")}).Ensure("node01", "node01")
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := id.WriteSegment(&a); err != nil {
		t.Fatal(err)
	}
	id.WriteSegment(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two segments of one identity differ")
	}
	r := initrd.NewReader(bytes.NewReader(a.Bytes()))
	got := map[string]string{}
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		names = append(names, h.Name)
		got[h.Name] = string(body)
		if h.UID != 0 || h.GID != 0 {
			t.Errorf("%s owned by %d:%d", h.Name, h.UID, h.GID)
		}
		if strings.HasSuffix(h.Name, "_key") && h.Mode&0o077 != 0 {
			t.Errorf("%s has mode %o", h.Name, h.Mode)
		}
	}
	want := []string{"nroot-identity", "nroot-identity/etc", "nroot-identity/etc/hostname", "nroot-identity/etc/machine-id", "nroot-identity/etc/ssh"}
	for _, k := range KeyTypes {
		want = append(want, "nroot-identity/etc/ssh/ssh_host_"+k+"_key", "nroot-identity/etc/ssh/ssh_host_"+k+"_key.pub")
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("entries %q\nwant %q", names, want)
	}
	if got["nroot-identity/etc/machine-id"] != id.MachineID+"\n" || got["nroot-identity/etc/hostname"] != "node01\n" {
		t.Errorf("machine-id %q, hostname %q", got["nroot-identity/etc/machine-id"], got["nroot-identity/etc/hostname"])
	}
}

// TestKnownHosts: the @cert-authority line names the domains and host
// names of the nodes with ssh-host-cert alone, never a bare *.
func TestKnownHosts(t *testing.T) {
	ca, err := Store{Dir: filepath.Join(t.TempDir(), "state")}.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	cert := []string{"ssh-host-cert"}
	for _, c := range []struct {
		name    string
		nodes   []inventory.Node
		pattern string // "" for no line
	}{
		{"no domain: the host names", []inventory.Node{{Hostname: "a", Overlays: cert}, {Hostname: "b", Overlays: []string{"hosts"}}, {Hostname: "c", Overlays: cert}}, "a,c"},
		{"a domain, and the bare names", []inventory.Node{{Hostname: "a", Overlays: cert, Vars: map[string]string{"domain": "cluster.test"}}, {Hostname: "b", Overlays: cert, Vars: map[string]string{"domain": "cluster.test"}}}, "*.cluster.test,a,b"},
		{"two domains", []inventory.Node{{Hostname: "a", Overlays: cert, Vars: map[string]string{"domain": "x.test"}}, {Hostname: "b", Overlays: cert, Vars: map[string]string{"domain": "y.test"}}}, "*.x.test,*.y.test,a,b"},
		{"no node with the overlay", []inventory.Node{{Hostname: "a", Vars: map[string]string{"domain": "x.test"}}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ca.KnownHosts(c.nodes)
			want := ""
			if c.pattern != "" {
				want = "@cert-authority " + c.pattern + " " + strings.TrimSuffix(ca.Public, "\n")
			}
			if got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}
