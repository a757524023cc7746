// Package fetch downloads archive files over HTTP into nroot's cache:
// metadata revalidated, content known by its SHA256 stored under that
// hash and hashed again on every use, every body bounded in size and in
// idle time, and a cache others can write refused.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nroot/internal/atomicfile"
)

// Fetcher downloads archive files over HTTP into a shared cache. Small
// metadata is revalidated with If-None-Match/If-Modified-Since; content
// known by its SHA256 is stored under that hash and never fetched twice.
type Fetcher struct {
	Client   *http.Client
	CacheDir string
	Retries  int           // attempts after the first, for transient failures
	Backoff  time.Duration // first retry delay, doubled each time
	Log      *slog.Logger
	// Offline serves metadata from the cache without revalidating.
	Offline bool
	// IdleTimeout ends a download whose body sends nothing for this
	// long: a mirror that stalls mid-file would otherwise hang nroot.
	IdleTimeout time.Duration

	cacheOnce sync.Once
	cacheErr  error
	fileLocks sync.Map // cache path -> *sync.Mutex: one download of a file at a time
}

// ErrUnsafeCache says the cache directory can be written by someone other
// than the user nroot runs as, who could then plant packages or indices.
var ErrUnsafeCache = errors.New("cache directory writable by another user")

// checkCache makes the cache directory (mode 0700 when new) and refuses
// one that another user owns or can write: sudo keeping HOME, or a shared
// --cache-dir, would otherwise let them feed files into images built as
// root.
func (f *Fetcher) checkCache() error {
	f.cacheOnce.Do(func() {
		if err := os.MkdirAll(f.CacheDir, 0o700); err != nil {
			f.cacheErr = fmt.Errorf("cache %s: %w", f.CacheDir, err)
			return
		}
		f.cacheErr = CheckPrivateDir(f.CacheDir)
	})
	return f.cacheErr
}

// CheckPrivateDir refuses a directory that is not owned by this user or
// that group or others can write.
func CheckPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cache %s: %w", dir, err)
	}
	owner, ok := fileOwner(fi)
	if !ok {
		return nil // Windows: its ACLs are not Unix modes
	}
	if uid := os.Geteuid(); owner != uid {
		return fmt.Errorf("cache %s is owned by uid %d, not by uid %d that nroot runs as: %w; pass --cache-dir with a directory of your own (did sudo keep HOME?)", dir, owner, uid, ErrUnsafeCache)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("cache %s has mode %v: %w; chmod go-w %s, or pass --cache-dir with a private directory", dir, fi.Mode().Perm(), ErrUnsafeCache, dir)
	}
	return nil
}

// lockFile serialises work on one cache file: two suites can list the
// same index, two images the same package.
func (f *Fetcher) lockFile(path string) func() {
	m, _ := f.fileLocks.LoadOrStore(path, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// DefaultCacheDir is $XDG_CACHE_HOME/nroot, or ~/.cache/nroot.
func DefaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "nroot")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "nroot")
	}
	return filepath.Join(os.TempDir(), "nroot-cache")
}

// NewFetcher returns a Fetcher with timeouts suited to archive mirrors.
func NewFetcher(cacheDir string) *Fetcher {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 16
	// Local mirrors, as apt names them: file:// is read in place, and
	// copy:// (which apt copies into its cache) is read the same way, since
	// nroot copies every package into its cache anyway. Both go through
	// the same size and signed-hash checks as HTTP.
	local := http.NewFileTransport(http.Dir("/"))
	tr.RegisterProtocol("file", local)
	tr.RegisterProtocol("copy", local)
	return &Fetcher{
		Client:      &http.Client{Transport: tr},
		CacheDir:    cacheDir,
		Retries:     3,
		Backoff:     500 * time.Millisecond,
		IdleTimeout: 30 * time.Second,
		Log:         slog.New(slog.DiscardHandler),
	}
}

// HTTPError is a non-success HTTP status.
type HTTPError struct {
	URL    string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// IsNotFound reports whether err is an HTTP 404 or 410.
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusGone)
}

type cacheMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

func (f *Fetcher) metaPath(u string) string {
	s := sha256.Sum256([]byte(u))
	return filepath.Join(f.CacheDir, "meta", hex.EncodeToString(s[:16]))
}

// GetMeta fetches a small metadata file (InRelease, Release), revalidating
// a cached copy. The caller must verify what it gets: the cache is only a
// saving of bandwidth, never a source of trust.
func (f *Fetcher) GetMeta(ctx context.Context, u string) ([]byte, error) {
	if err := f.checkCache(); err != nil {
		return nil, err
	}
	base := f.metaPath(u)
	var meta cacheMeta
	cached, cerr := os.ReadFile(base + ".data")
	if cerr == nil {
		if b, err := os.ReadFile(base + ".json"); err == nil {
			_ = json.Unmarshal(b, &meta)
		}
		if f.Offline {
			return cached, nil
		}
	}
	var body []byte
	var newMeta cacheMeta
	err := f.retry(ctx, u, func() error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if cerr == nil && meta.URL == u {
			if meta.ETag != "" {
				req.Header.Set("If-None-Match", meta.ETag)
			}
			if meta.LastModified != "" {
				req.Header.Set("If-Modified-Since", meta.LastModified)
			}
		}
		resp, err := f.Client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		resp.Body = f.idle(resp.Body, u, cancel)
		if resp.StatusCode == http.StatusNotModified && cerr == nil {
			body = cached
			newMeta = meta
			return nil
		}
		if resp.StatusCode != http.StatusOK {
			return &HTTPError{URL: u, Status: resp.StatusCode}
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return err
		}
		newMeta = cacheMeta{URL: u, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(base+".data", body, 0o644); err == nil {
		if b, err := json.Marshal(newMeta); err == nil {
			_ = atomicfile.WriteFile(base+".json", b, 0o644)
		}
	}
	return body, nil
}

// retry runs fn, retrying transient failures with backoff. HTTP 4xx
// answers are final.
func (f *Fetcher) retry(ctx context.Context, u string, fn func() error) error {
	delay := f.Backoff
	var err error
	for attempt := 0; attempt <= f.Retries; attempt++ {
		if attempt > 0 {
			f.Log.Warn("retrying", "url", u, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		err = fn()
		if err == nil {
			return nil
		}
		var he *HTTPError
		if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s: mirror unreachable after %d attempts: %w", hostOf(u), f.Retries+1, err)
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}

// HashMismatchError says a file's size or SHA256 differs from the signed
// value.
type HashMismatchError struct {
	Name           string
	WantSize, Size int64
	WantHash, Hash string
}

func (e *HashMismatchError) Error() string {
	if e.WantSize != e.Size {
		return fmt.Sprintf("%s: size %d, but the signed index says %d; the mirror is inconsistent or the download was cut (try again or use another mirror)", e.Name, e.Size, e.WantSize)
	}
	return fmt.Sprintf("%s: SHA256 %s, but the signed index says %s; the file is corrupt or tampered with", e.Name, e.Hash, e.WantHash)
}

// FetchVerified downloads the first URL that answers into the
// content-addressed cache under the expected SHA256 and returns its path.
// A file already in the cache is not downloaded again. A download whose
// hash or size differs is removed and never enters the cache.
func (f *Fetcher) FetchVerified(ctx context.Context, urls []string, size int64, sum, kind string) (string, error) {
	sum = strings.ToLower(sum)
	if len(sum) != 64 {
		return "", fmt.Errorf("%s: no SHA256 to check against", kind)
	}
	if err := f.checkCache(); err != nil {
		return "", err
	}
	dst := filepath.Join(f.CacheDir, kind, sum[:2], sum)
	defer f.lockFile(dst)()
	// A hit is hashed again: the cache is a saving of bandwidth, never a
	// source of trust (about 0.1 s for a minbase's packages).
	if ok, err := hashMatches(dst, size, sum); ok {
		return dst, nil
	} else if err == nil {
		os.Remove(dst) // damaged or replaced: fetched again
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	var lastErr error
	for _, u := range urls {
		err := f.retry(ctx, u, func() error { return f.download(ctx, u, dst, size, sum) })
		if err == nil {
			return dst, nil
		}
		lastErr = err
		if !IsNotFound(err) {
			var hm *HashMismatchError
			if errors.As(err, &hm) {
				return "", err
			}
		}
	}
	return "", lastErr
}

// Cached returns the path of a file already in the cache under its
// SHA256, after hashing it again; false when it is absent or does not
// match (then FetchVerified fetches it).
func (f *Fetcher) Cached(kind string, size int64, sum string) (string, bool) {
	sum = strings.ToLower(sum)
	if len(sum) != 64 || f.checkCache() != nil {
		return "", false
	}
	dst := filepath.Join(f.CacheDir, kind, sum[:2], sum)
	defer f.lockFile(dst)()
	ok, _ := hashMatches(dst, size, sum)
	return dst, ok
}

// hashMatches reports whether path holds size bytes with the SHA256 sum;
// an error means there is no such file.
func hashMatches(path string, size int64, sum string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, nil
	}
	return hex.EncodeToString(h.Sum(nil)) == sum, nil
}

// download writes u to a partial file beside dst, resuming a previous
// partial download with a Range request, and renames it into place only
// once size and hash match.
func (f *Fetcher) download(ctx context.Context, u, dst string, size int64, sum string) error {
	part := dst + ".part"
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	have, _ := out.Seek(0, io.SeekEnd)
	if have >= size {
		have = 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	resp.Body = f.idle(resp.Body, u, cancel)
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		have = 0
	default:
		return &HTTPError{URL: u, Status: resp.StatusCode}
	}
	if err := out.Truncate(have); err != nil {
		return err
	}
	if _, err := out.Seek(have, io.SeekStart); err != nil {
		return err
	}
	// Never read more than the signed size: a hostile mirror cannot fill
	// the disk.
	if _, err := io.Copy(out, io.LimitReader(resp.Body, size-have+1)); err != nil {
		return err // keep the partial file for resume
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	if err != nil {
		return err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if n != size || got != sum {
		os.Remove(part)
		return &HashMismatchError{Name: u, WantSize: size, Size: n, WantHash: sum, Hash: got}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return os.Rename(part, dst)
}

// ErrStalled says a mirror stopped sending in the middle of a body.
var ErrStalled = errors.New("the mirror stopped sending")

// idleBody ends a response body that sends nothing for the fetcher's
// IdleTimeout, by cancelling its request.
type idleBody struct {
	io.ReadCloser
	url     string
	d       time.Duration
	timer   *time.Timer
	stalled atomic.Bool
}

func (f *Fetcher) idle(body io.ReadCloser, u string, cancel func()) io.ReadCloser {
	if f.IdleTimeout <= 0 {
		return body
	}
	b := &idleBody{ReadCloser: body, url: u, d: f.IdleTimeout}
	b.timer = time.AfterFunc(b.d, func() { b.stalled.Store(true); cancel() })
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	if err != nil && err != io.EOF && b.stalled.Load() {
		return n, fmt.Errorf("%s: nothing received for %v: %w", b.url, b.d, ErrStalled)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}

// Exists reports whether a URL answers 200 to a HEAD request, within the
// fetcher's timeouts and without retries.
func (f *Fetcher) Exists(ctx context.Context, u string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return false
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
