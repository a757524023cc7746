package apt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nroot/format/keyring"
	"nroot/internal/decompress"
	"nroot/internal/fetch"
)

// Options controls how suites are fetched and trusted.
type Options struct {
	Fetcher *fetch.Fetcher
	// Keyrings, when set, are the only keys trusted. When empty the
	// bundled keyring for the Release's Origin is used.
	Keyrings          []*keyring.Keyring
	NoCheckValidUntil bool
	// AllowOlderRelease accepts a Release older than one already seen
	// for the same suite and mirror (a snapshot); otherwise refused.
	AllowOlderRelease bool
	Now               time.Time // zero means time.Now()
	Log               *slog.Logger
}

func (o *Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

func (o *Options) fetcher() *fetch.Fetcher {
	if o.Fetcher == nil {
		o.Fetcher = fetch.NewFetcher("")
	}
	return o.Fetcher
}

func (o *Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Dist is one suite of one source whose Release has been verified.
type Dist struct {
	Source          *Source
	Release         *Release
	URL             string // the InRelease or Release fetched
	InReleaseSHA256 string // of the file as fetched
	Signer          string // fingerprint of the key that signed it
	Keyring         *keyring.Keyring
	// Expired is set when the Release was past its Valid-Until and
	// accepted because of NoCheckValidUntil (an archived snapshot).
	Expired bool
}

func (s *Source) distURL(file string) string {
	return strings.TrimRight(s.URI, "/") + "/dists/" + s.Suite + "/" + file
}

// OpenDist fetches and verifies a suite's InRelease, falling back to
// Release and Release.gpg, and checks its freshness and name.
func OpenDist(ctx context.Context, src *Source, o Options) (*Dist, error) {
	f := o.fetcher()
	d := &Dist{Source: src}
	inrelURL := src.distURL("InRelease")
	data, err := f.GetMeta(ctx, inrelURL)
	var signed *Signed
	switch {
	case err == nil:
		d.URL = inrelURL
		d.Keyring, err = chooseKeyring(o.Keyrings, data)
		if err != nil {
			return nil, fmt.Errorf("apt: %s: %w", inrelURL, err)
		}
		signed, err = VerifyInRelease(data, d.Keyring, o.now())
	case fetch.IsNotFound(err):
		o.log().Info("no InRelease, trying Release and Release.gpg", "suite", src.Suite)
		relURL := src.distURL("Release")
		data, err = f.GetMeta(ctx, relURL)
		if err != nil {
			return nil, fmt.Errorf("apt: suite %s: %w", src.Suite, notFoundHint(err, src))
		}
		sig, serr := f.GetMeta(ctx, src.distURL("Release.gpg"))
		if serr != nil {
			return nil, fmt.Errorf("apt: suite %s: Release is not signed (Release.gpg: %w); nroot does not use unsigned archives", src.Suite, serr)
		}
		d.URL = relURL
		d.Keyring, err = chooseKeyring(o.Keyrings, data)
		if err != nil {
			return nil, fmt.Errorf("apt: %s: %w", relURL, err)
		}
		signed, err = VerifyRelease(data, sig, d.Keyring, o.now())
	default:
		return nil, fmt.Errorf("apt: suite %s: %w", src.Suite, err)
	}
	if err != nil {
		var uk *UnknownKeyError
		if errors.As(err, &uk) {
			return nil, fmt.Errorf("apt: %s for %s %w, which is not in keyring %s; pass --keyring FILE with the archive's public key, or use a bundled keyring (nroot keyring list)", filepath.Base(d.URL), src.Suite, err, d.Keyring.Name)
		}
		return nil, fmt.Errorf("apt: %s: %w", d.URL, err)
	}
	sum := sha256.Sum256(data)
	d.InReleaseSHA256 = hex.EncodeToString(sum[:])
	d.Signer = signed.Fingerprint
	d.Release, err = ParseRelease(signed.Text)
	if err != nil {
		return nil, fmt.Errorf("apt: %s: %w", d.URL, err)
	}
	// The keyring was picked by the Origin read before verification;
	// the signed Origin must be the one that picked it.
	if k := keyring.ForOrigin(d.Release.Origin); len(o.Keyrings) == 0 && (k == nil || k.Name != d.Keyring.Name) {
		return nil, fmt.Errorf("apt: %s: the signed Origin %q is not the one the keyring %s was chosen for; the file outside the signature was altered", d.URL, d.Release.Origin, d.Keyring.Name)
	}
	err = d.Release.Check(CheckOptions{Suite: src.Suite, Now: o.now(), NoCheckValidUntil: o.NoCheckValidUntil})
	if err != nil {
		return nil, fmt.Errorf("apt: %s: %w", d.URL, err)
	}
	d.Expired = !d.Release.ValidUntil.IsZero() && o.now().After(d.Release.ValidUntil)
	if err := o.checkSeen(d); err != nil {
		return nil, fmt.Errorf("apt: %w", err)
	}
	return d, nil
}

func notFoundHint(err error, src *Source) error {
	if fetch.IsNotFound(err) {
		return fmt.Errorf("%w: no such suite at %s; check the suite name and the mirror URL", err, src.URI)
	}
	return err
}

// chooseKeyring picks the user's keyrings, or the bundled one for the
// Origin named in the (not yet verified) text. The Origin only selects
// which keys to try; trust still comes from the signature.
func chooseKeyring(user []*keyring.Keyring, data []byte) (*keyring.Keyring, error) {
	if len(user) > 0 {
		return keyring.Merge("user", user...), nil
	}
	origin := unverifiedField(data, "Origin")
	if k := keyring.ForOrigin(origin); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no bundled keyring for Origin %q; pass --keyring FILE with the archive's public key", origin)
}

func unverifiedField(data []byte, name string) string {
	for _, line := range strings.Split(string(data[:min(len(data), 8192)]), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// HasComponent reports whether the suite carries a component, allowing
// for the security archive's "updates/main" naming.
func (d *Dist) HasComponent(c string) bool {
	return slices.Contains(d.Release.Components, c) || slices.Contains(d.Release.Components, "updates/"+c)
}

// compressions in order of preference, as apt prefers them.
var compressions = []string{".xz", ".gz", ".zst", ""}

// FetchIndex downloads, verifies and caches one Packages index, returning
// a reader over its uncompressed content that re-checks the SHA256 as it
// is read. It returns nil and no error when the suite has no such index.
func (d *Dist) FetchIndex(ctx context.Context, f *fetch.Fetcher, component, arch string) (*Index, io.ReadCloser, error) {
	base := component + "/binary-" + arch + "/Packages"
	plain, hasPlain := d.Release.Files[base]
	idx := &Index{Source: d.Source, Release: d.Release, Component: component, Arch: arch, Path: base}
	// The uncompressed index is cached under its signed hash, so a warm
	// run reads it without decompressing again.
	if hasPlain {
		idx.SHA256 = plain.SHA256
		if r, err := openVerified(indexPath(f, plain.SHA256), plain, d.Source.distURL(base)); err == nil {
			return idx, r, nil
		}
	}
	var missing []string
	for _, ext := range compressions {
		fh, ok := d.Release.Files[base+ext]
		if !ok || (ext == "" && !hasPlain) {
			continue
		}
		urls := []string{d.Source.distURL(base + ext)}
		if d.Release.AcquireByHash {
			dir := component + "/binary-" + arch + "/by-hash/SHA256/" + fh.SHA256
			urls = []string{d.Source.distURL(dir), d.Source.distURL(base + ext)}
		}
		path, err := f.FetchVerified(ctx, urls, fh.Size, fh.SHA256, "download")
		if fetch.IsNotFound(err) {
			// Listed but absent, as plain Packages usually is; but
			// if every listed form is absent, the index is missing.
			missing = append(missing, d.Source.distURL(base+ext))
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("apt: index %s: %w", d.Source.distURL(base+ext), err)
		}
		if !hasPlain {
			r, err := openCompressed(path, ext)
			if err != nil {
				return nil, nil, fmt.Errorf("apt: index %s: %w", path, err)
			}
			idx.SHA256 = fh.SHA256
			return idx, r, nil
		}
		if err := decompressInto(f, path, ext, plain); err != nil {
			return nil, nil, fmt.Errorf("apt: index %s: %w", d.Source.distURL(base+ext), err)
		}
		os.Remove(path) // the uncompressed copy is what is kept
		r, err := openVerified(indexPath(f, plain.SHA256), plain, d.Source.distURL(base))
		if err != nil {
			return nil, nil, err
		}
		return idx, r, nil
	}
	if len(missing) > 0 {
		// The signed Release says the index exists: a mirror that
		// answers 404 for all of it would otherwise quietly strip the
		// suite's packages, security updates among them.
		return nil, nil, fmt.Errorf("apt: index %s is listed in the signed Release of %s but the mirror does not serve it (%s): %w", base, d.Source.Suite, strings.Join(missing, ", "), ErrIndexMissing)
	}
	return nil, nil, nil
}

// ErrIndexMissing says a Packages index the signed Release lists could
// not be fetched in any of its forms.
var ErrIndexMissing = errors.New("index missing from the mirror")

func indexPath(f *fetch.Fetcher, sum string) string {
	return filepath.Join(f.CacheDir, "indices", sum[:2], sum)
}

// decompressInto writes the uncompressed index into the cache, under its
// signed hash, only if it matches.
func decompressInto(f *fetch.Fetcher, path, ext string, want FileHash) error {
	r, err := openCompressed(path, ext)
	if err != nil {
		return err
	}
	defer r.Close()
	dst := indexPath(f, want.SHA256)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, want.Size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != want.Size || got != want.SHA256 {
		return &fetch.HashMismatchError{Name: want.Path, WantSize: want.Size, Size: n, WantHash: want.SHA256, Hash: got}
	}
	return os.Rename(tmp.Name(), dst)
}

func openCompressed(path, ext string) (io.ReadCloser, error) {
	format, err := decompress.ByExt(ext)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := decompress.NewStreamReader(format, fh)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{r, closeBoth{r, fh}}, nil
}

type closeBoth [2]io.Closer

func (c closeBoth) Close() error {
	err := c[0].Close()
	if err2 := c[1].Close(); err == nil {
		err = err2
	}
	return err
}

// verifyingReader hashes what passes through and fails at EOF when the
// content differs from the signed hash, so a corrupted cache entry is
// caught by whoever reads it.
type verifyingReader struct {
	f    *os.File
	h    interface{ Sum([]byte) []byte }
	w    io.Writer
	n    int64
	want FileHash
	name string
	path string
}

func openVerified(path string, want FileHash, name string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	return &verifyingReader{f: f, h: h, w: h, want: want, name: name, path: path}, nil
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.w.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		got := hex.EncodeToString(v.h.Sum(nil))
		if v.n != v.want.Size || got != v.want.SHA256 {
			os.Remove(v.path)
			return n, &fetch.HashMismatchError{Name: v.name + " (cached, now removed; run again)", WantSize: v.want.Size, Size: v.n, WantHash: v.want.SHA256, Hash: got}
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
