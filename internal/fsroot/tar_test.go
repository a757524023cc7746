package fsroot

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
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
		var got []string
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			s := h.Name + " " + string(h.Typeflag)
			if h.Typeflag == tar.TypeLink || h.Linkname == "usr/bin" || h.Linkname == "loop" || strings.HasPrefix(h.Linkname, "/etc") {
				s += " " + h.Linkname
			}
			if h.ModTime.After(time.Unix(1700000000, 0)) {
				t.Errorf("%s: mtime %v not clamped", h.Name, h.ModTime)
			}
			if body, _ := io.ReadAll(tr); strings.Contains(string(body), "outside") {
				t.Errorf("%s: holds the host's file", h.Name)
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.rel, got, tt.want)
		}
	}
}
