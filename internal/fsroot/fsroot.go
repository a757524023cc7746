// Package fsroot writes below a directory as if it were the root of the
// filesystem: every path, and every symlink met on the way, is resolved
// inside it, so an archive can never write outside it, and the last
// component is never followed.
//
// On Linux a Root is a directory file descriptor and every path is
// resolved by openat2 with RESOLVE_IN_ROOT (root_linux.go); copying a
// tree and writing a tar of one are Linux's alone. Elsewhere a Root is an
// os.Root, which refuses any path or symlink leading out of it
// (root_other.go); there device nodes cannot be made, nor symlinks on
// Windows, and callers ask CanMknod and CanSymlink first.
package fsroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

// Clean turns an archive member name into a path relative to the root,
// refusing absolute names and ".." components rather than guessing what a
// hostile archive meant.
func Clean(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	if n == "." || n == "" || name == "./" {
		return ".", nil
	}
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("absolute path %q", name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q contains \"..\"", name)
		}
	}
	if strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("path %q contains NUL", name)
	}
	c := path.Clean(n)
	if c == "." {
		return ".", nil
	}
	if onWindows {
		if err := windowsName(c); err != nil {
			return "", fmt.Errorf("path %q: %w", name, err)
		}
	}
	return c, nil
}

// onWindows: names are checked as Windows would read them as well.
const onWindows = runtime.GOOS == "windows"

// ErrWindowsName is returned for an archive name Windows would read as
// something else: a backslash (a separator there), a colon (a drive
// letter, or an alternate data stream), a reserved device name (CON, NUL,
// COM1, ...), a component ending in a dot or space (which Windows drops,
// so two names become one), or a character Windows refuses.
var ErrWindowsName = errors.New("not a safe name on Windows")

// windowsName checks a cleaned, slash-separated relative path.
func windowsName(rel string) error {
	for _, part := range strings.Split(rel, "/") {
		for _, c := range part {
			if c < 0x20 || strings.ContainsRune(`\:<>"|?*`, c) {
				return fmt.Errorf("%w: %q holds %q", ErrWindowsName, part, c)
			}
		}
		if strings.HasSuffix(part, ".") || strings.HasSuffix(part, " ") {
			return fmt.Errorf("%w: %q ends in a dot or space", ErrWindowsName, part)
		}
		stem, _, _ := strings.Cut(part, ".")
		if isReservedWindows(strings.TrimRight(stem, " ")) {
			return fmt.Errorf("%w: %q is a device name", ErrWindowsName, part)
		}
	}
	return nil
}

// isReservedWindows reports a device name, in any case, as Windows
// reserves it with or without an extension.
func isReservedWindows(stem string) bool {
	switch strings.ToUpper(stem) {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) < 4 {
		return false
	}
	head, tail := strings.ToUpper(stem[:3]), stem[3:]
	if head != "COM" && head != "LPT" {
		return false
	}
	switch tail {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}

var tmpSeq atomic.Int64

func tmpName(base string) string {
	return fmt.Sprintf(".%s.nroot-%d-%d", base, os.Getpid(), tmpSeq.Add(1))
}

// Meta is what WriteFile and friends set on what they create.
type Meta struct {
	Mode     uint32 // permission bits, with setuid, setgid and sticky
	UID, GID int
	Chown    bool // set owner and group (needs root)
	ModTime  time.Time
}

// ErrNotRegular is returned when a path that must be a regular file is a
// device, FIFO, socket, directory or other special file: an image can
// point etc/fstab at /dev/zero or a FIFO to exhaust or hang its reader.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned when a file is larger than its reader's cap.
var ErrTooLarge = errors.New("file too large")

// ReadAll reads r to its end, refusing more than max bytes with
// ErrTooLarge: nroot's one capped reader.
func ReadAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	return b, nil
}

// Glob lists the paths matching pattern (path.Match syntax in its last
// component only), directories resolved inside the root.
func (r *Root) Glob(pattern string) []string {
	dir, base := path.Split(pattern)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	names, err := r.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if ok, _ := path.Match(base, n); ok {
			out = append(out, path.Join(dir, n))
		}
	}
	return out
}

// MkdirAll creates a directory and its parents.
func (r *Root) MkdirAll(rel string, mode uint32) error {
	if rel == "." || r.IsDir(rel) {
		return nil
	}
	if dir := path.Dir(rel); dir != "." {
		if err := r.MkdirAll(dir, mode); err != nil {
			return err
		}
	}
	return r.Mkdir(rel, mode)
}

// maxDirEntries bounds ReadDir: no real image directory comes near it.
const maxDirEntries = 1 << 20

// ReadFile reads a regular file of at most max bytes, resolving symlinks
// inside the root.
func (r *Root) ReadFile(rel string, max int64) ([]byte, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadAll(f, max)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: r.full(rel), Err: err}
	}
	return b, nil
}
