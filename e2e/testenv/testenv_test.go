package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDebootstrapUbuntuMirror reads a script shaped like debootstrap's
// gutsy: old-releases first, then the archive, then ports.
func TestDebootstrapUbuntuMirror(t *testing.T) {
	script := `case $ARCH in
  amd64|i386)
	case $SUITE in
	  gutsy|hardy)
	default_mirror http://old-releases.example/ubuntu
	  ;;
	  *)
	default_mirror http://archive.example/ubuntu
	;;
	esac
	;;
  *)
	default_mirror http://ports.example/ubuntu-ports
	;;
esac
`
	path := filepath.Join(t.TempDir(), "gutsy")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ arch, want string }{
		{"amd64", "http://archive.example/ubuntu"},
		{"i386", "http://archive.example/ubuntu"},
		{"arm64", "http://ports.example/ubuntu-ports"},
		{"riscv64", "http://ports.example/ubuntu-ports"},
	}
	for _, tt := range tests {
		got, err := debootstrapUbuntuMirror(path, tt.arch)
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.arch, got, err, tt.want)
		}
	}
	if _, err := debootstrapUbuntuMirror(filepath.Join(t.TempDir(), "none"), "amd64"); err == nil {
		t.Error("a missing script gave a mirror")
	}
}

// TestUbuntuMirrorFromHost reads the real script that make deps installs.
func TestUbuntuMirrorFromHost(t *testing.T) {
	if _, err := os.Stat(DebootstrapUbuntuScript); err != nil {
		Missing(t, "%s: %v (make deps installs debootstrap)", DebootstrapUbuntuScript, err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if u, err := debootstrapUbuntuMirror(DebootstrapUbuntuScript, arch); err != nil || u == "" {
			t.Errorf("%s: %q, %v", arch, u, err)
		}
	}
}
