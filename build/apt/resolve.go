package apt

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"pault.ag/go/debian/dependency"
)

// Variants, as mmdebstrap names them.
var Variants = []string{"extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"}

// Request says what to resolve.
type Request struct {
	Variant string
	Include []string // extra packages, by name
	Exclude []string // packages never to select
	// MergedUsr says the root gets merged-/usr symlinks before anything
	// is installed, so usrmerge (which converts a split /usr) is replaced
	// by usr-is-merged, as debootstrap does.
	MergedUsr bool
	// SeedSuite limits the variant's priority and essential seeds to
	// packages found in this suite (the first source), as mmdebstrap
	// narrows its seed patterns; dependencies may come from any source.
	SeedSuite string
}

// Stage is one round of installation: the packages selected as seeds
// in it, resolved on top of everything earlier stages selected.
type Stage struct {
	Name  string
	Seeds []string
}

// Stages returns the seed rounds for a variant, the way mmdebstrap runs
// them: Essential:yes first (with apt for the apt variant), then the
// priority set inside the essential system.
func (u *Universe) Stages(req Request) ([]Stage, error) {
	v := req.Variant
	if v == "" {
		v = "important"
	}
	switch v {
	case "minbase":
		v = "required"
	case "debootstrap":
		v = "important"
	}
	seedOK := func(p *Package) bool {
		if p.Architecture != u.Native() && p.Architecture != "all" {
			return false
		}
		return req.SeedSuite == "" || p.Origin == nil || p.Origin.Release == nil ||
			p.Origin.Source.Suite == req.SeedSuite || p.Origin.Release.Suite == req.SeedSuite || p.Origin.Release.Codename == req.SeedSuite
	}
	pick := func(keep func(*Package) bool) []string {
		var out []string
		for _, name := range u.Names() {
			for _, p := range u.byName[name] {
				if seedOK(p) && keep(p) {
					out = append(out, name)
					break
				}
			}
		}
		return out
	}
	essential := func(p *Package) bool { return p.Essential }
	prio := func(ps ...string) func(*Package) bool {
		return func(p *Package) bool { return !p.Essential && slices.Contains(ps, p.Priority) }
	}
	var stages []Stage
	switch v {
	case "extract", "custom":
	case "essential":
		stages = append(stages, Stage{"essential", pick(essential)})
	case "apt":
		stages = append(stages, Stage{"essential", append(pick(essential), "apt")})
	case "required", "buildd":
		stages = append(stages, Stage{"essential", pick(essential)})
		seeds := pick(prio("required"))
		if v == "buildd" {
			seeds = append(seeds, "build-essential")
		}
		stages = append(stages, Stage{v, seeds})
	case "important":
		stages = append(stages, Stage{"essential", pick(essential)}, Stage{v, pick(prio("required", "important"))})
	case "standard":
		stages = append(stages, Stage{"essential", pick(essential)}, Stage{v, pick(prio("required", "important", "standard"))})
	default:
		return nil, fmt.Errorf("unknown variant %q (one of %s)", req.Variant, strings.Join(Variants, ", "))
	}
	if len(req.Include) > 0 {
		if len(stages) == 0 {
			stages = append(stages, Stage{Name: "include"})
		}
		last := &stages[len(stages)-1]
		last.Seeds = append(last.Seeds, req.Include...)
	}
	for i := range stages {
		stages[i].Seeds = slices.DeleteFunc(stages[i].Seeds, func(s string) bool { return slices.Contains(req.Exclude, s) })
	}
	return stages, nil
}

// Resolution is the outcome of Resolve: the selected packages in the
// order they were selected, and each one's reason.
type Resolution struct {
	Packages []*Package
	Stages   []Stage
	Why      map[*Package]string
	// Stage is the stage during which each package was selected.
	Stage map[*Package]string
}

// UnsatisfiableError explains why a package cannot be installed, with the
// chain of dependencies that led to it.
type UnsatisfiableError struct {
	Chain  []string // package IDs from the seed to the one that fails
	Reason string
}

func (e *UnsatisfiableError) Error() string {
	if len(e.Chain) <= 1 {
		return "unsatisfiable: " + e.Reason
	}
	return fmt.Sprintf("unsatisfiable: %s (via %s)", e.Reason, strings.Join(e.Chain, " -> "))
}

type resolver struct {
	u        *Universe
	marked   map[string]*Package // by name:arch, "all" as native
	order    []*Package
	parent   map[*Package]*Package
	seed     map[*Package]string
	stage    map[*Package]string
	current  string
	done     map[*Package]bool
	excluded map[string]bool
}

// Resolve selects the packages for a request the way apt does for a
// fresh system: seeds are marked first, then each package's Pre-Depends
// and Depends are satisfied in order, an OR group by the first
// alternative that is installable, unless one is already selected;
// virtual packages by the provider apt would prefer. Conflicts and Breaks
// between selected packages are refused.
func (u *Universe) Resolve(req Request) (*Resolution, error) {
	res, err := u.resolve(req, nil)
	if err != nil || !req.MergedUsr || u.byName["usr-is-merged"] == nil {
		return res, err
	}
	for _, p := range res.Packages {
		if p.Name == "usrmerge" {
			return u.resolve(req, []string{"usr-is-merged"})
		}
	}
	return res, nil
}

// resolve runs one resolution; first is seeded ahead of the first stage.
func (u *Universe) resolve(req Request, first []string) (*Resolution, error) {
	stages, err := u.Stages(req)
	if err != nil {
		return nil, err
	}
	if len(first) > 0 && len(stages) > 0 {
		stages[0].Seeds = append(append([]string(nil), first...), stages[0].Seeds...)
	}
	r := &resolver{
		u:        u,
		marked:   map[string]*Package{},
		parent:   map[*Package]*Package{},
		seed:     map[*Package]string{},
		stage:    map[*Package]string{},
		done:     map[*Package]bool{},
		excluded: map[string]bool{},
	}
	for _, x := range req.Exclude {
		r.excluded[x] = true
	}
	for _, st := range stages {
		r.current = st.Name
		var seeds []*Package
		for _, name := range st.Seeds {
			p, err := r.seedPackage(name)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", st.Name, err)
			}
			if r.isMarked(p) {
				continue
			}
			r.mark(p, nil)
			r.seed[p] = st.Name
			seeds = append(seeds, p)
		}
		for _, p := range seeds {
			if err := r.install(p); err != nil {
				return nil, err
			}
		}
	}
	if err := r.checkConflicts(); err != nil {
		return nil, err
	}
	res := &Resolution{Packages: r.order, Stages: stages, Why: map[*Package]string{}, Stage: r.stage}
	for _, p := range r.order {
		if s, ok := r.seed[p]; ok {
			res.Why[p] = s
		} else {
			res.Why[p] = r.parent[p].Name
		}
	}
	return res, nil
}

func (r *resolver) key(name, arch string) string {
	if arch == "all" {
		arch = r.u.Native()
	}
	return name + ":" + arch
}

func (r *resolver) isMarked(p *Package) bool {
	return r.marked[r.key(p.Name, p.Architecture)] != nil
}

func (r *resolver) mark(p, parent *Package) {
	r.marked[r.key(p.Name, p.Architecture)] = p
	r.order = append(r.order, p)
	r.stage[p] = r.current
	if parent != nil {
		r.parent[p] = parent
	}
}

// seedPackage finds what a seed name stands for: a real package, a
// name:arch, or a virtual package with a single provider.
func (r *resolver) seedPackage(spec string) (*Package, error) {
	name, arch, _ := strings.Cut(spec, ":")
	if arch == "" {
		arch = r.u.Native()
	}
	if r.excluded[name] {
		return nil, fmt.Errorf("package %s is both included and excluded", name)
	}
	if p := r.u.Candidate(name, arch); p != nil {
		return p, nil
	}
	var provs []*Package
	for _, pv := range r.u.providers[name] {
		c := r.u.Candidate(pv.pkg.Name, arch)
		if c == pv.pkg && !slices.Contains(provs, c) {
			provs = append(provs, c)
		}
	}
	switch len(provs) {
	case 0:
		return nil, fmt.Errorf("package %s is not available for %s in the selected suites and components", name, arch)
	case 1:
		return provs[0], nil
	}
	var names []string
	for _, p := range provs {
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("package %s is virtual, provided by %s; include one of them by name", name, strings.Join(names, ", "))
}

// install satisfies a marked package's dependencies: first every direct
// dependency is marked, then each newly marked package is installed in
// turn, which is the order apt's MarkInstall follows.
func (r *resolver) install(p *Package) error {
	if r.done[p] {
		return nil
	}
	r.done[p] = true
	rels, err := r.u.relations(p)
	if err != nil {
		return err
	}
	var next []*Package
	for _, group := range [][]dependency.Relation{rels.preDepends, rels.depends} {
		for _, rel := range group {
			if r.satisfied(p, rel) {
				continue
			}
			c, reason := r.choose(p, rel)
			if c == nil {
				if reason == "" {
					continue // only excluded packages could satisfy it
				}
				return &UnsatisfiableError{Chain: r.chain(p), Reason: reason}
			}
			r.mark(c, p)
			next = append(next, c)
		}
	}
	for _, c := range next {
		if err := r.install(c); err != nil {
			return err
		}
	}
	return nil
}

func (r *resolver) chain(p *Package) []string {
	var out []string
	for q := p; q != nil; q = r.parent[q] {
		out = append([]string{q.Name}, out...)
	}
	return out
}

// applies reports whether a possibility is meant for this architecture
// (Depends: foo [amd64] is rare in binary packages but legal).
func (r *resolver) applies(poss dependency.Possibility) bool {
	if poss.Architectures == nil || len(poss.Architectures.Architectures) == 0 {
		return true
	}
	native, err := dependency.ParseArch(r.u.Native())
	if err != nil {
		return true
	}
	return poss.Architectures.Matches(native)
}

// archTargets lists the architectures a possibility may be satisfied in,
// for a dependency of p.
func (r *resolver) archTargets(p *Package, poss dependency.Possibility) []string {
	from := p.Architecture
	if from == "all" {
		from = r.u.Native()
	}
	if poss.Arch != nil {
		switch a := poss.Arch.String(); a {
		case "any":
			return r.u.Archs
		case "native":
			return []string{r.u.Native()}
		default:
			return []string{a}
		}
	}
	// Same architecture first; a Multi-Arch: foreign package of another
	// architecture also serves (archOK decides).
	out := []string{from}
	for _, a := range r.u.Archs {
		if a != from {
			out = append(out, a)
		}
	}
	return out
}

// archOK applies Multi-Arch: a dependency without a qualifier is met by a
// package of the same architecture, or by a Multi-Arch: foreign package of
// any; ":any" also by a Multi-Arch: allowed one.
func (r *resolver) archOK(p *Package, poss dependency.Possibility, q *Package) bool {
	qa, from := archOf(q, r.u.Native()), archOf(p, r.u.Native())
	if poss.Arch != nil {
		switch a := poss.Arch.String(); a {
		case "any":
			return qa == from || q.MultiArch == "allowed" || q.MultiArch == "foreign"
		case "native":
			return qa == r.u.Native()
		default:
			return qa == a
		}
	}
	return qa == from || q.MultiArch == "foreign"
}

func (r *resolver) versionOK(poss dependency.Possibility, v string) bool {
	if poss.Version == nil {
		return true
	}
	if v == "" {
		return false // an unversioned provides never meets a versioned dependency
	}
	return poss.Version.SatisfiedBy(r.u.ver(v))
}

// satisfied reports whether a selected package, or a package a selected
// one provides, meets any alternative of the relation.
func (r *resolver) satisfied(p *Package, rel dependency.Relation) bool {
	for _, poss := range rel.Possibilities {
		if !r.applies(poss) {
			continue
		}
		for _, a := range r.u.Archs {
			if q := r.marked[poss.Name+":"+a]; q != nil && r.archOK(p, poss, q) && r.versionOK(poss, q.Version) {
				return true
			}
		}
		for _, pv := range r.u.providers[poss.Name] {
			if r.isMarked(pv.pkg) && r.marked[r.key(pv.pkg.Name, pv.pkg.Architecture)] == pv.pkg &&
				r.archOK(p, poss, pv.pkg) && r.versionOK(poss, pv.version) {
				return true
			}
		}
	}
	return false
}

// choose picks the package apt would install for an unsatisfied relation,
// or explains why none can be. It returns nil and "" when every
// alternative was excluded by the user.
func (r *resolver) choose(p *Package, rel dependency.Relation) (*Package, string) {
	var why []string
	excludedOnly := true
	for _, poss := range rel.Possibilities {
		if !r.applies(poss) {
			continue
		}
		if r.excluded[poss.Name] {
			continue
		}
		excludedOnly = false
		var found *Package
		for _, a := range r.archTargets(p, poss) {
			c := r.u.Candidate(poss.Name, a)
			if c == nil {
				continue
			}
			if !r.archOK(p, poss, c) {
				continue
			}
			if !r.versionOK(poss, c.Version) {
				why = append(why, fmt.Sprintf("%s depends on %s but only %s is available", p.Name, poss.String(), c.Version))
				continue
			}
			if by := r.conflictsWithMarked(c); by != "" {
				why = append(why, fmt.Sprintf("%s depends on %s but %s %s", p.Name, poss.String(), c.Name, by))
				continue
			}
			found = c
			break
		}
		if found != nil {
			return found, ""
		}
		if prov := r.bestProvider(p, poss); prov != nil {
			return prov, ""
		}
		if r.u.byName[poss.Name] == nil && len(r.u.providers[poss.Name]) == 0 {
			why = append(why, fmt.Sprintf("%s depends on %s but it is not available", p.Name, poss.String()))
		} else if found == nil && len(why) == 0 && r.u.byName[poss.Name] != nil {
			why = append(why, fmt.Sprintf("%s depends on %s but no architecture of it can satisfy %s", p.Name, poss.String(), p.ID()))
		} else if r.u.byName[poss.Name] == nil {
			why = append(why, fmt.Sprintf("%s depends on %s but no provider of it can be installed", p.Name, poss.String()))
		}
	}
	if excludedOnly {
		return nil, ""
	}
	if len(why) == 0 {
		why = append(why, fmt.Sprintf("%s depends on %s, which cannot be installed", p.Name, rel.String()))
	}
	return nil, strings.Join(why, "; ")
}

// bestProvider orders the candidate versions providing a virtual name as
// apt's CompareProviders does: essential or important first, then the
// native architecture, then the higher Priority, then by name.
func (r *resolver) bestProvider(p *Package, poss dependency.Possibility) *Package {
	var cands []*Package
	for _, pv := range r.u.providers[poss.Name] {
		q := pv.pkg
		if r.excluded[q.Name] || !r.archOK(p, poss, q) || !r.versionOK(poss, pv.version) {
			continue
		}
		if c := r.u.Candidate(q.Name, archOf(q, r.u.Native())); c != q {
			continue // apt only considers the candidate version
		}
		if r.conflictsWithMarked(q) != "" || slices.Contains(cands, q) {
			continue
		}
		cands = append(cands, q)
	}
	if len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if ea, eb := a.Essential || a.Important, b.Essential || b.Important; ea != eb {
			return ea
		}
		if na, nb := a.Architecture != "all" && a.Architecture == r.u.Native(), b.Architecture != "all" && b.Architecture == r.u.Native(); na != nb {
			return na
		}
		if pa, pb := priorityRank(a.Priority), priorityRank(b.Priority); pa != pb {
			return pa > pb
		}
		return a.Name < b.Name
	})
	return cands[0]
}

func archOf(p *Package, native string) string {
	if p.Architecture == "all" {
		return native
	}
	return p.Architecture
}

func priorityRank(p string) int {
	switch p {
	case "required":
		return 5
	case "important":
		return 4
	case "standard":
		return 3
	case "optional":
		return 2
	case "extra":
		return 1
	}
	return 0
}

// matches reports whether package q meets a possibility, by name or by
// what it provides, ignoring architecture.
func (r *resolver) matches(poss dependency.Possibility, q *Package) bool {
	if q.Name == poss.Name {
		return r.versionOK(poss, q.Version)
	}
	for _, pv := range r.u.providers[poss.Name] {
		if pv.pkg == q {
			// A versioned conflict on a virtual name only hits versioned
			// provides that match.
			return poss.Version == nil || r.versionOK(poss, pv.version)
		}
	}
	return false
}

// conflictsWithMarked explains a Conflicts or Breaks between c and the
// selection, in either direction, or returns "".
func (r *resolver) conflictsWithMarked(c *Package) string {
	rels, err := r.u.relations(c)
	if err != nil {
		return err.Error()
	}
	for _, rel := range append(append([]dependency.Relation{}, rels.conflicts...), rels.breaks...) {
		for _, poss := range rel.Possibilities {
			for _, q := range r.order {
				if q.Name != c.Name && r.matches(poss, q) {
					return fmt.Sprintf("conflicts with %s %s", q.Name, q.Version)
				}
			}
		}
	}
	for _, q := range r.order {
		qr, err := r.u.relations(q)
		if err != nil {
			continue
		}
		for _, rel := range append(append([]dependency.Relation{}, qr.conflicts...), qr.breaks...) {
			for _, poss := range rel.Possibilities {
				if q.Name != c.Name && r.matches(poss, c) {
					return fmt.Sprintf("is in conflict with %s %s", q.Name, q.Version)
				}
			}
		}
	}
	return ""
}

func (r *resolver) checkConflicts() error {
	for _, p := range r.order {
		rels, err := r.u.relations(p)
		if err != nil {
			return err
		}
		for _, rel := range append(append([]dependency.Relation{}, rels.conflicts...), rels.breaks...) {
			for _, poss := range rel.Possibilities {
				for _, q := range r.order {
					if q.Name != p.Name && r.matches(poss, q) {
						return &UnsatisfiableError{Chain: r.chain(p), Reason: fmt.Sprintf("%s %s conflicts with %s %s (%s), and both are selected", p.Name, p.Version, q.Name, q.Version, poss.String())}
					}
				}
			}
		}
	}
	return nil
}
