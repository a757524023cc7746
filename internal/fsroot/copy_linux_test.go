package fsroot

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCopyTree copies trees of every kind of entry and checks that the
// copy's tarball is the source's, byte for byte, and that the copy shares
// no inode with the source.
func TestCopyTree(t *testing.T) {
	root := os.Geteuid() == 0
	tests := []struct {
		name string
		make func(t *testing.T, dir string)
	}{
		{"files, links and modes", func(t *testing.T, dir string) {
			must(t, os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
			must(t, os.WriteFile(filepath.Join(dir, "usr/bin/a"), bytes.Repeat([]byte("a"), 70000), 0o755))
			must(t, os.Link(filepath.Join(dir, "usr/bin/a"), filepath.Join(dir, "usr/bin/b")))
			must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o640))
			must(t, os.Symlink("/etc/shadow", filepath.Join(dir, "escape")))
			must(t, os.Symlink("usr/bin", filepath.Join(dir, "bin")))
			must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
			must(t, os.Mkdir(filepath.Join(dir, "private"), 0o700))
			must(t, os.Chmod(filepath.Join(dir, "private"), 0o1750))
		}},
		{"owners, set-id, devices and capabilities", func(t *testing.T, dir string) {
			if !root {
				t.Skip("needs root for owners and device nodes")
			}
			must(t, os.WriteFile(filepath.Join(dir, "su"), []byte("x"), 0o755))
			must(t, os.Chown(filepath.Join(dir, "su"), 0, 42))
			must(t, os.Chmod(filepath.Join(dir, "su"), os.ModeSetuid|os.ModeSetgid|0o755))
			must(t, os.Mkdir(filepath.Join(dir, "home"), 0o755))
			must(t, os.Lchown(filepath.Join(dir, "home"), 1234, 1234))
			must(t, os.Symlink("nowhere", filepath.Join(dir, "home/link")))
			must(t, os.Lchown(filepath.Join(dir, "home/link"), 1234, 99))
			must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
			must(t, os.WriteFile(filepath.Join(dir, "ping"), []byte("ping"), 0o755))
			// cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
			capv := []byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			if err := unix.Setxattr(filepath.Join(dir, "ping"), "security.capability", capv, 0); err != nil {
				t.Skipf("this filesystem takes no file capabilities: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			tt.make(t, src)
			r, err := Open(src)
			must(t, err)
			defer r.Close()
			dst := filepath.Join(t.TempDir(), "copy")
			st, err := r.CopyTree(context.Background(), dst)
			must(t, err)
			c, err := Open(dst)
			must(t, err)
			defer c.Close()
			var a, b bytes.Buffer
			must(t, r.WriteTar(&a, ".", TarOptions{}))
			must(t, c.WriteTar(&b, ".", TarOptions{}))
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("the copy differs from the source:\nsource %q\ncopy   %q", tarLines(t, &a, nil), tarLines(t, &b, nil))
			}
			// No inode is shared: a write to the copy stays there.
			err = filepathWalk(dst, func(p string, fi os.FileInfo) {
				rel, err := filepath.Rel(dst, p)
				must(t, err)
				sp := filepath.Join(src, rel)
				var x, y unix.Stat_t
				must(t, unix.Lstat(p, &x))
				must(t, unix.Lstat(sp, &y))
				if x.Dev == y.Dev && x.Ino == y.Ino {
					t.Errorf("%s shares an inode with the source", p)
				}
			})
			must(t, err)
			if st.Entries == 0 || st.Bytes < 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestCopyTreeRefusesExisting(t *testing.T) {
	src := t.TempDir()
	r, err := Open(src)
	must(t, err)
	defer r.Close()
	if _, err := r.CopyTree(context.Background(), t.TempDir()); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("copying onto an existing directory: %v, want it refused", err)
	}
}

func filepathWalk(dir string, fn func(string, os.FileInfo)) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			fn(p, fi)
		}
		return nil
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCopyTreeCancelled stops a copy of a large file within the bound a
// user waits after Ctrl-C, with the context's error, and a context
// cancelled before the copy makes nothing but dst.
func TestCopyTreeCancelled(t *testing.T) {
	for _, c := range []struct {
		name  string
		after time.Duration // cancel this long after the start; <0: before
	}{
		{"before", -1},
		{"during a large file", 200 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			f, err := os.Create(filepath.Join(src, "big"))
			if err != nil {
				t.Fatal(err)
			}
			// Sparse: cheap to make, and copied as 8 GiB of zeros
			// without reflinks, many seconds on any disk.
			if err := f.Truncate(8 << 30); err != nil {
				t.Fatal(err)
			}
			f.Close()
			r, err := Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.after < 0 {
				cancel()
			} else {
				time.AfterFunc(c.after, cancel)
			}
			dst := filepath.Join(t.TempDir(), "copy")
			start := time.Now()
			st, err := r.CopyTree(ctx, dst)
			took := time.Since(start)
			if st.Reflinked > 0 {
				t.Skip("the filesystem shares extents: the copy is instant and has nothing to stop")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("CopyTree = %v, want context.Canceled", err)
			}
			if took > c.after+2*time.Second {
				t.Fatalf("CopyTree returned %v after the cancel, want within 2 s", took-c.after)
			}
		})
	}
}
