package hook

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
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
			if want := []string{"./", "./data/", "./data/file", "./data/link", "./data/suid"}; !slices.Equal(names, want) {
				t.Errorf("srv.tar: %q, want %q", names, want)
			}
		}},
		{"tar-in " + filepath.Join(out, "srv.tar") + " /opt", false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(img, "opt/data/file")); string(b) != "data" {
				t.Errorf("opt/data/file = %q", b)
			}
		}},
		{"sync-out /opt/tree " + out, false, func(t *testing.T) {
			if b, _ := os.ReadFile(filepath.Join(out, "sub/f")); string(b) != "f" {
				t.Errorf("sub/f = %q", b)
			}
		}},
		{"download /../etc/passwd " + filepath.Join(out, "x"), true, nil},
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
