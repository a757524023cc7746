package deb

import (
	"errors"
	"fmt"
	"strings"
)

// PathFilter is dpkg's --path-exclude and --path-include: shell patterns
// matched against each path of a data archive ("/usr/share/doc/x"), the
// last matching pattern deciding whether the path is left out. As in
// dpkg, '*' also matches '/', and a directory or symlink that an exclude
// pattern matches is kept when an include pattern's fixed prefix (up to
// its first wildcard) starts with the directory's path, so that
// path-include=/usr/share/doc/*/copyright still has directories to go in,
// and one that is a parent of an include's fixed prefix is kept, as dpkg
// makes the parents of an included path
// (path-include=/usr/share/doc/dpkg/copyright keeps /usr/share/doc/dpkg).
// Left-out paths are still listed in the package's file list, as dpkg
// lists them.
type PathFilter struct {
	rules []pathRule
}

type pathRule struct {
	pattern string
	include bool
}

// ErrNotPathOption is returned by AddOption for a dpkg option that is
// not a path filter.
var ErrNotPathOption = errors.New("not a path-exclude or path-include option")

// Add appends a pattern; patterns must be absolute, as dpkg's are.
func (f *PathFilter) Add(pattern string, include bool) error {
	if !strings.HasPrefix(pattern, "/") {
		return fmt.Errorf("path pattern %q: give an absolute pattern such as /usr/share/doc/*", pattern)
	}
	if len(pattern) > 4096 {
		return fmt.Errorf("path pattern %.40q...: longer than 4096 bytes", pattern)
	}
	f.rules = append(f.rules, pathRule{pattern, include})
	return nil
}

// AddOption adds a dpkg option as dpkg.cfg or --dpkgopt spells it
// ("path-exclude=/usr/share/man/*", with or without leading dashes). Any
// other option gives ErrNotPathOption.
func (f *PathFilter) AddOption(opt string) error {
	name, value, _ := strings.Cut(strings.TrimLeft(strings.TrimSpace(opt), "-"), "=")
	switch strings.TrimSpace(name) {
	case "path-exclude":
		return f.Add(strings.TrimSpace(value), false)
	case "path-include":
		return f.Add(strings.TrimSpace(value), true)
	}
	return ErrNotPathOption
}

// Empty reports whether the filter leaves nothing out.
func (f *PathFilter) Empty() bool { return f == nil || len(f.rules) == 0 }

// Skip reports whether the path p ("/usr/share/doc/x", no trailing
// slash) is left out; dirOrSymlink says whether the entry is a directory
// or a symlink, which dpkg keeps when an include may need them.
func (f *PathFilter) Skip(p string, dirOrSymlink bool) bool {
	if f.Empty() {
		return false
	}
	skip := false
	for _, r := range f.rules {
		if fnmatch(r.pattern, p) {
			skip = !r.include
		}
	}
	if !skip || !dirOrSymlink {
		return skip
	}
	for _, r := range f.rules {
		if !r.include {
			continue
		}
		prefix := r.pattern
		if i := strings.IndexAny(prefix, `*?[\`); i >= 0 {
			prefix = prefix[:i]
		}
		prefix = strings.TrimRight(prefix, "/")
		// Below the fixed prefix (an include with a wildcard), or a
		// parent of it: dpkg makes the parents of an included path.
		if strings.HasPrefix(p, prefix) || strings.HasPrefix(prefix, p+"/") {
			return false
		}
	}
	return true
}

// fnmatch is fnmatch(3) with no flags: '*' matches any string, '/'
// included; '?' any one byte; '[...]' a set, '!' or '^' negating it, with
// ranges; '\' quotes the next byte. A '[' with no closing ']' is itself.
// It backtracks only to the last '*', so its time is at most the product
// of the two lengths.
func fnmatch(pattern, name string) bool {
	px, nx := 0, 0
	starPx, starNx := -1, -1
	for nx < len(name) || px < len(pattern) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			case '[':
				if nx < len(name) {
					if ok, width, valid := matchClass(pattern[px:], name[nx]); valid {
						if ok {
							px += width
							nx++
							continue
						}
						break
					}
				}
				if nx < len(name) && name[nx] == '[' {
					px++
					nx++
					continue
				}
			case '\\':
				if px+1 < len(pattern) {
					if nx < len(name) && name[nx] == pattern[px+1] {
						px += 2
						nx++
						continue
					}
					break
				}
				fallthrough
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starPx >= 0 && starNx < len(name) {
			starNx++
			px, nx = starPx+1, starNx
			continue
		}
		return false
	}
	return true
}

// matchClass matches one byte against the bracket expression at the
// start of p, returning whether it matched, the expression's width, and
// whether p starts with a complete expression at all.
func matchClass(p string, c byte) (matched bool, width int, valid bool) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		if p[i] == '[' && i+1 < len(p) && p[i+1] == ':' {
			if end := strings.Index(p[i+2:], ":]"); end >= 0 {
				if inNamedClass(p[i+2:i+2+end], c) {
					matched = true
				}
				i += end + 4
				continue
			}
		}
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		i++
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi = p[i+1]
			if hi == '\\' && i+2 < len(p) {
				hi = p[i+2]
				i++
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return false, 0, false
}

func inNamedClass(name string, c byte) bool {
	switch name {
	case "alpha":
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	case "digit":
		return '0' <= c && c <= '9'
	case "alnum":
		return inNamedClass("alpha", c) || inNamedClass("digit", c)
	case "upper":
		return 'A' <= c && c <= 'Z'
	case "lower":
		return 'a' <= c && c <= 'z'
	case "space":
		return c == ' ' || '\t' <= c && c <= '\r'
	case "punct":
		return c > ' ' && c < 0x7f && !inNamedClass("alnum", c)
	case "xdigit":
		return inNamedClass("digit", c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
	}
	return false
}
