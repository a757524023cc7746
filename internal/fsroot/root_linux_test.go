package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// hostile makes a root whose symlinks point out of it in every way an
// image can, with a file outside it that must never be read or written.
func hostile(t *testing.T) (root *Root, dir, outside string) {
	t.Helper()
	dir = t.TempDir()
	outside = filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("outside"), 0o600)
	mk := func(p string) { os.MkdirAll(filepath.Join(dir, p), 0o755) }
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc")
	mk("usr/bin")
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	link(outside, "etc/abs")                     // absolute, to the host
	link("../../../../../../"+outside, "etc/up") // relative, climbing out
	link(filepath.Dir(outside), "hostdir")       // a directory on the host
	link("usr/bin", "bin")                       // merged /usr
	link("loop", "loop")                         // ELOOP
	link("/etc/passwd", "etc/alias")             // absolute, inside the root
	if err := syscall.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir, outside
}

// TestReadsStayInside: reads resolve every symlink inside the root and
// take regular files only, up to a cap.
func TestReadsStayInside(t *testing.T) {
	r, _, _ := hostile(t)
	tests := []struct {
		path string
		want string
		err  error
	}{
		{"etc/passwd", "root:x:0:0::/root:/bin/sh\n", nil},
		{"etc/alias", "root:x:0:0::/root:/bin/sh\n", nil}, // /etc/passwd of the root
		{"etc/abs", "", os.ErrNotExist},                   // the host's file is not there
		{"etc/up", "", os.ErrNotExist},
		{"hostdir/secret", "", os.ErrNotExist},
		{"loop", "", syscall.ELOOP},
		{"etc/fifo", "", ErrNotRegular},
		{"etc", "", ErrNotRegular},
	}
	for _, tt := range tests {
		b, err := r.ReadFile(tt.path, 1<<20)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: err = %v, want %v", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil || string(b) != tt.want {
			t.Errorf("%s: %q, %v", tt.path, b, err)
		}
	}
	if _, err := r.ReadFile("etc/passwd", 4); !errors.Is(err, ErrTooLarge) {
		t.Errorf("cap: err = %v", err)
	}
	if names, err := r.ReadDir("bin/"); err != nil || names != nil && len(names) != 0 {
		t.Errorf("ReadDir through bin: %v %v", names, err)
	}
	if _, err := r.ReadDir("hostdir"); err == nil {
		t.Error("ReadDir followed a symlink to the host")
	}
	if got := r.Glob("etc/*"); !slices.Contains(got, "etc/passwd") || !slices.Contains(got, "etc/fifo") {
		t.Errorf("Glob(etc/*) = %v", got)
	}
	if l, err := r.Readlink("etc/abs"); err != nil || !strings.HasSuffix(l, "secret") {
		t.Errorf("Readlink: %q %v", l, err)
	}
}

// TestWritesStayInside: writes replace a symlink rather than follow it,
// and never create anything outside the root.
func TestWritesStayInside(t *testing.T) {
	r, dir, outside := hostile(t)
	for _, p := range []string{"etc/abs", "etc/up"} {
		if err := r.WriteFile(p, strings.NewReader("new"), 3, Meta{Mode: 0o644}); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, p)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: the symlink was not replaced by a file", p)
		}
	}
	// A directory made through a link to the host is refused.
	if err := r.MkdirAll("hostdir/made", 0o755); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "made")); err == nil {
			t.Error("MkdirAll made a directory on the host")
		}
	}
	if err := r.WriteFile("hostdir/planted", strings.NewReader("x"), 1, Meta{Mode: 0o644}); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "planted")); err == nil {
			t.Error("WriteFile wrote through a symlink to the host")
		}
	}
	// Merged /usr: writes below bin go to usr/bin.
	if err := r.WriteFile("bin/sh", strings.NewReader("sh"), 2, Meta{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/sh")); err != nil {
		t.Error("bin/sh was not written to usr/bin/sh")
	}
	// A hard link to a file outside is impossible: the old name is
	// resolved inside too.
	if err := r.Link("etc/abs", "etc/hard"); err == nil {
		if b, _ := os.ReadFile(filepath.Join(dir, "etc/hard")); string(b) == "outside" {
			t.Error("a hard link reached the host's file")
		}
	}
	if err := r.Rename("etc/passwd", "etc/abs"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "outside" {
		t.Errorf("the host's file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(outside), "made")); err == nil {
		t.Error("something was made on the host")
	}
}

// TestDevicesNeedRoot: as non-root, making a device node fails with a
// permission error; as root it is made inside the root.
func TestDevicesNeedRoot(t *testing.T) {
	r, dir, _ := hostile(t)
	err := r.Mknod("etc/null", syscall.S_IFCHR|0o666, 1<<8|3, Meta{Mode: 0o666})
	if os.Geteuid() != 0 {
		if !errors.Is(err, os.ErrPermission) {
			t.Fatalf("non-root mknod: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "etc/null")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("etc/null: %v %v", fi, err)
	}
}

// TestReadHostFile: nroot's own files are read whole up to the cap; a
// symlink, a FIFO (without blocking), a directory, a missing file and a
// file over the cap are refused, each with its sentinel.
func TestReadHostFile(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "history"), []byte("1 2 3\n"), 0o644))
	must(os.Symlink("history", filepath.Join(dir, "link")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(os.Mkdir(filepath.Join(dir, "dir"), 0o755))
	tests := []struct {
		name string
		max  int64
		want string
		err  error
	}{
		{"history", 6, "1 2 3\n", nil},
		{"history", 5, "", ErrTooLarge},
		{"link", 64, "", ErrNotRegular},
		{"fifo", 64, "", ErrNotRegular},
		{"dir", 64, "", ErrNotRegular},
		{"missing", 64, "", os.ErrNotExist},
	}
	for _, tt := range tests {
		b, err := ReadHostFile(filepath.Join(dir, tt.name), tt.max)
		if tt.err == nil && (err != nil || string(b) != tt.want) {
			t.Errorf("%s: %q, %v; want %q", tt.name, b, err, tt.want)
		}
		if tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("%s (max %d): %v; want %v", tt.name, tt.max, err, tt.err)
		}
	}
}
