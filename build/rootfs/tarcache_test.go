package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"nroot/build/deb"
)

// TestTarCacheTampered: the unpacked-data cache keeps the hash of each
// copy it writes; a copy replaced by another valid archive (someone who
// could write the cache, planting a file) fails the unpack and is removed.
func TestTarCacheTampered(t *testing.T) {
	const pkg = "../../testdata/debian-archive-keyring_2025.1_all.deb"
	const key = "aaaa000000000000000000000000000000000000000000000000000000000000"
	cache := t.TempDir()
	read := func() ([]string, error) {
		f, err := os.Open(pkg)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := deb.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr, finish, err := dataTar(r, key, cache)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return names, finish(err)
			}
			names = append(names, h.Name)
		}
		return names, finish(nil)
	}
	first, err := read() // from the package, filling the cache
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cache, key[:2], key+".tar.zst")
	if _, err := os.Stat(path + ".sha256"); err != nil {
		t.Fatalf("no hash recorded: %v", err)
	}
	again, err := read() // from the cache
	if err != nil || len(again) != len(first) {
		t.Fatalf("cache hit: %d entries, %v", len(again), err)
	}
	// Replace the copy with a valid archive that plants a file.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "./etc/planted", Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	z, _ := zstd.NewWriter(nil)
	if err := os.WriteFile(path, z.EncodeAll(tb.Bytes(), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); !errors.Is(err, ErrCacheTampered) {
		t.Fatalf("err = %v, want ErrCacheTampered", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("the tampered entry was kept")
	}
	if names, err := read(); err != nil || len(names) != len(first) {
		t.Fatalf("after removal: %d entries, %v", len(names), err)
	}
}
