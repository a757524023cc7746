package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"nroot/build/apt"
	"nroot/format/control"
	"nroot/internal/fsroot"
)

// UnavailableError: packages asked of an update are in none of the
// parent generation's APT sources. Nothing was copied.
type UnavailableError struct {
	Generation int
	Packages   []string
	Sources    []string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("image update: no package %s in the APT sources of generation %d (%s); nothing was copied; check the name (nroot resolve --include=NAME SUITE)",
		strings.Join(e.Packages, ", "), e.Generation, strings.Join(e.Sources, "; "))
}

// The bounds of what the early check reads of an image: the size of a
// sources file, the files, and the sources. Past them it says nothing.
const (
	maxSourcesFile  = 1 << 20
	maxSourcesFiles = 64
	maxSources      = 64
)

// errIncomplete: the image's sources hold what the early check does not
// read (one-line entries with [options], more than maxSources), so its
// answer would not be apt's.
var errIncomplete = errors.New("the APT sources are more than the early check reads")

// imageSources reads the APT sources of a root: deb822 files in
// etc/apt/sources.list.d and one-line entries in etc/apt/sources.list,
// deb entries only. It fails with errIncomplete rather than leave out a
// source apt would use.
func imageSources(r *fsroot.Root) ([]*apt.Source, error) {
	out, err := readSources(r)
	if err == nil && len(out) > maxSources {
		err = errIncomplete
	}
	return out, err
}

func readSources(r *fsroot.Root) ([]*apt.Source, error) {
	var out []*apt.Source
	names, _ := r.ReadDir("etc/apt/sources.list.d")
	if len(names) > maxSourcesFiles {
		return nil, errIncomplete
	}
	slices.Sort(names)
	for _, n := range names {
		rel := path.Join("etc/apt/sources.list.d", n)
		switch {
		case strings.HasSuffix(n, ".sources"):
			b, err := r.ReadFile(rel, maxSourcesFile)
			if err != nil {
				return nil, err
			}
			ps, err := control.ReadAll(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", rel, err)
			}
			for _, p := range ps {
				if !slices.Contains(strings.Fields(p.Get("Types")), "deb") || strings.EqualFold(p.Get("Enabled"), "no") {
					continue
				}
				for _, uri := range strings.Fields(p.Get("URIs")) {
					for _, suite := range strings.Fields(p.Get("Suites")) {
						out = append(out, &apt.Source{URI: uri, Suite: suite, Components: strings.Fields(p.Get("Components"))})
					}
				}
			}
		case strings.HasSuffix(n, ".list"):
			more, err := oneLineSources(r, rel)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	more, err := oneLineSources(r, "etc/apt/sources.list")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return append(out, more...), nil
}

func oneLineSources(r *fsroot.Root, rel string) ([]*apt.Source, error) {
	b, err := r.ReadFile(rel, maxSourcesFile)
	if err != nil {
		return nil, err
	}
	var out []*apt.Source
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		if len(f) < 3 || strings.HasPrefix(f[1], "[") {
			return nil, fmt.Errorf("%s: %w", rel, errIncomplete)
		}
		out = append(out, &apt.Source{URI: f[1], Suite: f[2], Components: f[3:]})
		if len(out) > maxSources {
			return nil, errIncomplete
		}
	}
	return out, nil
}

// packageName is the package an apt-get install argument names, without
// its =version, /release or :arch; ok is false for what is not a plain
// name (a pattern, a file, a trailing + or -), which only apt can answer.
func packageName(arg string) (name string, ok bool) {
	name = arg
	if i := strings.IndexAny(name, "=/"); i >= 0 {
		name = name[:i]
	}
	name, _, _ = strings.Cut(name, ":")
	if len(name) < 2 || !isLowerAlnum(name[0]) {
		return "", false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isLowerAlnum(c) && c != '+' && c != '-' && c != '.' {
			return "", false
		}
	}
	if last := name[len(name)-1]; last == '+' || last == '-' {
		return "", false // apt-get install's "remove this" and "install this" suffixes
	}
	return name, true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// unavailable asks the parent's own APT sources, verified as bootstrap
// verifies them, which of names no package has or provides. It is an
// early answer, before a copy: when the sources cannot be read or
// reached, it says nothing (ok false) and the node stage's apt, which
// asks again, decides.
func unavailable(ctx context.Context, r *fsroot.Root, names []string, arch string, o apt.Options) (missing, sources []string, ok bool) {
	plain := make([]string, len(names))
	for i, arg := range names {
		n, ok := packageName(arg)
		if !ok {
			return nil, nil, false
		}
		plain[i] = n
	}
	srcs, err := imageSources(r)
	if err != nil || len(srcs) == 0 {
		return nil, nil, false
	}
	u, err := apt.Load(ctx, srcs, []string{arch}, o)
	if err != nil {
		return nil, nil, false
	}
	for _, s := range srcs {
		sources = append(sources, s.String())
	}
	for i, n := range plain {
		if !u.Knows(n) {
			missing = append(missing, names[i])
		}
	}
	return missing, sources, true
}
