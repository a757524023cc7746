package rootfs

import (
	"bufio"
	"hash/fnv"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"nroot/build/deb"
	"nroot/build/lockfile"
	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
	"nroot/internal/parallel"
	"nroot/internal/progress"
)

// UnpackOptions control Unpack.
type UnpackOptions struct {
	// ClampMtime, when set, is the latest mtime written.
	ClampMtime time.Time
	// Log receives progress.
	Progress io.Writer
	// Jobs is how many packages unpack at once (default: one per CPU).
	Jobs int
	// TarCache, when set, is a directory where each package's data
	// archive is kept as zstd, so a warm build does not decode xz again.
	TarCache string
	// Filter, when set, leaves out what dpkg's path-exclude would.
	Filter *deb.PathFilter
	// Arrivals, when set, gives each package's file as its download
	// ends, in place of Unpack's fetched map: unpacking then overlaps
	// the downloads.
	Arrivals *Arrivals
}

// mergedUsrDirs are the directories that become symlinks into /usr, per
// architecture, as debootstrap and mmdebstrap's merged-usr hook make them.
func mergedUsrDirs(arch string) []string {
	extra := map[string][]string{
		"amd64": {"lib32", "lib64", "libx32"}, "i386": {"lib64", "libx32"},
		"mips": {"lib32", "lib64"}, "mipsel": {"lib32", "lib64"}, "mips64el": {"lib32", "lib64", "libo32"},
		"powerpc": {"lib64"}, "ppc64": {"lib32", "lib64"}, "ppc64el": {"lib64"}, "s390x": {"lib32"},
		"sparc64": {"lib32", "lib64"}, "x32": {"lib32", "lib64", "libx32"},
	}
	return append([]string{"bin", "sbin", "lib"}, extra[arch]...)
}

// Unpack writes every package of the plan into target, which must exist
// and be empty, and records them in the dpkg database as unpacked. It
// runs nothing from the packages. Packages are unpacked in parallel; where
// two ship the same file, the one later in unpack order wins, as it would
// if dpkg unpacked them one after the other.
func Unpack(ctx context.Context, plan *lockfile.Plan, fetched Fetched, target string, o UnpackOptions) ([]*Unpacked, error) {
	root, err := fsroot.Open(target)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fileOf := func(ctx context.Context, p *lockfile.Package) (string, error) {
		if o.Arrivals != nil {
			return o.Arrivals.Wait(ctx, p.SHA256)
		}
		return fetched[p.SHA256], nil
	}
	order := unpackOrder(plan)
	if len(order) > 0 && order[0].Name == "base-files" {
		file, err := fileOf(ctx, order[0])
		if err != nil {
			return nil, fmt.Errorf("base-files: %w", err)
		}
		ships, err := shipsMergedUsr(file)
		if err != nil {
			return nil, fmt.Errorf("base-files: %w", err)
		}
		if !ships {
			if err := makeMergedUsr(root, plan.Architectures[0]); err != nil {
				return nil, err
			}
		}
	}
	chown := os.Geteuid() == 0
	bar := progress.New(o.Progress, "unpack", 0, len(order))
	bar.Unit = "packages"
	out := make([]*Unpacked, len(order))
	cl := newClaims()
	// Creating inodes dominates unpacking on slow (virtual) disks and
	// overlaps well, so several goroutines create files while the
	// packages' archives are read.
	pool := fsroot.NewWritePool(4*runtime.NumCPU(), 64<<20)
	defer pool.Close()
	unpack := func(ctx context.Context, i int) error {
		p := order[i]
		file, err := fileOf(ctx, p)
		if err != nil {
			return fmt.Errorf("unpack %s %s: %w", p.Name, p.Version, err)
		}
		ip, err := unpackOne(root, p, file, o.TarCache, deb.UnpackOptions{
			Chown: chown, Devices: chown, ClampMtime: o.ClampMtime, DeferDirs: true, Pool: pool, Filter: o.Filter,
			Claim: func(rel string) (bool, func()) { return cl.claim(rel, i) },
		})
		if err != nil {
			return fmt.Errorf("unpack %s %s: %w", p.Name, p.Version, err)
		}
		out[i] = ip
		bar.Item()
		return nil
	}
	// base-files first and alone: it may ship the merged-/usr symlinks
	// the others write through.
	start := 0
	if len(order) > 0 && order[0].Name == "base-files" {
		if err := unpack(ctx, 0); err != nil {
			return nil, err
		}
		start = 1
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	// Largest first, so that no big package is left unpacking alone at
	// the end; which package wins a shared path does not depend on it.
	feedOrder := make([]int, 0, len(order))
	for i := start; i < len(order); i++ {
		feedOrder = append(feedOrder, i)
	}
	sort.SliceStable(feedOrder, func(a, b int) bool { return order[feedOrder[a]].Size > order[feedOrder[b]].Size })
	if err := parallel.Each(ctx, len(feedOrder), jobs, func(ctx context.Context, k int) error { return unpack(ctx, feedOrder[k]) }); err != nil {
		return nil, err
	}
	bar.Finish()
	if err := applyDirs(root, out); err != nil {
		return nil, err
	}
	if err := writeDpkgDB(root, out, plan.Architectures); err != nil {
		return nil, fmt.Errorf("dpkg database: %w", err)
	}
	return out, nil
}

// claims serialises writes of one path by packages unpacking at once and
// lets the package later in unpack order win.
type claims struct {
	stripes [256]sync.Mutex
	mu      sync.Mutex
	owner   map[string]int
}

func newClaims() *claims { return &claims{owner: map[string]int{}} }

func (c *claims) claim(rel string, i int) (bool, func()) {
	h := fnv.New32a()
	h.Write([]byte(rel))
	m := &c.stripes[h.Sum32()%uint32(len(c.stripes))]
	m.Lock()
	c.mu.Lock()
	o, ok := c.owner[rel]
	if ok && o > i {
		c.mu.Unlock()
		m.Unlock()
		return false, func() {}
	}
	c.owner[rel] = i
	c.mu.Unlock()
	return true, m.Unlock
}

// applyDirs gives each directory the metadata of the last package in
// unpack order that ships it, deepest directories first.
func applyDirs(root *fsroot.Root, pkgs []*Unpacked) error {
	final := map[string]fsroot.DirMeta{}
	for _, p := range pkgs {
		for _, d := range p.manifest.Dirs {
			final[d.Rel] = d
		}
	}
	dirs := slices.Collect(maps.Values(final))
	fsroot.SortDirs(dirs)
	return fsroot.ApplyDirs(root, dirs)
}

// unpackOrder puts base-files first, since it may ship the merged-/usr
// symlinks every other package writes through, then the rest by name.
func unpackOrder(plan *lockfile.Plan) []*lockfile.Package {
	var out []*lockfile.Package
	for i := range plan.Packages {
		out = append(out, &plan.Packages[i])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Name == "base-files") != (out[j].Name == "base-files") {
			return out[i].Name == "base-files"
		}
		return false
	})
	return out
}

// unpackOne unpacks one package. With a tar cache, the data archive is
// read from an earlier run's zstd copy when there is one (xz decoding is
// most of an unpack's time), or saved there on the way.
func unpackOne(root *fsroot.Root, p *lockfile.Package, file, tarCache string, o deb.UnpackOptions) (*Unpacked, error) {
	if file == "" {
		return nil, fmt.Errorf("not in the download cache")
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := deb.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ctl := r.Control()
	if ctl.Name() != p.Name || ctl.Fields.Get("Version") != p.Version {
		return nil, fmt.Errorf("%s is %s %s, not the package the index promised", file, ctl.Name(), ctl.Fields.Get("Version"))
	}
	o.Conffiles = conffileSet(ctl)
	tr, finish, err := dataTar(r, p.SHA256, tarCache)
	if err != nil {
		return nil, err
	}
	m, err := deb.Unpack(tr, root, o)
	if err = finish(err); err != nil {
		return nil, err
	}
	return &Unpacked{ctl: ctl, manifest: m, multi: ctl.Fields.Get("Multi-Arch") == "same"}, nil
}

// zstd coders are reused across packages: each new one allocates its
// tables and history afresh.
var (
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		return e
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		return d
	}}
)

// dataTar opens the package's data archive, from the tar cache when it
// has it. finish must be called with the unpack's error; it completes or
// discards the cache entry and returns the error to report.
func dataTar(r *deb.Reader, sum, cacheDir string) (*tar.Reader, func(error) error, error) {
	if cacheDir == "" {
		tr, closer, err := r.Data()
		if err != nil {
			return nil, nil, err
		}
		return tr, func(err error) error { closer.Close(); return err }, nil
	}
	path := filepath.Join(cacheDir, sum[:2], sum+".tar.zst")
	if want, err := os.ReadFile(path + ".sha256"); err == nil {
		if f, err := os.Open(path); err == nil {
			return cachedTar(f, path, strings.TrimSpace(string(want)))
		}
	}
	src, closer, err := r.DataStream()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		closer.Close()
		return nil, nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 256<<10)
	enc := zstdEncoders.Get().(*zstd.Encoder)
	enc.Reset(bw)
	tr := tar.NewReader(io.TeeReader(src, enc))
	return tr, func(err error) error {
		if err == nil {
			// The rest of the stream (end-of-archive blocks) belongs in
			// the copy too.
			_, err = io.Copy(enc, src)
		}
		closer.Close()
		cerr := enc.Close()
		zstdEncoders.Put(enc)
		if err == nil && cerr == nil {
			cerr = bw.Flush()
		}
		if ferr := tmp.Close(); cerr == nil {
			cerr = ferr
		}
		// The copy's hash is written first, so an entry is never used
		// without one.
		if err == nil && cerr == nil && atomicfile.WriteFile(path+".sha256", []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644) == nil {
			os.Rename(tmp.Name(), path)
		} else {
			os.Remove(tmp.Name())
		}
		return err
	}, nil
}

// cachedTar reads a data archive from the tar cache, hashing the copy as
// it goes: finish fails the unpack (and removes the entry) when the copy
// is not the one written, so a damaged or replaced entry never completes
// an image.
func cachedTar(f *os.File, path, want string) (*tar.Reader, func(error) error, error) {
	h := sha256.New()
	z := zstdDecoders.Get().(*zstd.Decoder)
	in := io.TeeReader(f, h)
	if err := z.Reset(bufio.NewReaderSize(in, 256<<10)); err != nil {
		f.Close()
		return nil, nil, err
	}
	return tar.NewReader(z), func(err error) error {
		z.Reset(nil)
		zstdDecoders.Put(z)
		if err == nil {
			_, err = io.Copy(h, f) // what the decoder did not read
		}
		f.Close()
		if err == nil && hex.EncodeToString(h.Sum(nil)) != want {
			err = fmt.Errorf("SHA256 differs from the one recorded when it was written: %w", ErrCacheTampered)
		}
		if err != nil {
			// A damaged cache entry must not poison the next build.
			os.Remove(path)
			os.Remove(path + ".sha256")
			return fmt.Errorf("%w (from the unpacked-data cache %s, now removed; run again)", err, path)
		}
		return nil
	}, nil
}

// ErrCacheTampered says a cache entry is not what nroot wrote.
var ErrCacheTampered = errors.New("cache entry changed since it was written")

// shipsMergedUsr reports whether a base-files package ships /bin as a
// symlink (trixie and later), so the merged-/usr layout comes with it.
func shipsMergedUsr(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, err := deb.NewReader(f)
	if err != nil {
		return false, err
	}
	tr, closer, err := r.Data()
	if err != nil {
		return false, err
	}
	defer closer.Close()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./") == "bin" {
			return h.Typeflag == tar.TypeSymlink, nil
		}
	}
}

// makeMergedUsr creates /usr/DIR and the DIR -> usr/DIR symlinks before
// any package is unpacked, as debootstrap does for bookworm.
func makeMergedUsr(root *fsroot.Root, arch string) error {
	for _, d := range mergedUsrDirs(arch) {
		if err := root.MkdirAll("usr/"+d, 0o755); err != nil {
			return err
		}
		if err := root.Symlink("usr/"+d, d, fsroot.Meta{}); err != nil {
			return err
		}
	}
	return nil
}
