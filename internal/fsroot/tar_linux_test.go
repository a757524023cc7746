package fsroot

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWriteTarStaysInside: the tar of a hostile tree holds its symlinks
// as symlinks, never what they point at, and a rel that is a symlink is
// resolved inside the root.
func TestWriteTarStaysInside(t *testing.T) {
	r, dir, _ := hostile(t)
	os.Link(filepath.Join(dir, "etc/passwd"), filepath.Join(dir, "etc/passwd.hard"))
	os.Symlink("/etc", filepath.Join(dir, "usr/etc-link"))
	tests := []struct {
		rel  string
		want []string // "name type [linkname]"
	}{
		{".", []string{"./ 5", "./bin 2 usr/bin", "./etc/ 5", "./etc/abs 2", "./etc/alias 2 /etc/passwd", "./etc/fifo 6", "./etc/passwd 0", "./etc/passwd.hard 1 ./etc/passwd", "./etc/up 2", "./hostdir 2", "./loop 2 loop", "./usr/ 5", "./usr/bin/ 5", "./usr/etc-link 2 /etc"}},
		// /etc of the root, reached through an absolute symlink inside it.
		{"usr/etc-link", []string{"./ 5", "./abs 2", "./alias 2 /etc/passwd", "./fifo 6", "./passwd 0", "./passwd.hard 1 ./passwd", "./up 2"}},
		{"hostdir", nil}, // the host's directory is not in the root
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := r.WriteTar(&buf, tt.rel, TarOptions{Clamp: time.Unix(1700000000, 0)})
		if tt.want == nil {
			if err == nil {
				t.Errorf("%s: wrote a tar of a directory outside the root", tt.rel)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.rel, err)
		}
		got := tarLines(t, &buf, func(h *tar.Header, body io.Reader) string {
			s := h.Name + " " + string(h.Typeflag)
			if h.Typeflag == tar.TypeLink || h.Linkname == "usr/bin" || h.Linkname == "loop" || strings.HasPrefix(h.Linkname, "/etc") {
				s += " " + h.Linkname
			}
			if h.ModTime.After(time.Unix(1700000000, 0)) {
				t.Errorf("%s: mtime %v not clamped", h.Name, h.ModTime)
			}
			if b, _ := io.ReadAll(body); strings.Contains(string(b), "outside") {
				t.Errorf("%s: holds the host's file", h.Name)
			}
			return s
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.rel, got, tt.want)
		}
	}
}

// TestWriteTarNodes: placeholders named in Nodes are written as the
// device nodes they stand for, with the placeholder's owner and the
// node's mode; a placeholder that is not empty, or one asked of a copy
// out (DropSetid), is not.
func TestWriteTarNodes(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dev"), 0o755)
	os.WriteFile(filepath.Join(dir, "dev/null"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "dev/sda"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "dev/full"), []byte("not a placeholder"), 0o644)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nodes := map[string]Node{
		"dev/null": {Mode: 0o20666, Dev: 1<<8 | 3},
		"dev/sda":  {Mode: 0o60660, Dev: 8 << 8},
		"dev/full": {Mode: 0o20666, Dev: 1<<8 | 7},
	}
	for _, tt := range []struct {
		name string
		o    TarOptions
		want []string
	}{
		{"nodes", TarOptions{Nodes: nodes}, []string{"./ 5", "./dev/ 5", "./dev/full 0 644 0,0", "./dev/null 3 666 1,3", "./dev/sda 4 660 8,0"}},
		{"copy out", TarOptions{Nodes: nodes, DropSetid: true}, []string{"./ 5", "./dev/ 5", "./dev/full 0 644 0,0"}},
		{"no nodes", TarOptions{}, []string{"./ 5", "./dev/ 5", "./dev/full 0 644 0,0", "./dev/null 0 600 0,0", "./dev/sda 0 600 0,0"}},
	} {
		var buf bytes.Buffer
		if err := r.WriteTar(&buf, ".", tt.o); err != nil {
			t.Fatal(err)
		}
		got := tarLines(t, &buf, func(h *tar.Header, _ io.Reader) string {
			s := h.Name + " " + string(h.Typeflag)
			if h.Typeflag != tar.TypeDir {
				s += " " + strconv.FormatInt(h.Mode, 8) + " " + strconv.FormatInt(h.Devmajor, 10) + "," + strconv.FormatInt(h.Devminor, 10)
			}
			return s
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// tarLines reads a tar stream and gives line's summary of each entry.
func tarLines(t *testing.T, r io.Reader, line func(*tar.Header, io.Reader) string) []string {
	t.Helper()
	var got []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line(h, tr))
	}
}
