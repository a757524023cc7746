package apt

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nroot/internal/fetch"
)

// testArchive serves a small signed archive over HTTP, with hooks to
// tamper with what it serves.
type testArchive struct {
	srv      *httptest.Server
	signer   *testSigner
	files    map[string][]byte // path below the archive root
	requests atomic.Int64
	notMod   atomic.Int64
}

const testPackages = `Package: base-files
Version: 13.8
Architecture: amd64
Essential: yes
Priority: required
Filename: pool/main/b/base-files/base-files_13.8_amd64.deb
Size: 100
SHA256: 0000000000000000000000000000000000000000000000000000000000000001

Package: hello
Version: 2.10-3
Architecture: amd64
Priority: optional
Depends: libc6 (>= 2.34)
Filename: pool/main/h/hello/hello_2.10-3_amd64.deb
Size: 200
SHA256: 0000000000000000000000000000000000000000000000000000000000000002

Package: libc6
Version: 2.41-12
Architecture: amd64
Multi-Arch: same
Priority: optional
Filename: pool/main/g/glibc/libc6_2.41-12_amd64.deb
Size: 300
SHA256: 0000000000000000000000000000000000000000000000000000000000000003
`

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newTestArchive(t *testing.T, byHash bool, tamper func(a *testArchive)) *testArchive {
	t.Helper()
	a := &testArchive{signer: newTestSigner(t, "archive"), files: map[string][]byte{}}
	plain := []byte(testPackages)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(plain)
	w.Close()
	base := "dists/stable/main/binary-amd64/"
	a.files[base+"Packages.gz"] = gz.Bytes()
	if byHash {
		a.files[base+"by-hash/SHA256/"+sum(gz.Bytes())] = gz.Bytes()
	}
	rel := fmt.Sprintf(`Origin: Test
Suite: stable
Codename: nroottest
Date: %s
Acquire-By-Hash: %s
Architectures: amd64
Components: main
SHA256:
 %s %d main/binary-amd64/Packages
 %s %d main/binary-amd64/Packages.gz
`, time.Now().UTC().Add(-time.Hour).Format(time.RFC1123), map[bool]string{true: "yes", false: "no"}[byHash],
		sum(plain), len(plain), sum(gz.Bytes()), gz.Len())
	a.files["dists/stable/InRelease"] = a.signer.clearsign(t, []byte(rel))
	if tamper != nil {
		tamper(a)
	}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		p := strings.TrimPrefix(r.URL.Path, "/debian/")
		b, ok := a.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		etag := `"` + sum(b)[:16] + `"`
		if r.Header.Get("If-None-Match") == etag {
			a.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Write(b)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *testArchive) options(t *testing.T) Options {
	f := fetch.NewFetcher(t.TempDir())
	f.Retries = 0
	return Options{Fetcher: f, Keyrings: nil}
}

func TestLoadSignedArchive(t *testing.T) {
	for _, byHash := range []bool{false, true} {
		t.Run(fmt.Sprintf("by-hash=%v", byHash), func(t *testing.T) {
			a := newTestArchive(t, byHash, nil)
			o := a.options(t)
			o.Keyrings = append(o.Keyrings, a.signer.ring)
			src := &Source{URI: a.srv.URL + "/debian", Suite: "stable", Components: []string{"main"}}
			u, err := Load(context.Background(), []*Source{src}, []string{"amd64"}, o)
			if err != nil {
				t.Fatal(err)
			}
			if u.Len() != 3 {
				t.Fatalf("universe has %d packages, want 3", u.Len())
			}
			res, err := u.Resolve(Request{Variant: "custom", Include: []string{"hello"}})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res.Packages); got != "hello libc6" {
				t.Fatalf("resolved %q", got)
			}
			// A second load revalidates InRelease (304) and reads the
			// cached, verified index without fetching it.
			before := a.requests.Load()
			if _, err := Load(context.Background(), []*Source{src}, []string{"amd64"}, o); err != nil {
				t.Fatal(err)
			}
			if n := a.requests.Load() - before; n != 1 || a.notMod.Load() != 1 {
				t.Fatalf("warm load made %d requests (%d not modified), want 1 revalidation", n, a.notMod.Load())
			}
		})
	}
}

func names(ps []*Package) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return strings.Join(out, " ")
}

func TestLoadRefusesBadArchives(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(a *testArchive)
		ring    bool // trust the archive's key
		wantErr string
	}{
		{"Packages differs from Release", func(a *testArchive) {
			b := a.files["dists/stable/main/binary-amd64/Packages.gz"]
			a.files["dists/stable/main/binary-amd64/Packages.gz"] = append(bytes.Clone(b[:len(b)-1]), b[len(b)-1]^0xff)
		}, true, "SHA256"},
		{"Packages truncated", func(a *testArchive) {
			b := a.files["dists/stable/main/binary-amd64/Packages.gz"]
			a.files["dists/stable/main/binary-amd64/Packages.gz"] = b[:len(b)/2]
		}, true, "size"},
		{"unknown signer", nil, false, "pass --keyring FILE"},
		{"no such suite", func(a *testArchive) { delete(a.files, "dists/stable/InRelease") }, true, "no such suite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestArchive(t, false, tt.tamper)
			o := a.options(t)
			if tt.ring {
				o.Keyrings = append(o.Keyrings, a.signer.ring)
			}
			src := &Source{URI: a.srv.URL + "/debian", Suite: "stable", Components: []string{"main"}}
			_, err := Load(context.Background(), []*Source{src}, []string{"amd64"}, o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			// Nothing unverified may be left in the cache.
			filepath.Walk(o.Fetcher.CacheDir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() && strings.Contains(p, "/indices/") {
					t.Errorf("unverified index cached: %s", p)
				}
				return nil
			})
		})
	}
}

func TestUnknownSignerWithoutKeyring(t *testing.T) {
	a := newTestArchive(t, false, nil)
	src := &Source{URI: a.srv.URL + "/debian", Suite: "stable"}
	_, err := OpenDist(context.Background(), src, a.options(t))
	// Origin "Test" has no bundled keyring.
	if err == nil || !strings.Contains(err.Error(), `no bundled keyring for Origin "Test"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestUnreachableMirror(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	f := fetch.NewFetcher(t.TempDir())
	f.Retries, f.Backoff = 1, time.Millisecond
	_, err := OpenDist(context.Background(), &Source{URI: url + "/debian", Suite: "stable"}, Options{Fetcher: f})
	if err == nil || !strings.Contains(err.Error(), "mirror unreachable after 2 attempts") {
		t.Fatalf("err = %v", err)
	}
}

func TestCorruptCacheIsCaught(t *testing.T) {
	a := newTestArchive(t, false, nil)
	o := a.options(t)
	o.Keyrings = append(o.Keyrings, a.signer.ring)
	src := &Source{URI: a.srv.URL + "/debian", Suite: "stable", Components: []string{"main"}}
	d, err := OpenDist(context.Background(), src, o)
	if err != nil {
		t.Fatal(err)
	}
	_, r, err := d.FetchIndex(context.Background(), o.Fetcher, "main", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r.Close()
	// Corrupt the cached, uncompressed index behind nroot's back.
	plain := d.Release.Files["main/binary-amd64/Packages"]
	path := indexPath(o.Fetcher, plain.SHA256)
	if err := os.WriteFile(path, []byte(strings.Replace(testPackages, "2.10-3", "9.99-9", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, r, err = d.FetchIndex(context.Background(), o.Fetcher, "main", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	var hm *fetch.HashMismatchError
	if !errors.As(err, &hm) {
		t.Fatalf("reading a corrupted cache entry: err = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("corrupted cache entry was not removed")
	}
}

// TestExpiredSnapshot: a Release past its Valid-Until is refused, and
// accepted with NoCheckValidUntil, marked Expired so the image's sources
// say so; a current one is not marked.
func TestExpiredSnapshot(t *testing.T) {
	expire := func(a *testArchive) {
		signed := string(a.files["dists/stable/InRelease"])
		_, text, _ := strings.Cut(signed, "\n\n")
		text, _, _ = strings.Cut(text, "-----BEGIN PGP SIGNATURE-----")
		text = strings.TrimRight(text, "\n") + "\nValid-Until: " + time.Now().UTC().Add(-30*time.Minute).Format(time.RFC1123) + "\n"
		a.files["dists/stable/InRelease"] = a.signer.clearsign(t, []byte(text))
	}
	for _, tt := range []struct {
		name             string
		tamper           func(*testArchive)
		noCheck, expired bool
		wantErr          string
	}{
		{"current", nil, false, false, ""},
		{"current, flag given", nil, true, false, ""},
		{"expired", expire, false, false, "expired: Valid-Until"},
		{"expired, flag given", expire, true, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestArchive(t, false, tt.tamper)
			o := a.options(t)
			o.Keyrings = append(o.Keyrings, a.signer.ring)
			o.NoCheckValidUntil = tt.noCheck
			d, err := OpenDist(context.Background(), &Source{URI: a.srv.URL + "/debian", Suite: "stable", Components: []string{"main"}}, o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Expired != tt.expired {
				t.Fatalf("Expired = %v, want %v", d.Expired, tt.expired)
			}
		})
	}
}
