package hook

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nroot/e2e/testenv"
	"nroot/internal/fsroot"
)

// hostileImage is an image whose paths point out of it, beside a host
// directory whose files must never change.
func hostileImage(t *testing.T) (img, host string) {
	t.Helper()
	img, host = t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(host, "secret"), []byte("host"), 0o600)
	for _, d := range []string{"etc", "srv/data", "opt"} {
		os.MkdirAll(filepath.Join(img, d), 0o755)
	}
	os.WriteFile(filepath.Join(img, "srv/data/file"), []byte("data"), 0o644)
	os.WriteFile(filepath.Join(img, "srv/data/suid"), []byte("x"), 0o755)
	os.Chmod(filepath.Join(img, "srv/data/suid"), 0o755|os.ModeSetuid)
	os.Symlink(filepath.Join(host, "secret"), filepath.Join(img, "etc/planted"))   // a file on the host
	os.Symlink(host, filepath.Join(img, "hostdir"))                                // a directory on the host
	os.Symlink(filepath.Join(host, "secret"), filepath.Join(img, "srv/data/link")) // copied out as a link
	os.Symlink("../srv/data/file", filepath.Join(img, "etc/release"))              // a relative link inside
	os.Symlink("/srv/data", filepath.Join(img, "etc/data"))                        // an absolute one, resolved in the image
	return img, host
}

func runOne(t *testing.T, img, cmd string) error {
	t.Helper()
	h, err := New(Customize, cmd, false, "--customize-hook")
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), []Hook{h}, Customize, Env{Target: img})
}

func TestSpecialHooksStayInside(t *testing.T) {
	img, host := hostileImage(t)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "motd"), []byte("hello\n"), 0o644)
	os.MkdirAll(filepath.Join(in, "tree/sub"), 0o755)
	os.WriteFile(filepath.Join(in, "tree/sub/f"), []byte("f"), 0o640)
	out := t.TempDir()
	tests := []struct {
		cmd     string
		wantErr bool
		check   func(t *testing.T)
	}{
		// The image's symlink to the host is replaced, not followed.
		{"upload " + filepath.Join(in, "motd") + " /etc/planted", false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(img, "etc/planted")); string(b) != "hello\n" {
				t.Errorf("etc/planted = %q", b)
			}
		}},
		// hostdir resolves inside the image, where there is no such path.
		{"upload " + filepath.Join(in, "motd") + " /hostdir/secret", true, nil},
		{"copy-in " + filepath.Join(in, "tree") + " /hostdir", true, nil},
		{"sync-in " + filepath.Join(in, "tree") + " /hostdir", true, nil},
		{"download /srv/data/link " + filepath.Join(out, "link"), true, nil}, // not inside the image
		{"copy-in " + filepath.Join(in, "tree") + " " + filepath.Join(in, "motd") + " /opt", false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(img, "opt/tree/sub/f")); string(b) != "f" {
				t.Errorf("opt/tree/sub/f = %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(img, "opt/motd")); string(b) != "hello\n" {
				t.Errorf("opt/motd = %q", b)
			}
		}},
		// Out of the image: the link stays a link, setuid is dropped.
		{"copy-out /srv/data " + out, false, func(t *testing.T) {
			if l, err := os.Readlink(filepath.Join(out, "data/link")); err != nil || l != filepath.Join(host, "secret") {
				t.Errorf("data/link: %q %v", l, err)
			}
			if fi, err := os.Stat(filepath.Join(out, "data/suid")); err != nil || fi.Mode()&os.ModeSetuid != 0 {
				t.Errorf("data/suid: %v %v", fi.Mode(), err)
			}
		}},
		{"download /srv/data/file " + filepath.Join(out, "file"), false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(out, "file")); string(b) != "data" {
				t.Errorf("downloaded %q", b)
			}
		}},
		{"tar-out /srv " + filepath.Join(out, "srv.tar"), false, func(t *testing.T) {
			f, err := os.Open(filepath.Join(out, "srv.tar"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var names []string
			tr := tar.NewReader(f)
			for h, err := tr.Next(); err == nil; h, err = tr.Next() {
				names = append(names, h.Name)
			}
			if want := []string{"srv/", "srv/data/", "srv/data/file", "srv/data/link", "srv/data/suid"}; !slices.Equal(names, want) {
				t.Errorf("srv.tar: %q, want %q", names, want)
			}
		}},
		{"tar-in " + filepath.Join(out, "srv.tar") + " /opt", false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(img, "opt/srv/data/file")); string(b) != "data" {
				t.Errorf("opt/srv/data/file = %q", b)
			}
		}},
		{"sync-out /opt/tree " + out, false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(out, "sub/f")); string(b) != "f" {
				t.Errorf("sub/f = %q", b)
			}
		}},
		{"download /../etc/passwd " + filepath.Join(out, "x"), true, nil},
		// As mmdebstrap: the inside path's links are followed inside the
		// image, so a link out of it names nothing there.
		{"copy-out /etc/release " + filepath.Join(out, "rel"), false, func(t *testing.T) {
			if fi, err := os.Lstat(filepath.Join(out, "rel/file")); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("copy-out of a link to a file: %v %v, want the file", fi, err)
			}
		}},
		{"tar-out /etc/data " + filepath.Join(out, "data.tar"), false, func(t *testing.T) {
			f, err := os.Open(filepath.Join(out, "data.tar"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if h, err := tar.NewReader(f).Next(); err != nil || h.Name != "data/" {
				t.Errorf("data.tar starts with %v %v, want data/", h, err)
			}
		}},
		{"copy-out /hostdir " + out, true, nil}, // the host's directory, resolved inside: nothing there
	}
	for _, tt := range tests {
		err := runOne(t, img, tt.cmd)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.cmd, err, tt.wantErr)
			continue
		}
		if tt.check != nil {
			tt.check(t)
		}
		if b, _ := os.ReadFile(filepath.Join(host, "secret")); string(b) != "host" {
			t.Fatalf("%s: changed the host's file: %q", tt.cmd, b)
		}
		if names, _ := os.ReadDir(host); len(names) != 1 {
			t.Fatalf("%s: wrote into the host's directory: %v", tt.cmd, names)
		}
	}
}

// TestUploadKeepsModeAndOwner: upload writes into an existing file as
// mmdebstrap does, so /etc/shadow stays 0640 root:shadow; a new file gets
// mmdebstrap's 0644 and the builder's owner. What is at the path in the
// image is hostile: a symlink or FIFO there lends it nothing and is
// neither followed nor waited on.
func TestUploadKeepsModeAndOwner(t *testing.T) {
	testenv.Root(t) // to give files an owner other than root
	img, host := hostileImage(t)
	src := filepath.Join(t.TempDir(), "new")
	os.WriteFile(src, []byte("uploaded\n"), 0o600)
	os.WriteFile(filepath.Join(host, "private"), []byte("host"), 0o600)
	os.WriteFile(filepath.Join(img, "etc/shadow"), []byte("root:*:1::::::\n"), 0o640)
	os.Chmod(filepath.Join(img, "etc/shadow"), 0o640)
	os.Chown(filepath.Join(img, "etc/shadow"), 0, 42)
	os.WriteFile(filepath.Join(img, "etc/setuid"), []byte("x"), 0o755)
	os.Chown(filepath.Join(img, "etc/setuid"), 7, 8)
	unix.Chmod(filepath.Join(img, "etc/setuid"), 0o4750) // os.Chmod wants os.ModeSetuid
	if err := unix.Mkfifo(filepath.Join(img, "etc/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(host, "private"), filepath.Join(img, "etc/tohost"))
	tests := []struct {
		path     string
		mode     os.FileMode
		uid, gid uint32
	}{
		{"etc/shadow", 0o640, 0, 42},
		{"etc/setuid", 0o750 | os.ModeSetuid, 7, 8},
		{"etc/new", 0o644, 0, 0},
		{"etc/fifo", 0o644, 0, 0},   // replaced, not opened
		{"etc/tohost", 0o644, 0, 0}, // replaced, not followed: not the host file's 0600
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- runOne(t, img, "upload "+src+" /"+tt.path) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				unblockFIFO(filepath.Join(img, tt.path))
				t.Fatal("upload waited on what is at the path in the image")
			}
			fi, err := os.Lstat(filepath.Join(img, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.Mode().IsRegular() || fi.Mode().Perm()|fi.Mode()&os.ModeSetuid != tt.mode || st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("%s is %v %d:%d, want %v %d:%d", tt.path, fi.Mode(), st.Uid, st.Gid, tt.mode, tt.uid, tt.gid)
			}
			if b, _ := os.ReadFile(filepath.Join(img, tt.path)); string(b) != "uploaded\n" {
				t.Errorf("%s holds %q", tt.path, b)
			}
			if b, _ := os.ReadFile(filepath.Join(host, "private")); string(b) != "host" {
				t.Errorf("the host's file was written: %q", b)
			}
		})
	}
	if names := leftovers(t, img); len(names) > 0 {
		t.Errorf("temporary files left in the image: %q", names)
	}
}

// newFIFO makes a FIFO on the host, unblocked at the test's end.
func newFIFO(t *testing.T, name string) string {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), name)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unblockFIFO(fifo) })
	return fifo
}

// unblockFIFO lets a reader stuck opening a FIFO go on, so that a test
// that failed does not leave it hanging.
func unblockFIFO(p string) {
	if fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		unix.Close(fd)
	}
}

// leftovers lists the files below dir named as fsroot names temporary
// files, or as a partial write would leave them.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".nroot-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestSpecialHooksStopOnCancel: a special hook stops within 2 s of its
// context ending (Ctrl-C, the hook timeout), with the context's error,
// however long its input keeps it waiting, and leaves no partial file.
func TestSpecialHooksStopOnCancel(t *testing.T) {
	member := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		name    string
		tarball string // a FIFO of this name is the input
		// feed writes into the FIFO and keeps it open until the test
		// ends; nil: nobody ever opens it for writing.
		feed    func(w *os.File)
		timeout time.Duration // Env.Timeout; 0: the context is cancelled
		want    error
	}{
		{"nobody writes", "in.tar", nil, 0, context.Canceled},
		{"nobody writes, gzip", "in.tar.gz", nil, 0, context.Canceled},
		{"hook timeout", "in.tar", nil, 300 * time.Millisecond, context.DeadlineExceeded},
		{"half a file, then nothing", "in.tar", func(w *os.File) {
			tw := tar.NewWriter(w)
			tw.WriteHeader(&tar.Header{Name: "etc/big", Mode: 0o644, Size: int64(len(member)), Typeflag: tar.TypeReg})
			tw.Write(member[:len(member)/2])
		}, 0, context.Canceled},
		{"a whole file, then half of one", "in.tar", func(w *os.File) {
			tw := tar.NewWriter(w)
			tw.WriteHeader(&tar.Header{Name: "whole", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
			tw.Write([]byte("whole"))
			tw.WriteHeader(&tar.Header{Name: "partial", Mode: 0o644, Size: int64(len(member)), Typeflag: tar.TypeReg})
			tw.Write(member[:100])
			tw.Flush()
		}, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := t.TempDir()
			os.Mkdir(filepath.Join(img, "etc"), 0o755)
			fifo := newFIFO(t, tt.tarball)
			fed := make(chan struct{})
			if tt.feed != nil {
				go func() {
					w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
					if err != nil {
						return
					}
					t.Cleanup(func() { w.Close() })
					tt.feed(w)
					close(fed)
				}()
			} else {
				close(fed)
			}
			h, err := New(Customize, "tar-in "+fifo+" /", false, "--customize-hook")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx, []Hook{h}, Customize, Env{Target: img, Timeout: tt.timeout}) }()
			<-fed
			time.Sleep(200 * time.Millisecond) // the hook is waiting on its input
			start := time.Now()
			if tt.timeout == 0 {
				cancel()
			}
			select {
			case err = <-done:
			case <-time.After(2*time.Second + tt.timeout):
				t.Fatalf("still running %v after the context ended", time.Since(start))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			var partial []string
			filepath.WalkDir(img, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && d.Name() != "whole" {
					partial = append(partial, p)
				}
				return nil
			})
			if len(partial) > 0 {
				t.Errorf("left in the image: %q", partial)
			}
		})
	}
}

// TestSpecialHooksTakeTheContext: every special hook checks its context:
// one whose build was cancelled already does nothing.
func TestSpecialHooksTakeTheContext(t *testing.T) {
	img, _ := hostileImage(t)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "motd"), []byte("hello\n"), 0o644)
	os.MkdirAll(filepath.Join(in, "tree"), 0o755)
	os.WriteFile(filepath.Join(in, "tree/f"), []byte("f"), 0o644)
	tarball := filepath.Join(in, "t.tar")
	f, _ := os.Create(tarball)
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "from-tar", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("t"))
	tw.Close()
	f.Close()
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, cmd := range []string{
		"copy-in " + filepath.Join(in, "tree") + " /opt",
		"copy-out /srv/data " + out,
		"tar-in " + tarball + " /opt",
		"tar-out /srv " + filepath.Join(out, "srv.tar"),
		"upload " + filepath.Join(in, "motd") + " /opt/motd",
		"download /srv/data/file " + filepath.Join(out, "file"),
		"sync-in " + filepath.Join(in, "tree") + " /opt",
		"sync-out /srv/data " + out,
	} {
		h, err := New(Customize, cmd, false, "--customize-hook")
		if err != nil {
			t.Fatal(err)
		}
		if err := Run(ctx, []Hook{h}, Customize, Env{Target: img}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", cmd, err)
		}
	}
	if names, _ := os.ReadDir(filepath.Join(img, "opt")); len(names) > 0 {
		t.Errorf("written into the image: %v", names)
	}
	if names, _ := os.ReadDir(out); len(names) > 0 {
		t.Errorf("written onto the host: %v", names)
	}
}

// TestUploadFromFIFO: upload needs the size of what it writes; a FIFO
// given as its source is refused at once, not waited on.
func TestUploadFromFIFO(t *testing.T) {
	img := t.TempDir()
	fifo := newFIFO(t, "fifo")
	done := make(chan error, 1)
	go func() { done <- runOne(t, img, "upload "+fifo+" /motd") }()
	select {
	case err := <-done:
		if !errors.Is(err, fsroot.ErrNotRegular) {
			t.Errorf("upload from a FIFO: %v, want %v", err, fsroot.ErrNotRegular)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("upload waited on a FIFO nobody writes")
	}
	if names, _ := os.ReadDir(img); len(names) > 0 {
		t.Errorf("written into the image: %v", names)
	}
}

// TestTarInFromFIFO: a tarball from a FIFO (a pipe, <(...)) is read as it
// comes, however slowly, up to its writer's end.
func TestTarInFromFIFO(t *testing.T) {
	img := t.TempDir()
	fifo := newFIFO(t, "in.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"a", "b"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		tw.Write([]byte(name + name + name))
	}
	tw.Close()
	go func() {
		time.Sleep(300 * time.Millisecond) // the hook opens the FIFO first
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		for b := buf.Bytes(); len(b) > 0; b = b[min(len(b), 700):] {
			w.Write(b[:min(len(b), 700)])
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err := runOne(t, img, "tar-in "+fifo+" /"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if b, _ := os.ReadFile(filepath.Join(img, name)); string(b) != name+name+name {
			t.Errorf("%s = %q", name, b)
		}
	}
}
