package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlantedNames: symlinks left at the names a writer could predict
// (the ones nroot used to use) are never followed, and a failed write
// leaves nothing behind.
func TestPlantedNames(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	path := filepath.Join(dir, "out.img")
	for _, planted := range []string{path + ".nroot-partial", path + ".tmp", path + ".part"} {
		if err := os.Symlink(victim, planted); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFile(path, []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("a planted symlink was followed: victim now %q", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "image" {
		t.Fatalf("out.img = %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	// A write that fails leaves neither the file nor a temporary one.
	f, err := Create(filepath.Join(dir, "failed"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "failed") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
