package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestCacheHitRehashed: a cached file of the right size but other content
// (damaged, or replaced by someone who could write the cache) is fetched
// again, never used.
func TestCacheHitRehashed(t *testing.T) {
	body := []byte("the package's bytes")
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Write(body)
	}))
	defer srv.Close()
	f := NewFetcher(t.TempDir())
	want := sum(body)
	path, err := f.FetchVerified(context.Background(), []string{srv.URL + "/p.deb"}, int64(len(body)), want, "debs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.FetchVerified(context.Background(), []string{srv.URL + "/p.deb"}, int64(len(body)), want, "debs"); err != nil || gets.Load() != 1 {
		t.Fatalf("a good cache hit was fetched again (%d requests, %v)", gets.Load(), err)
	}
	planted := []byte(strings.Repeat("X", len(body)))
	if err := os.WriteFile(path, planted, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.FetchVerified(context.Background(), []string{srv.URL + "/p.deb"}, int64(len(body)), want, "debs"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(body) || gets.Load() != 2 {
		t.Fatalf("the planted file was used: %q after %d requests", b, gets.Load())
	}
}

// TestUnsafeCacheRefused: a cache directory that others can write is
// refused before anything is read from it.
func TestUnsafeCacheRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	os.Mkdir(dir, 0o755)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	f := NewFetcher(dir)
	_, err := f.GetMeta(context.Background(), "http://127.0.0.1:1/dists/x/InRelease")
	if !errors.Is(err, ErrUnsafeCache) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want ErrUnsafeCache naming %s", err, dir)
	}
	// A new cache is made private.
	fresh := filepath.Join(t.TempDir(), "new")
	if err := NewFetcher(fresh).checkCache(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Errorf("new cache mode %v", fi.Mode().Perm())
	}
}

// TestStalledMirror: a mirror that sends part of a body and then nothing
// is given up on after the idle timeout, with the URL named, instead of
// hanging.
func TestStalledMirror(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("Origin: Debian\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	for _, get := range []struct {
		name string
		fn   func(f *Fetcher) error
	}{
		{"metadata", func(f *Fetcher) error {
			_, err := f.GetMeta(context.Background(), srv.URL+"/dists/x/InRelease")
			return err
		}},
		{"package", func(f *Fetcher) error {
			_, err := f.FetchVerified(context.Background(), []string{srv.URL + "/p.deb"}, 1000, strings.Repeat("a", 64), "debs")
			return err
		}},
	} {
		t.Run(get.name, func(t *testing.T) {
			f := NewFetcher(t.TempDir())
			f.Retries, f.IdleTimeout = 1, 200*time.Millisecond
			start := time.Now()
			err := get.fn(f)
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), srv.URL) {
				t.Fatalf("err = %v, want ErrStalled naming the URL", err)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Fatalf("took %v", el)
			}
		})
	}
}
