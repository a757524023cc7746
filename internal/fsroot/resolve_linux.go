package fsroot

import (
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 is found missing (ENOSYS): a kernel
// before 5.6, qemu-user, or a sandbox that filters it. Paths are then
// resolved component by component (resolveInRoot), with the same rules.
var noOpenat2 atomic.Bool

// maxRetries bounds the retries of an openat2 that a concurrent rename
// interrupted (EAGAIN) or a signal (EINTR).
const maxRetries = 64

// openat opens rel below the root, as if the root were /: every symlink
// met, absolute or relative, and every "..", stays inside it. The last
// component is followed too.
func (r *Root) openat(rel string, flags uint64) (int, error) {
	if !noOpenat2.Load() {
		var err error
		for range maxRetries {
			var fd int
			fd, err = unix.Openat2(r.fd, rel, how(flags))
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
		if err != unix.ENOSYS {
			return -1, err
		}
	}
	return r.resolveInRoot(rel, flags)
}

// maxSymlinks bounds the symlinks one resolution follows, as the
// kernel's MAXSYMLINKS does; more is ELOOP.
const maxSymlinks = 40

// resolveInRoot does what openat2 RESOLVE_IN_ROOT does, in user space:
// each component is opened with O_NOFOLLOW below the directory held open
// before it; a symlink's target is read from the link opened, and an
// absolute one starts again from the root; ".." never climbs above the
// root. The directories on the way are held as file descriptors, so a
// rename of one while resolving cannot lead out of the root. /proc's
// magic links are read as the text they hold, never followed.
func (r *Root) resolveInRoot(rel string, flags uint64) (int, error) {
	if rel == "" {
		return -1, unix.ENOENT
	}
	var stack []int // directories below the root, each opened in the one before
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	cur := func() int {
		if len(stack) == 0 {
			return r.fd
		}
		return stack[len(stack)-1]
	}
	parts := strings.Split(rel, "/")
	links := 0
	for i := 0; i < len(parts); i++ {
		p := parts[i]
		switch p {
		case "", ".":
			continue
		case "..":
			if n := len(stack); n > 0 {
				unix.Close(stack[n-1])
				stack = stack[:n-1]
			}
			continue
		}
		fd, err := unix.Openat(cur(), p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			links++
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if strings.HasPrefix(target, "/") {
				for _, d := range stack {
					unix.Close(d)
				}
				stack = stack[:0]
			}
			parts = append(strings.Split(target, "/"), parts[i+1:]...)
			i = -1
			continue
		}
		if rest := parts[i+1:]; onlyDots(rest) {
			if len(rest) > 0 { // a trailing slash: a directory, as the kernel has it
				flags |= unix.O_DIRECTORY
			}
			return finalOpen(cur(), p, fd, &st, flags)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
		stack = append(stack, fd)
	}
	// The path ended at a directory: the root, or one reached by "..".
	return unix.Openat(cur(), ".", int(flags)|unix.O_CLOEXEC, 0)
}

// finalOpen opens the last component, already opened as fd (O_PATH) and
// stat'ed as st, with the caller's flags; what it opens must be what was
// stat'ed, or the path changed while it was resolved.
func finalOpen(dir int, name string, fd int, st *unix.Stat_t, flags uint64) (int, error) {
	trailingDir := flags&unix.O_DIRECTORY != 0
	if trailingDir && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return -1, unix.ENOTDIR
	}
	if flags&unix.O_PATH != 0 {
		return fd, nil
	}
	unix.Close(fd)
	nfd, err := unix.Openat(dir, name, int(flags)|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(nfd, &now); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		unix.Close(nfd)
		return -1, unix.EAGAIN
	}
	return nfd, nil
}

// onlyDots reports whether parts hold nothing but "" and "." (a trailing
// slash, or "/.").
func onlyDots(parts []string) bool {
	for _, p := range parts {
		if p != "" && p != "." {
			return false
		}
	}
	return true
}

// readlinkFd reads the target of a symlink opened O_PATH|O_NOFOLLOW.
func readlinkFd(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", unix.ENAMETOOLONG
	}
	return string(buf[:n]), nil
}
