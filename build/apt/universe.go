package apt

import (
	"context"
	"fmt"
	"io"
	"nroot/internal/usage"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"

	"nroot/internal/fetch"
	"nroot/internal/parallel"
)

// Universe is every package available from a set of verified suites, for
// the architectures being installed. The first architecture is native.
type Universe struct {
	Archs []string
	Dists []*Dist
	// byName maps a package name to its versions, every architecture.
	byName map[string][]*Package
	// providers maps a virtual name to the packages that provide it.
	providers map[string][]provision

	names []string // sorted real package names, built on demand

	mu      sync.Mutex
	parsed  map[*Package]*relations
	version map[string]version.Version
}

type provision struct {
	pkg     *Package
	version string // "" when unversioned
}

type relations struct {
	preDepends, depends, conflicts, breaks []dependency.Relation
}

// NewUniverse returns an empty universe for the given architectures.
func NewUniverse(archs []string) *Universe {
	return &Universe{
		Archs:     archs,
		byName:    map[string][]*Package{},
		providers: map[string][]provision{},
		parsed:    map[*Package]*relations{},
		version:   map[string]version.Version{},
	}
}

// Native is the native architecture.
func (u *Universe) Native() string { return u.Archs[0] }

// Add reads a Packages index into the universe.
func (u *Universe) Add(idx *Index, r io.Reader) (int, error) {
	name := "Packages"
	if idx != nil {
		name = idx.Source.distURL(idx.Path)
	}
	pr := NewPackagesReader(r, name)
	n := 0
	for {
		p, err := pr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if p.Architecture != "all" && !u.hasArch(p.Architecture) {
			continue
		}
		p.Origin = idx
		u.add(p)
		n++
	}
}

// AddLocal adds a package file, which then wins over every archive
// version of its name (a same version from the archive is dropped: the
// file given is the one wanted).
func (u *Universe) AddLocal(l Local) (*Package, error) {
	dir, base := filepath.Split(l.Path)
	text := strings.TrimRight(l.Control, "\n") + fmt.Sprintf("\nFilename: %s\nSize: %d\nSHA256: %s\n", base, l.Size, l.SHA256)
	p, err := NewPackagesReader(strings.NewReader(text), l.Path).Next()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.Path, err)
	}
	if p.Architecture != "all" && !u.hasArch(p.Architecture) {
		return nil, fmt.Errorf("%s is for %s, not %s: add it to --architectures or give the package for %s", l.Path, p.Architecture, strings.Join(u.Archs, ","), u.Native())
	}
	kept := u.byName[p.Name][:0]
	for _, q := range u.byName[p.Name] {
		if q.Architecture != p.Architecture || q.Version != p.Version {
			kept = append(kept, q)
		}
	}
	u.byName[p.Name] = kept
	p.Origin = &Index{Source: &Source{URI: "file://" + strings.TrimSuffix(dir, "/"), Suite: "local"}, Path: l.Path, SHA256: l.SHA256}
	p.local = true
	u.add(p)
	return p, nil
}

func (u *Universe) hasArch(a string) bool {
	for _, x := range u.Archs {
		if x == a {
			return true
		}
	}
	return false
}

func (u *Universe) add(p *Package) {
	for _, q := range u.byName[p.Name] {
		if q.Architecture == p.Architecture && q.Version == p.Version {
			return // the same version from a second index (binary-all, a mirror)
		}
	}
	u.byName[p.Name] = append(u.byName[p.Name], p)
	for _, pv := range parseProvides(p.Provides) {
		u.providers[pv.name] = append(u.providers[pv.name], provision{p, pv.version})
	}
	u.names = nil
}

type provided struct{ name, version string }

// parseProvides reads a Provides field: "name [(= version)]" entries
// separated by commas. It is the one relationship field read for every
// package, so it has its own small parser; entries it cannot read are
// skipped, as they would match nothing.
func parseProvides(s string) []provided {
	if s == "" {
		return nil
	}
	var out []provided
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		name, rest := e, ""
		if i := strings.IndexAny(e, " \t("); i >= 0 {
			name, rest = e[:i], strings.TrimSpace(e[i:])
		}
		name, _, _ = strings.Cut(name, ":")
		if name == "" {
			continue
		}
		v := ""
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
			rel := strings.TrimSpace(rest[1 : len(rest)-1])
			if op, ver, ok := strings.Cut(rel, "="); ok && strings.TrimSpace(op) == "" {
				v = strings.TrimSpace(ver)
			}
		}
		out = append(out, provided{name, v})
	}
	return out
}

// Len is the number of package versions held.
func (u *Universe) Len() int {
	n := 0
	for _, v := range u.byName {
		n += len(v)
	}
	return n
}

func (u *Universe) ver(s string) version.Version {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.version[s]
	if !ok {
		v, _ = version.Parse(s)
		u.version[s] = v
	}
	return v
}

// Compare orders two Debian version strings.
func (u *Universe) Compare(a, b string) int { return version.Compare(u.ver(a), u.ver(b)) }

func (u *Universe) relations(p *Package) (*relations, error) {
	u.mu.Lock()
	r, ok := u.parsed[p]
	u.mu.Unlock()
	if ok {
		return r, nil
	}
	r = &relations{}
	for _, f := range []struct {
		name string
		text string
		dst  *[]dependency.Relation
	}{
		{"Pre-Depends", p.PreDepends, &r.preDepends},
		{"Depends", p.Depends, &r.depends},
		{"Conflicts", p.Conflicts, &r.conflicts},
		{"Breaks", p.Breaks, &r.breaks},
	} {
		if f.text == "" {
			continue
		}
		d, err := dependency.Parse(f.text)
		if err != nil {
			return nil, fmt.Errorf("package %s: %s: %w", p.ID(), f.name, err)
		}
		*f.dst = d.Relations
	}
	u.mu.Lock()
	u.parsed[p] = r
	u.mu.Unlock()
	return r, nil
}

// Candidate returns the version apt would install of name for arch: the
// highest version among the suites that are not NotAutomatic (apt gives
// those pin 1), then the highest of those that are.
func (u *Universe) Candidate(name, arch string) *Package {
	var best *Package
	for _, p := range u.byName[name] {
		if p.Architecture != arch && p.Architecture != "all" {
			continue
		}
		if best == nil || u.better(p, best) {
			best = p
		}
	}
	return best
}

func (u *Universe) better(p, q *Package) bool {
	if p.local != q.local {
		return p.local // a file given wins, as with apt install ./foo.deb
	}
	pa, qa := notAutomatic(p), notAutomatic(q)
	if pa != qa {
		return !pa
	}
	if c := u.Compare(p.Version, q.Version); c != 0 {
		return c > 0
	}
	// The same version in two architectures: prefer the native one.
	return p.Architecture != "all" && q.Architecture == "all"
}

func notAutomatic(p *Package) bool {
	return p.Origin != nil && p.Origin.Release != nil && p.Origin.Release.NotAutomatic
}

// Names returns every real package name, sorted.
func (u *Universe) Names() []string {
	if u.names == nil {
		u.names = make([]string, 0, len(u.byName))
		for n := range u.byName {
			u.names = append(u.names, n)
		}
		sort.Strings(u.names)
	}
	return u.names
}

// Load opens every source's suite and reads its indices.
func Load(ctx context.Context, sources []*Source, archs []string, o Options) (*Universe, error) {
	dists, err := OpenDists(ctx, sources, o)
	if err != nil {
		return nil, err
	}
	return LoadDists(ctx, dists, archs, o)
}

// OpenDists opens several suites concurrently.
func OpenDists(ctx context.Context, sources []*Source, o Options) ([]*Dist, error) {
	dists := make([]*Dist, len(sources))
	err := parallel.Each(ctx, len(sources), len(sources), func(ctx context.Context, i int) error {
		d, err := OpenDist(ctx, sources[i], o)
		dists[i] = d
		return err
	})
	if err != nil {
		return nil, err
	}
	return dists, nil
}

// LoadDists fetches the Packages indices of verified suites for the
// architectures and reads them. Indices are fetched concurrently; the
// universe is filled in a fixed order so the result does not depend on
// timing.
func LoadDists(ctx context.Context, dists []*Dist, archs []string, o Options) (*Universe, error) {
	if o.Fetcher == nil {
		o.Fetcher = fetch.NewFetcher("")
	}
	u := NewUniverse(archs)
	u.Dists = dists

	type job struct {
		d         *Dist
		component string
		arch      string
	}
	// The architectures asked for must be the suite's: an unknown one
	// would only resolve to nothing.
	if len(dists) > 0 && len(dists[0].Release.Architectures) > 0 {
		for _, a := range archs {
			if !slices.Contains(dists[0].Release.Architectures, a) {
				return nil, &usage.Error{Option: "--architectures", Value: a, Why: fmt.Sprintf("suite %s has %s", dists[0].Source.Suite, strings.Join(slices.DeleteFunc(slices.Clone(dists[0].Release.Architectures), func(s string) bool { return s == "all" }), ", "))}
			}
		}
	}
	var jobs []job
	for _, d := range dists {
		for _, c := range d.Source.Components {
			if !d.HasComponent(c) {
				return nil, fmt.Errorf("apt: suite %s at %s has no component %q (it has %s)", d.Source.Suite, d.Source.URI, c, strings.Join(d.Release.Components, ", "))
			}
			as := append([]string(nil), archs...)
			if hasAllIndex(d.Release) {
				as = append(as, "all")
			}
			for _, a := range as {
				jobs = append(jobs, job{d, c, a})
			}
		}
	}
	// Fetched (downloaded, verified, decompressed into the cache) four at
	// a time; read into the universe in a fixed order.
	type fetched struct {
		idx *Index
		r   io.ReadCloser
	}
	got := make([]fetched, len(jobs))
	closeAll := func() {
		for _, f := range got {
			if f.r != nil {
				f.r.Close()
			}
		}
	}
	err := parallel.Each(ctx, len(jobs), 4, func(ctx context.Context, i int) error {
		j := jobs[i]
		idx, r, err := j.d.FetchIndex(ctx, o.Fetcher, j.component, j.arch)
		got[i] = fetched{idx, r}
		return err
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	defer closeAll()
	for i, j := range jobs {
		f := got[i]
		if f.idx == nil {
			if j.arch != "all" {
				o.log().Warn("suite has no index for architecture", "suite", j.d.Source.Suite, "component", j.component, "arch", j.arch)
			}
			continue
		}
		n, err := u.Add(f.idx, f.r)
		if err != nil {
			return nil, fmt.Errorf("apt: %w", err)
		}
		o.log().Debug("read index", "url", j.d.Source.distURL(f.idx.Path), "packages", n)
	}
	return u, nil
}

// hasAllIndex says whether arch:all packages live only in binary-all.
// "No-Support-for-Architecture-all: Packages" means binary-ARCH still
// carries them, and apt then skips binary-all.
func hasAllIndex(r *Release) bool {
	if r.noAllSupport {
		return false
	}
	for _, a := range r.Architectures {
		if a == "all" {
			return true
		}
	}
	return false
}

// Knows says whether name is a package of the universe, real or
// provided, in any architecture: whether apt could find something to
// install by that name.
func (u *Universe) Knows(name string) bool {
	return len(u.byName[name]) > 0 || len(u.providers[name]) > 0
}
