// Package apt does what apt does for a bootstrap, in Go and on no
// host's apt: it fetches a suite's signed Release (InRelease, or Release
// and Release.gpg), verifies it with the bundled or given keyrings,
// fetches and checks the Packages indices it lists, and resolves a
// variant's package set as apt and mmdebstrap do, into a lockfile.Plan.
package apt

import (
	"context"
	"fmt"
	"nroot/internal/usage"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"

	"nroot/build/hostapt"
	"nroot/build/lockfile"
	"nroot/internal/buildinfo"
	"nroot/internal/fetch"
)

// Config is what a resolution starts from, in mmdebstrap's terms.
type Config struct {
	Suite      string
	Mirrors    []string // MIRROR arguments; none means FindMirror
	Components []string // default: main
	Archs      []string // default: the host's architecture
	Variant    string   // default: important
	Include    []string
	Exclude    []string
	// MergedUsr: see Request.MergedUsr.
	MergedUsr bool
	// NoUpdates and NoSecurity leave out the SUITE-updates and
	// SUITE-security pockets that are otherwise added, and required.
	NoUpdates, NoSecurity bool
	// HostSources is where the host's APT sources are read from when no
	// mirror is given; nil means hostapt.SourceFiles.
	HostSources []string
	// Local are package files given to --include: each is installed,
	// preferred over the archive's versions of its name, and its
	// dependencies resolved from the archive, as apt installs ./foo.deb.
	Local []Local
}

// Local is a package file: its control paragraph as dpkg-deb -f prints
// it, and the file's path, size and SHA256.
type Local struct {
	Path    string
	Control string
	Size    int64
	SHA256  string
}

// HostArch is the Debian name of the architecture nroot runs on.
func HostArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "mips64le":
		return "mips64el"
	case "loong64":
		return "loong64"
	}
	return runtime.GOARCH
}

// token is what an architecture or component name may be.
var token = regexp.MustCompile(`^[a-z0-9][a-z0-9.+/-]*$`)

// Validate checks a configuration before anything is fetched.
func (cfg Config) Validate() error {
	if cfg.Suite == "" {
		return &usage.Error{Option: "SUITE", Value: "", Why: "give a suite (e.g. stable, trixie, noble)"}
	}
	if !slices.Contains(Variants, variantName(cfg.Variant)) {
		return &usage.Error{Option: "--variant", Value: cfg.Variant, Why: "one of " + strings.Join(Variants, ", ")}
	}
	for _, a := range cfg.Archs {
		if !token.MatchString(a) || strings.Contains(a, "/") {
			return &usage.Error{Option: "--architectures", Value: strings.Join(cfg.Archs, ","), Why: "give Debian architecture names, native first, e.g. amd64 or arm64,armhf"}
		}
	}
	for _, c := range cfg.Components {
		if !token.MatchString(c) {
			return &usage.Error{Option: "--components", Value: strings.Join(cfg.Components, ","), Why: "give component names, e.g. main,contrib"}
		}
	}
	return nil
}

// Resolve finds the mirror, opens and verifies the suite and its updates
// and security suites, reads their indices and resolves the variant.
func Resolve(ctx context.Context, cfg Config, o Options) (*lockfile.Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sources, dists, err := sources(ctx, cfg, o)
	if err != nil {
		return nil, err
	}
	if dists == nil {
		if dists, err = OpenDists(ctx, sources, o); err != nil {
			return nil, err
		}
	}
	archs := cfg.Archs
	if len(archs) == 0 {
		archs = []string{HostArch()}
	}
	u, err := LoadDists(ctx, dists, archs, o)
	if err != nil {
		return nil, err
	}
	include := cfg.Include
	for _, l := range cfg.Local {
		p, err := u.AddLocal(l)
		if err != nil {
			return nil, err
		}
		include = append(include, p.Name)
	}
	req := Request{Variant: cfg.Variant, Include: include, Exclude: cfg.Exclude, SeedSuite: sources[0].Suite, MergedUsr: cfg.MergedUsr}
	res, err := u.Resolve(req)
	if err != nil {
		return nil, fmt.Errorf("resolve %s %s: %w", sources[0].Suite, variantName(cfg.Variant), err)
	}
	plan := NewPlan(u, res, cfg)
	plan.Suite = cfg.Suite
	return plan, nil
}

func variantName(v string) string {
	if v == "" {
		return "important"
	}
	return v
}

// Sources works out the sources for a configuration. MIRROR arguments are
// taken as they are. Without any, the mirror is found (FindMirror), the
// suite is opened to learn its codename, and for Debian and Ubuntu the
// -updates and -security suites are added when the archive has them.
func Sources(ctx context.Context, cfg Config, o Options) ([]*Source, error) {
	srcs, _, err := sources(ctx, cfg, o)
	return srcs, err
}

// sources is Sources that also returns the suites it had to open to
// decide, so they are not fetched and verified twice; nil when it opened
// none.
func sources(ctx context.Context, cfg Config, o Options) ([]*Source, []*Dist, error) {
	comps := cfg.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	if cfg.Suite == "" {
		return nil, nil, fmt.Errorf("no suite given (e.g. stable, trixie, noble)")
	}
	var mirror, security, from string
	switch {
	case len(cfg.Mirrors) == 1 && len(strings.Fields(cfg.Mirrors[0])) == 1:
		// One bare URL: the archive to use, with its pockets.
		if err := hostapt.CheckURI(cfg.Mirrors[0]); err != nil {
			return nil, nil, err
		}
		mirror, from = cfg.Mirrors[0], "command line"
	case len(cfg.Mirrors) > 0:
		// Source lines, or several mirrors: exactly as given.
		var out []*Source
		for _, m := range cfg.Mirrors {
			s, err := ParseSourceArg(m, cfg.Suite, comps)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, s)
		}
		return out, nil, nil
	default:
		patterns := cfg.HostSources
		if patterns == nil {
			patterns = hostapt.SourceFiles
		}
		host, err := hostapt.Sources(patterns)
		if err != nil {
			return nil, nil, err
		}
		if mirror, security, from, err = hostapt.FindMirror("", host); err != nil {
			return nil, nil, err
		}
		o.log().Info("mirror", "uri", mirror, "from", from)
	}
	main := &Source{URI: mirror, Suite: cfg.Suite, Components: comps}
	d, err := OpenDist(ctx, main, o)
	if err := checkArchive(ctx, o.fetcher(), main, from, d, err); err != nil {
		return nil, nil, err
	}
	out, dists := []*Source{main}, []*Dist{d}
	code := d.Release.Codename
	if code == "" || code == "sid" || code == "unstable" || code == "experimental" || strings.Contains(code, "-") {
		return out, dists, nil
	}
	var extra []*Source
	if !cfg.NoUpdates {
		extra = append(extra, &Source{URI: mirror, Suite: code + "-updates", Components: comps})
	}
	switch d.Release.Origin {
	case Debian:
		if from == "command line" || security == "" {
			security = securityFor(mirror)
		}
	case Ubuntu:
		security = mirror
	default:
		return out, dists, nil
	}
	if !cfg.NoSecurity {
		if security == "" {
			return nil, nil, fmt.Errorf("apt: no security archive is known beside %s; name it with a \"deb URI %s-security COMPONENT\" MIRROR line, or pass --no-security to build without security updates", mirror, code)
		}
		extra = append(extra, &Source{URI: security, Suite: code + "-security", Components: comps})
	}
	for _, s := range extra {
		ed, err := OpenDist(ctx, s, o)
		if err != nil {
			// A pocket that answers 404 is never skipped quietly:
			// whoever sits on the path could strip the security
			// updates that way.
			if fetch.IsNotFound(err) {
				flag := "--no-updates"
				if hostapt.IsSecuritySuite(s.Suite) {
					flag = "--no-security"
				}
				return nil, nil, fmt.Errorf("%w; to build without %s, pass %s", err, s.Suite, flag)
			}
			return nil, nil, err
		}
		out, dists = append(out, s), append(dists, ed)
	}
	return out, dists, nil
}

// NewPlan records a resolution as a plan.
func NewPlan(u *Universe, res *Resolution, cfg Config) *lockfile.Plan {
	main := u.Dists[0]
	p := &lockfile.Plan{
		LockVersion:   lockfile.Version,
		NrootVersion:  buildinfo.Read().String(),
		Suite:         main.Source.Suite,
		Codename:      main.Release.Name(),
		Origin:        main.Release.Origin,
		Variant:       variantName(cfg.Variant),
		Architectures: u.Archs,
		Components:    main.Source.Components,
		Include:       cfg.Include,
		Exclude:       cfg.Exclude,
		NoUpdates:     cfg.NoUpdates,
		NoSecurity:    cfg.NoSecurity,
	}
	seen := map[string]bool{}
	for _, d := range u.Dists {
		p.Sources = append(p.Sources, lockfile.Source{
			URI: d.Source.URI, Suite: d.Source.Suite, Codename: d.Release.CodenameFor(d.Source.Suite), Components: d.Source.Components,
			InRelease: d.URL, InReleaseSHA256: d.InReleaseSHA256, Signer: d.Signer, Keyring: d.Keyring.Name, Expired: d.Expired,
		})
		if !seen[d.Keyring.Name] {
			seen[d.Keyring.Name] = true
			p.Keyrings = append(p.Keyrings, lockfile.Keyring{Name: d.Keyring.Name, Source: d.Keyring.Source, SHA256: d.Keyring.Digest(), Fingerprints: d.Keyring.Fingerprints()})
		}
	}
	for _, pkg := range res.Packages {
		lp := lockfile.Package{
			Name: pkg.Name, Version: pkg.Version, Architecture: pkg.Architecture,
			Filename: pkg.Filename, Size: pkg.Size, SHA256: pkg.SHA256,
			Essential: pkg.Essential, Priority: pkg.Priority, Reason: res.Why[pkg], Stage: res.Stage[pkg],
		}
		if pkg.Origin != nil {
			lp.URI = pkg.Origin.Source.URI
		}
		p.Packages = append(p.Packages, lp)
		p.TotalSize += pkg.Size
	}
	sort.Slice(p.Packages, func(i, j int) bool {
		a, b := p.Packages[i], p.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Architecture < b.Architecture
	})
	return p
}
