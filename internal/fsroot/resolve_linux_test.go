package fsroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestResolveInRootMatchesOpenat2: the user-space resolver, used where
// openat2 is missing, opens what the kernel's RESOLVE_IN_ROOT opens, or
// fails where it fails, for every path of a tree built to escape.
func TestResolveInRootMatchesOpenat2(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "etc/alternatives"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/sh"), []byte("sh"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root"), 0o644))
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("no"), 0o600))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	for link, target := range map[string]string{
		"bin":                  "usr/bin",
		"abs":                  "/usr/bin/sh",
		"etc/alternatives/sh":  "/bin/sh",
		"up":                   "../../../../..",
		"escape":               "../../../../../" + outside + "/secret",
		"absout":               outside,
		"loop1":                "loop2",
		"loop2":                "loop1",
		"dangling":             "/nowhere/at/all",
		"usr/bin/self":         ".",
		"usr/bin/parent":       "..",
		"etc/file-then-more":   "/etc/passwd/x",
		"proc-self":            "/proc/self/root",
		"etc/alternatives/cwd": "/proc/self/cwd",
	} {
		must(os.Symlink(target, filepath.Join(dir, link)))
	}
	r, err := Open(dir)
	must(err)
	defer r.Close()
	paths := []string{".", "", "usr", "usr/bin/sh", "bin/sh", "bin/../etc/passwd", "abs", "etc/alternatives/sh",
		"up", "up/etc/passwd", "../../etc/passwd", "escape", "absout", "absout/secret", "loop1", "dangling",
		"usr/bin/self/self/sh", "usr/bin/parent/parent/parent/etc/passwd", "etc/file-then-more", "etc/passwd/",
		"usr/bin/", "usr/bin/.", "fifo", "proc-self", "etc/alternatives/cwd", "usr/bin/sh/..", "missing/x"}
	flagSets := map[string]uint64{"path": unix.O_PATH, "dir": unix.O_PATH | unix.O_DIRECTORY,
		"read": unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY, "readdir": unix.O_RDONLY | unix.O_DIRECTORY}
	for _, p := range paths {
		for name, flags := range flagSets {
			kfd, kerr := unix.Openat2(r.fd, p, how(flags))
			if errors.Is(kerr, unix.ENOSYS) {
				t.Skip("openat2 is missing here: nothing to compare with")
			}
			ufd, uerr := r.resolveInRoot(p, flags|unix.O_CLOEXEC)
			if (kerr == nil) != (uerr == nil) {
				t.Errorf("%s %q: openat2 %v, resolveInRoot %v", name, p, kerr, uerr)
			} else if kerr == nil {
				var ks, us unix.Stat_t
				must(unix.Fstat(kfd, &ks))
				must(unix.Fstat(ufd, &us))
				if ks.Dev != us.Dev || ks.Ino != us.Ino {
					t.Errorf("%s %q: openat2 and resolveInRoot opened different files", name, p)
				}
			}
			if kfd >= 0 {
				unix.Close(kfd)
			}
			if ufd >= 0 {
				unix.Close(ufd)
			}
		}
	}
}

// TestWithoutOpenat2: with openat2 taken as missing, a root reads and
// writes through its symlinks as before and still refuses an escape.
func TestWithoutOpenat2(t *testing.T) {
	noOpenat2.Store(true)
	defer noOpenat2.Store(false)
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink("usr/bin", filepath.Join(dir, "bin"))
	os.Symlink(outside, filepath.Join(dir, "out"))
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.MkdirAll("bin/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	// out points at a directory outside: inside the root, that path does
	// not exist, and then it is made there.
	if err := r.WriteFile("out/x", strings.NewReader("data"), 4, Meta{Mode: 0o644}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteFile(out/x) before %s exists in the root: %v", outside, err)
	}
	if err := r.MkdirAll(strings.TrimPrefix(outside, "/"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("out/x", strings.NewReader("data"), 4, Meta{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, outside, "x")); err != nil {
		t.Fatalf("out/x is not in the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("a write through out/ landed outside the root")
	}
	if b, err := r.ReadFile("out/x", 10); err != nil || string(b) != "data" {
		t.Fatalf("ReadFile(out/x) = %q, %v", b, err)
	}
	if !r.IsDir("bin/sub") || !r.IsDir("usr/bin/sub") {
		t.Fatal("bin/sub was not made through the symlink")
	}
}
