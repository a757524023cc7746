package fsroot

import (
	"path"
	"strings"
)

// maxLinks bounds symlink chains, as the kernel's ELOOP does.
const maxLinks = 40

// ResolveLinks follows symlinks component by component in a tree that is
// not on disk (an initramfs listing, a remote export), treating absolute
// targets as relative to the tree's root. readlink reports a path's
// target when it is a symlink. It returns the resolved path without a
// leading "/", and false on a loop.
func ResolveLinks(p string, readlink func(string) (string, bool)) (string, bool) {
	p = strings.Trim(path.Clean("/"+p), "/")
	for range maxLinks {
		parts := strings.Split(p, "/")
		cur, followed := "", false
		for j, part := range parts {
			if part == "" {
				continue
			}
			cand := path.Join(cur, part)
			if target, ok := readlink(cand); ok {
				if !strings.HasPrefix(target, "/") {
					target = path.Join("/", cur, target)
				}
				p = strings.Trim(path.Clean(path.Join(append([]string{target}, parts[j+1:]...)...)), "/")
				followed = true
				break
			}
			cur = cand
		}
		if !followed {
			return p, true
		}
	}
	return p, false
}
