package initrd

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Listing options for List.
type ListOptions struct {
	Long  bool
	Globs []string // only entries matching one of these (path.Match, or a prefix directory)
}

// ErrNoMatch says no entry of an image matched what was asked for.
var ErrNoMatch = errors.New("no such entry in the image")

// BadPatternError says a glob is malformed.
type BadPatternError struct{ Pattern string }

func (e *BadPatternError) Error() string {
	return fmt.Sprintf("pattern %q is malformed (an unclosed [ or a trailing \\)", e.Pattern)
}

// CheckGlobs refuses malformed globs before an image is read.
func CheckGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(strings.ReplaceAll(CleanName(g), "/", "\x00"), ""); err != nil {
			return &BadPatternError{g}
		}
	}
	return nil
}

// Match reports whether an entry's name matches any glob: a shell
// pattern on the whole path, whose * and ? also match "/" as in cpio and
// lsinitrd ("etc/*" is everything below etc), or a directory the entry
// is in.
func Match(name string, globs []string) bool {
	if len(globs) == 0 {
		return true
	}
	name = CleanName(name)
	for _, g := range globs {
		g = CleanName(g)
		if name == g || strings.HasPrefix(name, g+"/") {
			return true
		}
		// path.Match's wildcards stop at "/"; with "/" turned into a
		// byte no name holds they cross it, as fnmatch without
		// FNM_PATHNAME does.
		if ok, _ := path.Match(strings.ReplaceAll(g, "/", "\x00"), strings.ReplaceAll(name, "/", "\x00")); ok {
			return true
		}
	}
	return false
}
