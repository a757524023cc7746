package nspawn_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nroot/build/nspawn"
)

// TestPackageCachePerImage: each image gets its own package cache, and
// making the mount point never follows the image's symlinks to the host.
func TestPackageCachePerImage(t *testing.T) {
	cache := t.TempDir()
	host := filepath.Join(t.TempDir(), "host")
	// A hostile image points var/cache at a host directory: refused or
	// made inside the image, never on the host.
	hostile := filepath.Join(t.TempDir(), "hostile")
	os.MkdirAll(filepath.Join(hostile, "var"), 0o755)
	if err := os.Symlink(host, filepath.Join(hostile, "var/cache")); err != nil {
		t.Fatal(err)
	}
	err := (&nspawn.Runner{Root: hostile}).BindPackageCache(cache)
	if _, serr := os.Stat(host); serr == nil {
		t.Fatalf("a directory was made on the host through the image's var/cache (err %v)", err)
	}
	var dirs []string
	for _, name := range []string{"a", "b"} {
		root := filepath.Join(t.TempDir(), name)
		os.MkdirAll(filepath.Join(root, "var"), 0o755)
		r := &nspawn.Runner{Root: root}
		if err := r.BindPackageCache(cache); err != nil {
			t.Fatal(err)
		}
		if len(r.Binds) != 1 || !strings.HasSuffix(r.Binds[0], ":/var/cache/apt/archives") {
			t.Fatalf("binds %q", r.Binds)
		}
		src, _, _ := strings.Cut(r.Binds[0], ":")
		if !strings.HasPrefix(src, cache+"/") {
			t.Fatalf("cache %s is not below %s", src, cache)
		}
		if fi, err := os.Stat(src); err != nil || fi.Mode().Perm()&0o022 != 0 {
			t.Fatalf("cache %s: %v %v", src, fi.Mode(), err)
		}
		dirs = append(dirs, src)
	}
	if dirs[0] == dirs[1] {
		t.Fatalf("two images share the package cache %s", dirs[0])
	}
}
