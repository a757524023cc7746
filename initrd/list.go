package initrd

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
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

// FormatLong renders an entry as cpio -tv and lsinitrd do.
func FormatLong(h *Header) string {
	owner := func(id int) string {
		if id == 0 {
			return "root"
		}
		return fmt.Sprint(id)
	}
	size := fmt.Sprint(h.Size)
	if h.Mode&TypeMask == TypeChr || h.Mode&TypeMask == TypeBlk {
		size = fmt.Sprintf("%d, %d", h.RDevMajor, h.RDevMinor)
	}
	mt := h.ModTime.UTC()
	stamp := mt.Format("Jan _2 15:04")
	if time.Since(mt) > 180*24*time.Hour || mt.After(time.Now().Add(24*time.Hour)) {
		stamp = mt.Format("Jan _2  2006")
	}
	line := fmt.Sprintf("%s %3d %-8s %-8s %8s %s %s", modeString(h), h.NLink, owner(h.UID), owner(h.GID), size, stamp, CleanName(h.Name))
	if h.IsSymlink() {
		line += " -> " + h.Linkname
	}
	return line
}

func modeString(h *Header) string {
	b := []byte("----------")
	switch h.Mode & TypeMask {
	case TypeDir:
		b[0] = 'd'
	case TypeLink:
		b[0] = 'l'
	case TypeChr:
		b[0] = 'c'
	case TypeBlk:
		b[0] = 'b'
	case TypeFifo:
		b[0] = 'p'
	case TypeSock:
		b[0] = 's'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if h.Mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	if h.Mode&0o4000 != 0 {
		b[3] = map[bool]byte{true: 's', false: 'S'}[b[3] == 'x']
	}
	if h.Mode&0o2000 != 0 {
		b[6] = map[bool]byte{true: 's', false: 'S'}[b[6] == 'x']
	}
	if h.Mode&0o1000 != 0 {
		b[9] = map[bool]byte{true: 't', false: 'T'}[b[9] == 'x']
	}
	return string(b)
}

// WriteHeaderSummary prints an image's dracut metadata the way lsinitrd
// heads its listing.
func WriteHeaderSummary(w io.Writer, name string, size int64, in *Info) {
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(w, "Image: %s: %s\n%s\n", name, humanSize(size), rule)
	if in.EarlyCPIO {
		fmt.Fprintf(w, "Early CPIO image\n%s\n", rule)
	}
	if in.DracutVersion != "" {
		fmt.Fprintf(w, "Version: dracut-%s\n\n", in.DracutVersion)
	}
	if in.BuildParameters != "" {
		fmt.Fprintf(w, "Arguments: %s\n\n", in.BuildParameters)
	}
	if len(in.DracutModules) > 0 {
		fmt.Fprintf(w, "dracut modules:\n%s\n", strings.Join(in.DracutModules, "\n"))
	}
	if len(in.KernelVersions) > 0 {
		fmt.Fprintf(w, "kernel versions: %s\n", strings.Join(in.KernelVersions, " "))
	}
	// In the order dracut reads them, which is also a stable one.
	for _, f := range slices.Sorted(maps.Keys(in.Cmdline)) {
		fmt.Fprintf(w, "%s: %s\n", f, strings.ReplaceAll(in.Cmdline[f], "\n", " "))
	}
	fmt.Fprintln(w, rule)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d", n)
}
