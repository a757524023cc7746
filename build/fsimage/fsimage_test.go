package fsimage_test

import (
	"bytes"
	"context"
	"errors"
	"nroot/internal/usage"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nroot/build/fsimage"
	"nroot/e2e/testenv"
	"nroot/internal/fsroot"
	"nroot/verify/nfsclient"
)

// tree makes a small root with every kind of entry an image holds: files
// with owners, a hard link, a symlink, a FIFO, a device, a setuid
// program, a file capability, and an mtime in the past.
func tree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"etc", "usr/bin", "dev", "proc", "var/empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/hostname", "node\n", 0o644)
	write("etc/shadow", "root:*:1::::::\n", 0o640)
	write("usr/bin/ping", strings.Repeat("\x7fELF ping ", 40000), 0o755)
	write("usr/bin/su", "su", 0o4755)
	os.Chown(filepath.Join(root, "etc/shadow"), 0, 42)
	os.Link(filepath.Join(root, "usr/bin/ping"), filepath.Join(root, "usr/bin/ping6"))
	os.Symlink("../usr/bin/ping", filepath.Join(root, "etc/ping"))
	unix.Mkfifo(filepath.Join(root, "var/fifo"), 0o600)
	unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	// cap_net_raw+ep, as ping has it.
	unix.Lsetxattr(filepath.Join(root, "usr/bin/ping"), "security.capability", []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0)
	old := time.Date(2021, 5, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "etc/hostname"), old, old)
	return root
}

func tool(t *testing.T, f fsimage.Format) {
	testenv.Command(t, map[fsimage.Format]string{fsimage.Squashfs: "mksquashfs", fsimage.EROFS: "mkfs.erofs"}[f])
}

// extract unpacks an image with its own format's tools.
func extract(t *testing.T, f fsimage.Format, img, dir string) {
	t.Helper()
	var cmd *exec.Cmd
	if f == fsimage.Squashfs {
		cmd = exec.Command("unsquashfs", "-q", "-n", "-d", dir, img)
	} else {
		cmd = exec.Command("fsck.erofs", "--extract="+dir, img)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

func TestWriteHoldsTheTree(t *testing.T) {
	testenv.Root(t)
	for _, f := range fsimage.Formats {
		t.Run(string(f), func(t *testing.T) {
			tool(t, f)
			root := tree(t)
			img := filepath.Join(t.TempDir(), "root."+string(f))
			info, err := fsimage.Write(context.Background(), root, img, fsimage.Options{Format: f})
			if err != nil {
				t.Fatal(err)
			}
			sb := superblock(t, img)
			if sb.Format != f || info.Format != f || sb.Bytes > info.Bytes || sb.Bytes == 0 {
				t.Fatalf("superblock %+v for %+v", sb, info)
			}
			// With no epoch, the creation time is the newest mtime:
			// the root directory's, written last.
			var st unix.Stat_t
			unix.Lstat(root, &st)
			if sb.CreatedUnix != st.Mtim.Sec || info.Epoch != st.Mtim.Sec {
				t.Errorf("created %d, epoch %d; the tree's newest mtime is %d", sb.CreatedUnix, info.Epoch, st.Mtim.Sec)
			}
			out := filepath.Join(t.TempDir(), "x")
			extract(t, f, img, out)
			want, err := nfsclient.WalkLocal(root, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := nfsclient.WalkLocal(out, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := nfsclient.Compare(want, got); len(d) > 0 {
				t.Fatalf("the extracted image differs from the tree: %+v", d)
			}
			// fsck.erofs (1.5) extracts neither xattrs nor hard links:
			// for erofs, dump.erofs shows what the image holds.
			if f == fsimage.EROFS {
				ping, ping6 := dumpErofs(t, img, "/usr/bin/ping"), dumpErofs(t, img, "/usr/bin/ping6")
				if !strings.Contains(ping, "Xattr size: ") || strings.Contains(ping, "Xattr size: 0\n") {
					t.Errorf("ping's capability was not kept:\n%s", ping)
				}
				if nid(ping) == "" || nid(ping) != nid(ping6) {
					t.Errorf("ping and ping6 are no longer one file:\n%s\n%s", ping, ping6)
				}
			} else {
				cap, err := xattr(filepath.Join(out, "usr/bin/ping"), "security.capability")
				if err != nil || len(cap) != 20 {
					t.Errorf("ping's capability was not kept: %x %v", cap, err)
				}
				var a, b unix.Stat_t
				unix.Lstat(filepath.Join(out, "usr/bin/ping"), &a)
				unix.Lstat(filepath.Join(out, "usr/bin/ping6"), &b)
				if a.Ino != b.Ino {
					t.Errorf("ping and ping6 are no longer one file")
				}
			}
			var h unix.Stat_t
			unix.Lstat(filepath.Join(out, "etc/hostname"), &h)
			if h.Mtim.Sec != time.Date(2021, 5, 1, 0, 0, 0, 0, time.UTC).Unix() {
				t.Errorf("etc/hostname's mtime became %d", h.Mtim.Sec)
			}
		})
	}
}

func dumpErofs(t *testing.T, img, p string) string {
	out, err := exec.Command("dump.erofs", "--path="+p, img).CombinedOutput()
	if err != nil {
		t.Fatalf("dump.erofs --path=%s: %v\n%s", p, err, out)
	}
	return string(out)
}

func nid(dump string) string {
	_, rest, _ := strings.Cut(dump, "NID: ")
	n, _, _ := strings.Cut(rest, " ")
	return n
}

func xattr(p, name string) ([]byte, error) {
	b := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, b)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

func superblock(t *testing.T, p string) *fsimage.Superblock {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb, err := fsimage.ReadSuperblock(f)
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestWriteIsReproducible writes one tree twice, a second later, and a
// copy of it (another inode order, as a second bootstrap from one lock
// gives) once: the bytes must be equal. With an epoch before the tree's
// files, their mtimes are clamped to it.
func TestWriteIsReproducible(t *testing.T) {
	testenv.Root(t)
	epoch := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	for _, f := range fsimage.Formats {
		for _, e := range []time.Time{{}, epoch} {
			t.Run(string(f)+"/"+map[bool]string{true: "newest", false: "epoch"}[e.IsZero()], func(t *testing.T) {
				tool(t, f)
				root := tree(t)
				r, _ := fsroot.Open(root)
				cp := filepath.Join(t.TempDir(), "copy")
				if _, err := r.CopyTree(context.Background(), cp); err != nil {
					t.Fatal(err)
				}
				r.Close()
				dir := t.TempDir()
				var sums []string
				for i, src := range []string{root, root, cp} {
					if i == 1 {
						time.Sleep(1100 * time.Millisecond)
					}
					info, err := fsimage.Write(context.Background(), src, filepath.Join(dir, string(rune('a'+i))+"."+string(f)), fsimage.Options{Format: f, Epoch: e})
					if err != nil {
						t.Fatal(err)
					}
					sums = append(sums, info.SHA256)
				}
				if sums[0] != sums[1] || sums[0] != sums[2] {
					t.Fatalf("three writes of one tree differ: %v", sums)
				}
				if !e.IsZero() {
					if sb := superblock(t, filepath.Join(dir, "a."+string(f))); sb.CreatedUnix != epoch.Unix() {
						t.Errorf("created %d, want the epoch %d", sb.CreatedUnix, epoch.Unix())
					}
					out := filepath.Join(t.TempDir(), "x")
					extract(t, f, filepath.Join(dir, "a."+string(f)), out)
					var st unix.Stat_t
					unix.Lstat(filepath.Join(out, "etc/shadow"), &st)
					if st.Mtim.Sec != epoch.Unix() {
						t.Errorf("etc/shadow's mtime %d was not clamped to %d", st.Mtim.Sec, epoch.Unix())
					}
				}
			})
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink("real", filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	for _, c := range []struct {
		name, root, target string
		format             fsimage.Format
		want               string
	}{
		{"root is a symlink", "link", "out.squashfs", fsimage.Squashfs, "not a directory"},
		{"root is a file", "file", "out.squashfs", fsimage.Squashfs, "not a directory"},
		{"target is a directory", "real", "real", fsimage.Squashfs, "is a directory"},
		{"no format", "real", "out.img", "ext4", "one of squashfs, erofs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := fsimage.Write(context.Background(), filepath.Join(dir, c.root), filepath.Join(dir, c.target), fsimage.Options{Format: c.format})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out.squashfs")); err == nil {
		t.Fatal("a refused write left a file")
	}
}

func TestFormatFor(t *testing.T) {
	for _, c := range []struct {
		name, asked string
		want        fsimage.Format
		err         bool
	}{
		{"root.squashfs", "", fsimage.Squashfs, false},
		{"root.sqfs", "auto", fsimage.Squashfs, false},
		{"root.erofs", "", fsimage.EROFS, false},
		{"root.img", "erofs", fsimage.EROFS, false},
		{"root.img", "", "", true},
		{"root.erofs", "squashfs", "", true},
		{"root.img", "ext4", "", true},
	} {
		got, err := fsimage.FormatFor(c.name, c.asked)
		var fe *fsimage.FormatError
		if got != c.want || (err != nil) != c.err || (err != nil && !errors.As(err, &fe)) {
			t.Errorf("FormatFor(%q, %q) = %q, %v", c.name, c.asked, got, err)
		}
	}
}

func TestReadSuperblockRefuses(t *testing.T) {
	sq := make([]byte, 96)
	copy(sq, "hsqs")
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"text", []byte(strings.Repeat("not an image ", 200))},
		{"squashfs 3", func() []byte { b := bytes.Clone(sq); b[28] = 3; return b }()},
		{"squashfs block size", func() []byte { b := bytes.Clone(sq); b[28] = 4; b[12] = 3; return b }()},
	} {
		if _, err := fsimage.ReadSuperblock(bytes.NewReader(c.b)); !errors.Is(err, fsimage.ErrNotImage) {
			t.Errorf("%s: %v, want ErrNotImage", c.name, err)
		}
	}
}

func FuzzReadSuperblock(f *testing.F) {
	sq := make([]byte, 96)
	copy(sq, "hsqs")
	sq[28], sq[12+2], sq[22], sq[20] = 4, 2, 17, 6
	er := make([]byte, 1200)
	copy(er[1024:], []byte{0xe2, 0xe1, 0xf5, 0xe0})
	er[1024+12] = 12
	f.Add(sq)
	f.Add(er)
	f.Add([]byte("hsqs"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := fsimage.ReadSuperblock(bytes.NewReader(b))
		if err != nil {
			return
		}
		if sb.BlockSize < 512 || sb.BlockSize > 1<<20 || sb.Bytes < 0 {
			t.Fatalf("accepted %+v", sb)
		}
	})
}

func TestBlockSize(t *testing.T) {
	testenv.Root(t)
	tool(t, fsimage.Squashfs)
	root := tree(t)
	img := filepath.Join(t.TempDir(), "root.squashfs")
	if _, err := fsimage.Write(context.Background(), root, img, fsimage.Options{Format: fsimage.Squashfs, BlockSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if sb := superblock(t, img); sb.BlockSize != 1<<20 {
		t.Errorf("block size %d, want 1 MiB", sb.BlockSize)
	}
	for _, c := range []struct {
		f fsimage.Format
		b int
	}{{fsimage.Squashfs, 3000}, {fsimage.Squashfs, 12288}, {fsimage.Squashfs, 2 << 20}, {fsimage.EROFS, 5000}} {
		var be *usage.Error
		if _, err := fsimage.Write(context.Background(), root, filepath.Join(t.TempDir(), "x"), fsimage.Options{Format: c.f, BlockSize: c.b}); !errors.As(err, &be) || be.Option != "--block-size" {
			t.Errorf("%s with blocks of %d: %v", c.f, c.b, err)
		}
	}
}

// TestWriteMode: an image holds the root's /etc/shadow, so only its
// owner reads it, or a group named for the server that serves it.
func TestWriteMode(t *testing.T) {
	testenv.Root(t)
	gid := 4242
	for _, f := range fsimage.Formats {
		for _, c := range []struct {
			name  string
			group *int
			mode  os.FileMode
			gid   int
		}{{"default", nil, 0o600, 0}, {"a group", &gid, 0o640, gid}} {
			t.Run(string(f)+"/"+c.name, func(t *testing.T) {
				tool(t, f)
				img := filepath.Join(t.TempDir(), "root."+string(f))
				if _, err := fsimage.Write(context.Background(), tree(t), img, fsimage.Options{Format: f, Group: c.group}); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(img)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != c.mode || int(fi.Sys().(*syscall.Stat_t).Gid) != c.gid {
					t.Errorf("%s: mode %v gid %d, want %v gid %d", img, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, c.mode, c.gid)
				}
			})
		}
	}
}
