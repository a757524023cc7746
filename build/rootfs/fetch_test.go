package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nroot/build/apt"
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

// servedPlan serves packages of the given names and sizes, the ones in
// broken with a body that does not match the index, and logs the order
// in which they are asked for.
func servedPlan(t *testing.T, sizes map[string]int, broken ...string) (*lockfile.Plan, *[]string) {
	t.Helper()
	bodies := map[string][]byte{}
	var asked []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSuffix(filepath.Base(r.URL.Path), ".deb")
		mu.Lock()
		asked = append(asked, name)
		mu.Unlock()
		b := bodies[name]
		if slices.Contains(broken, name) {
			b = bytes.ToUpper(b)
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	plan := &lockfile.Plan{}
	for _, name := range slices.Sorted(maps.Keys(sizes)) {
		b := []byte(strings.Repeat(name[:1], sizes[name]))
		bodies[name] = b
		s := sha256.Sum256(b)
		plan.Packages = append(plan.Packages, lockfile.Package{Name: name, Version: "1", Architecture: "all", URI: srv.URL, Filename: name + ".deb", Size: int64(len(b)), SHA256: hex.EncodeToString(s[:])})
	}
	return plan, &asked
}

func TestFetchOrder(t *testing.T) {
	plan, asked := servedPlan(t, map[string]int{"apt": 300, "base-files": 10, "dash": 100, "zlib1g": 200})
	f := fetch.NewFetcher(t.TempDir())
	if _, err := Fetch(context.Background(), plan, f, 1, nil); err != nil {
		t.Fatal(err)
	}
	// base-files first, since unpacking starts with it alone, then the
	// largest, which take longest.
	if want := []string{"base-files", "apt", "zlib1g", "dash"}; !slices.Equal(*asked, want) {
		t.Fatalf("fetched in the order %q, want %q", *asked, want)
	}
}

func TestArrivals(t *testing.T) {
	tests := []struct {
		name    string
		broken  []string
		wait    string
		wantErr string
	}{
		{"a package is given once it is fetched", nil, "dash", ""},
		{"a package fetched before another failed is still given", []string{"dash"}, "base-files", ""},
		{"a package not fetched gives the error that stopped fetching", []string{"apt"}, "zlib1g", "package apt 1"},
		{"a package the plan does not have is an error at once", nil, "", "not in the plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, _ := servedPlan(t, map[string]int{"apt": 300, "base-files": 10, "dash": 100, "zlib1g": 200}, tt.broken...)
			f := fetch.NewFetcher(t.TempDir())
			f.Retries = 0
			a := NewArrivals(plan)
			// One download at a time, in fetch order: base-files, apt,
			// zlib1g, dash.
			done := make(chan struct{})
			go func() { fetchInto(context.Background(), plan, f, 1, nil, a); close(done) }()
			defer func() { <-done }() // before the cache directory is removed
			sum := "0000"
			for _, p := range plan.Packages {
				if p.Name == tt.wait {
					sum = p.SHA256
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path, err := a.Wait(ctx, sum)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Wait: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(path); err != nil || len(b) == 0 || string(b[:1]) != tt.wait[:1] {
				t.Fatalf("Wait gave %s holding %.10q (%v), want %s's file", path, b, err, tt.wait)
			}
		})
	}
	t.Run("a cancelled wait returns at once", func(t *testing.T) {
		plan, _ := servedPlan(t, map[string]int{"dash": 10})
		a := NewArrivals(plan) // nothing fetches
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := a.Wait(ctx, plan.Packages[0].SHA256); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait: %v, want context.Canceled", err)
		}
	})
}

// TestBootstrapFetchFails: a download that fails while others unpack
// fails the build with the download's error, and leaves no target, no
// build directory and nothing fetching.
func TestBootstrapFetchFails(t *testing.T) {
	plan, _ := servedPlan(t, map[string]int{"apt": 300, "dash": 100}, "apt")
	plan.Codename, plan.Suite, plan.Variant, plan.Architectures = "bookworm", "bookworm", "minbase", []string{"amd64"}
	base := t.TempDir()
	f := fetch.NewFetcher(t.TempDir())
	f.Retries = 0
	_, err := Bootstrap(context.Background(), filepath.Join(base, "node"), Options{FromLock: plan, Apt: apt.Options{Fetcher: f}, Jobs: 1})
	if err == nil || !strings.Contains(err.Error(), "bootstrap: fetch: package apt 1") || !strings.Contains(err.Error(), "SHA256") {
		t.Fatalf("err = %v, want the failed download of apt", err)
	}
	if names, _ := os.ReadDir(base); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}
