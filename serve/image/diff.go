package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"nroot/format/report"
	"nroot/internal/fsroot"
)

// Diff is what changed from one generation to another.
type Diff struct {
	From     int                 `json:"from"`
	To       int                 `json:"to"`
	Added    []Package           `json:"packages_added"`
	Removed  []Package           `json:"packages_removed"`
	Upgraded []PackageChange     `json:"packages_changed"`
	Files    []report.Difference `json:"changes"`
}

// PackageChange is a package whose version changed.
type PackageChange struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	Old          string `json:"old_version"`
	New          string `json:"new_version"`
}

// maxEntries bounds the entries indexed per root.
const maxEntries = 4 << 20

// Diff compares generation a with b: packages from their package lists,
// then every path of their roots by type, mode, owner, size, content
// (SHA-256), link target and device number. Times are not compared: a
// rebuilt file with the same bytes is not a change.
func (im Image) Diff(a, b int) (*Diff, error) {
	ga, err := im.Get(a)
	if err != nil {
		return nil, err
	}
	gb, err := im.Get(b)
	if err != nil {
		return nil, err
	}
	d := &Diff{From: a, To: b}
	d.Added, d.Removed, d.Upgraded = comparePackages(ga.Packages, gb.Packages)
	var ia, ib map[string]report.File
	var g errgroup.Group
	g.Go(func() (err error) { ia, err = index(im.Root(a)); return })
	g.Go(func() (err error) { ib, err = index(im.Root(b)); return })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for p, x := range ia {
		y, ok := ib[p]
		if !ok {
			d.Files = append(d.Files, report.Difference{Path: p, Kind: "removed", Old: &x})
		} else if f := x.Changed(y); f != "" {
			d.Files = append(d.Files, report.Difference{Path: p, Kind: "changed", Fields: f, Old: &x, New: &y})
		}
	}
	for p, y := range ib {
		if _, ok := ia[p]; !ok {
			d.Files = append(d.Files, report.Difference{Path: p, Kind: "added", New: &y})
		}
	}
	slices.SortFunc(d.Files, func(x, y report.Difference) int { return strings.Compare(x.Path, y.Path) })
	// Empty lists are lists: jq '.packages_removed[]' reads nothing, not
	// an error.
	d.Added, d.Removed, d.Upgraded = nonNil(d.Added), nonNil(d.Removed), nonNil(d.Upgraded)
	d.Files = nonNil(d.Files)
	return d, nil
}

// Empty says whether the generations are the same.
func (d *Diff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Upgraded)+len(d.Files) == 0
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func comparePackages(a, b []Package) (added, removed []Package, changed []PackageChange) {
	key := func(p Package) string { return p.Name + ":" + p.Architecture }
	old := map[string]Package{}
	for _, p := range a {
		old[key(p)] = p
	}
	seen := map[string]bool{}
	for _, p := range b {
		seen[key(p)] = true
		o, ok := old[key(p)]
		switch {
		case !ok:
			added = append(added, p)
		case o.Version != p.Version:
			changed = append(changed, PackageChange{Name: p.Name, Architecture: p.Architecture, Old: o.Version, New: p.Version})
		}
	}
	for _, p := range a {
		if !seen[key(p)] {
			removed = append(removed, p)
		}
	}
	return added, removed, changed
}

// index reads a root through fsroot's tar walk (which never follows a
// symlink) and records every path with its content's hash.
func index(root string) (map[string]report.File, error) {
	r, err := fsroot.Open(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.WriteTar(pw, ".", fsroot.TarOptions{Name: "/"})) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	out := map[string]report.File{}
	links := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", root, err)
		}
		if len(out) >= maxEntries {
			return nil, fmt.Errorf("%s: over %d entries", root, maxEntries)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if name == "" {
			name = "/"
		}
		f := report.File{Mode: report.Mode(h.Mode & 0o7777), UID: h.Uid, GID: h.Gid, Linkname: h.Linkname}
		switch h.Typeflag {
		case tar.TypeDir:
			f.Type = "dir"
		case tar.TypeSymlink:
			f.Type = "symlink"
		case tar.TypeChar, tar.TypeBlock:
			f.Type = map[byte]string{tar.TypeChar: "char", tar.TypeBlock: "block"}[h.Typeflag]
			f.RDev = fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			f.Type = "fifo"
		case tar.TypeLink:
			// A hard link has its first name's content.
			f.Type, f.Linkname = "file", ""
			if first, ok := out[links[h.Linkname]]; ok {
				f.Size, f.SHA256 = first.Size, first.SHA256
			}
		case tar.TypeReg:
			f.Type, f.Size = "file", h.Size
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", root, name, err)
			}
			f.SHA256 = hex.EncodeToString(sum.Sum(nil))
			links[h.Name] = name
		}
		out[name] = f
	}
	return out, nil
}
