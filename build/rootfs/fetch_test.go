package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nroot/build/lockfile"
	"nroot/internal/fetch"
)

func TestFetchVerifiesPackages(t *testing.T) {
	good := []byte("!<arch>\nnot really a deb, but what the index promised\n")
	s := sha256.Sum256(good)
	sum := hex.EncodeToString(s[:])
	tests := []struct {
		name    string
		serve   []byte
		wantErr string
	}{
		{"intact", good, ""},
		{"tampered", append([]byte("X"), good[1:]...), "SHA256"},
		{"truncated", good[:10], "size 10"},
		{"too long", append(good, "trailing"...), "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Write(tt.serve)
			}))
			defer srv.Close()
			plan := &lockfile.Plan{Packages: []lockfile.Package{{Name: "p", Version: "1", Architecture: "all", URI: srv.URL, Filename: "pool/p.deb", Size: int64(len(good)), SHA256: sum}}}
			f := fetch.NewFetcher(t.TempDir())
			f.Retries = 0
			got, err := Fetch(context.Background(), plan, f, 2, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "package p 1") {
					t.Fatalf("err = %v, want %q naming the package", err, tt.wantErr)
				}
				matches, _ := filepath.Glob(filepath.Join(f.CacheDir, "debs", "*", "*"))
				if len(matches) != 0 {
					t.Fatalf("bad download left in the cache: %v", matches)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(got[sum])
			if string(b) != string(good) {
				t.Fatal("cached content differs")
			}
			// A second fetch is served from the cache.
			if _, err := Fetch(context.Background(), plan, f, 2, nil); err != nil || hits.Load() != 1 {
				t.Fatalf("second fetch: %v, %d requests", err, hits.Load())
			}
		})
	}
}

func TestFetchResumes(t *testing.T) {
	good := []byte(strings.Repeat("0123456789", 1000))
	s := sha256.Sum256(good)
	sum := hex.EncodeToString(s[:])
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		http.ServeContent(w, r, "p.deb", time.Time{}, bytes.NewReader(good))
	}))
	defer srv.Close()
	f := fetch.NewFetcher(t.TempDir())
	part := filepath.Join(f.CacheDir, "debs", sum[:2], sum+".part")
	os.MkdirAll(filepath.Dir(part), 0o755)
	os.WriteFile(part, good[:4000], 0o644)
	plan := &lockfile.Plan{Packages: []lockfile.Package{{Name: "p", Version: "1", Architecture: "all", URI: srv.URL, Filename: "p.deb", Size: int64(len(good)), SHA256: sum}}}
	got, err := Fetch(context.Background(), plan, f, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 1 || ranges[0] != "bytes=4000-" {
		t.Fatalf("requests with ranges %q, want one resuming at 4000", ranges)
	}
	if b, _ := os.ReadFile(got[sum]); !bytes.Equal(b, good) {
		t.Fatal("resumed file differs")
	}
}
