package node

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostSecret is a file outside every image that a hostile image tries to
// make nroot read back into itself.
func hostSecret(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(p, []byte("root:HOST-SECRET-HASH:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// within fails the test when fn does not return in time: a FIFO or a
// device in the image must never make nroot hang or read forever.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still running after 10s (a FIFO or device in the image was read)", what)
	}
}

// TestHostileImagePaths builds images whose files point at the host, at a
// FIFO or at an endless device, and checks that the node stage and its
// checks read none of them: the image's paths are resolved inside it,
// only regular files are read, and never more than a cap.
func TestHostileImagePaths(t *testing.T) {
	secret := hostSecret(t)
	type special int
	const (
		link special = iota
		fifo
		zero
	)
	tests := []struct {
		name string
		path string
		kind special
	}{
		{"fstab to the host's shadow", "etc/fstab", link},
		{"hostname to the host's shadow", "etc/hostname", link},
		{"machine-id to the host's shadow", "etc/machine-id", link},
		{"cmdline to the host's shadow", "boot/nroot-cmdline", link},
		{"fstab a FIFO", "etc/fstab", fifo},
		{"machine-id a FIFO", "etc/machine-id", fifo},
		{"hostname a FIFO", "etc/hostname", fifo},
		{"dpkg arch a FIFO", "var/lib/dpkg/arch", fifo},
		{"os-release a FIFO", "etc/os-release", fifo},
		{"fstab the zero device", "etc/fstab", zero},
		{"dpkg status the zero device", "var/lib/dpkg/status", zero},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fixture(t, map[string]string{"var/lib/dpkg/status": "Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\n", "etc/": ""})
			p := filepath.Join(dir, tt.path)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.Remove(p)
			switch tt.kind {
			case link:
				if err := os.Symlink(secret, p); err != nil {
					t.Fatal(err)
				}
			case fifo:
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			case zero:
				if os.Geteuid() != 0 {
					t.Skip("making a device node needs root")
				}
				if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
					t.Skipf("mknod: %v", err)
				}
			}
			r := open(t, dir)
			var out []Check
			within(t, "Checks", func() { out = checks(r) })
			for _, c := range out {
				if strings.Contains(c.Detail, "HOST-SECRET") {
					t.Errorf("check %s printed the host's file: %s", c.Name, c.Detail)
				}
			}
			within(t, "defaultKernel", func() { defaultKernel(r) })
			within(t, "writeIdentity", func() {
				if err := writeIdentity(r, Options{}); err != nil {
					t.Logf("writeIdentity: %v", err)
				}
			})
			filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), "HOST-SECRET") {
						t.Errorf("the host's file was copied into the image at %s", p)
					}
				}
				return nil
			})
			if b, _ := os.ReadFile(secret); !strings.Contains(string(b), "HOST-SECRET") {
				t.Errorf("the host's file was changed: %q", b)
			}
		})
	}
}
