package apt

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
	"time"
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
	return &Fetcher{
		Client:   &http.Client{Transport: tr},
		CacheDir: cacheDir,
		Retries:  3,
		Backoff:  500 * time.Millisecond,
		Log:      slog.New(slog.DiscardHandler),
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
	if err := writeFileAtomic(base+".data", body); err == nil {
		if b, err := json.Marshal(newMeta); err == nil {
			_ = writeFileAtomic(base+".json", b)
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
	dst := filepath.Join(f.CacheDir, kind, sum[:2], sum)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == size {
		return dst, nil
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

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
