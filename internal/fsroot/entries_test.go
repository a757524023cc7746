package fsroot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEntries: the one engine writes an archive's entries in order
// through the pool, applies directory metadata last, and takes a
// directory that a later entry replaced as the later entry's win.
func TestEntries(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		dir := t.TempDir()
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		var pool *WritePool
		if pooled {
			pool = NewWritePool(2, 1<<20)
		}
		e := NewEntries(r, pool)
		when := time.Unix(1700000000, 0)
		step := func(rel string, fn func() error) {
			e.Prepare(rel)
			if err := fn(); err != nil {
				t.Fatalf("pooled=%v %s: %v", pooled, rel, err)
			}
		}
		step("etc", func() error { return e.Dir("etc", Meta{Mode: 0o700, ModTime: when}) })
		step("etc/a", func() error { return e.File("etc/a", strings.NewReader("one"), 3, Meta{Mode: 0o644}, func() {}) })
		step("etc/a", func() error { return e.File("etc/a", strings.NewReader("two"), 3, Meta{Mode: 0o600}, func() {}) })
		step("link", func() error { return e.Symlink("etc", "link", Meta{}, func() {}) })
		step("gone", func() error { return e.Dir("gone", Meta{Mode: 0o755, ModTime: when}) })
		// Something later (another package, a script) puts a symlink
		// where the directory was.
		os.Remove(filepath.Join(dir, "gone"))
		os.Symlink("etc", filepath.Join(dir, "gone"))
		step("etc/b", func() error { return e.Link("etc/a", "etc/b") })
		if err := e.Symlink("", "empty", Meta{}, func() {}); err == nil {
			t.Error("a symlink without a target was accepted")
		}
		if err := e.Finish(); err != nil {
			t.Fatalf("pooled=%v: %v", pooled, err)
		}
		if pool != nil {
			pool.Close()
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "etc/b")); string(b) != "two" {
			t.Errorf("pooled=%v: etc/b = %q, want the later entry", pooled, b)
		}
		fi, err := os.Stat(filepath.Join(dir, "etc"))
		if err != nil || fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(when) {
			t.Errorf("pooled=%v: etc %v %v %v", pooled, fi.Mode(), fi.ModTime(), err)
		}
		if l, _ := os.Readlink(filepath.Join(dir, "gone")); l != "etc" {
			t.Errorf("pooled=%v: gone is %q", pooled, l)
		}
		r.Close()
	}
}
