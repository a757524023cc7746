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

	"nroot/apt"
	"nroot/control"
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

// maxSourcesFile bounds a sources file read from an image.
const maxSourcesFile = 1 << 20

// imageSources reads the APT sources of a root: deb822 files in
// etc/apt/sources.list.d and one-line entries in etc/apt/sources.list,
// deb entries only.
func imageSources(r *fsroot.Root) ([]*apt.Source, error) {
	var out []*apt.Source
	names, _ := r.ReadDir("etc/apt/sources.list.d")
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
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "deb" && !strings.HasPrefix(f[1], "[") {
			out = append(out, &apt.Source{URI: f[1], Suite: f[2], Components: f[3:]})
		}
	}
	return out, nil
}

// unavailable asks the parent's own APT sources, verified as bootstrap
// verifies them, which of names no package has or provides. It is an
// early answer, before a copy: when the sources cannot be read or
// reached, it says nothing (ok false) and the node stage's apt, which
// asks again, decides.
func unavailable(ctx context.Context, r *fsroot.Root, names []string, arch string, o apt.Options) (missing, sources []string, ok bool) {
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
	for _, n := range names {
		if !u.Knows(n) {
			missing = append(missing, n)
		}
	}
	return missing, sources, true
}
