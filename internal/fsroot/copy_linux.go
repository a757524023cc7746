package fsroot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// CopyStats is what CopyTree did.
type CopyStats struct {
	Entries   int   `json:"entries"`
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`      // regular file content
	Reflinked int64 `json:"reflinked"`  // of Bytes, shared with the source (FICLONE)
	Links     int   `json:"hard_links"` // hard links made inside the copy
}

// CopyTree copies the whole root into dst, a directory that must not yet
// exist (its parent is the caller's, outside any image). Owners, modes
// (setuid included), times, file capabilities, symlinks, device nodes,
// FIFOs and hard links inside the tree are kept; sockets are left out.
// File content is shared with FICLONE where the filesystem can (btrfs,
// XFS) and copied otherwise: the copy never shares an inode with the
// source, so a write to one never shows in the other. The walk never
// follows a symlink, as WriteTar's. Cancelling ctx stops the copy
// between entries and within a large file, within a chunk's copy; what
// was made in dst is then the caller's to remove.
func (r *Root) CopyTree(ctx context.Context, dst string) (CopyStats, error) {
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return CopyStats{}, err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return CopyStats{}, fmt.Errorf("copy: %w", err)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return CopyStats{}, &os.PathError{Op: "open", Path: dst, Err: err}
	}
	defer unix.Close(dfd)
	c := &treeCopy{ctx: ctx, src: r.Path, dst: dst, links: map[[2]uint64]string{}, clone: true}
	sfd, err := r.openDir(".")
	if err != nil {
		return CopyStats{}, err
	}
	defer unix.Close(sfd)
	if err := c.dir(sfd, dfd, "", &st, 0); err != nil {
		return c.stats, err
	}
	return c.stats, nil
}

type treeCopy struct {
	ctx      context.Context
	src, dst string
	links    map[[2]uint64]string // source inode to its first path in the copy
	stats    CopyStats
	clone    bool // FICLONE still worth trying
}

// dir copies the contents of the directory sfd into dfd, then gives dfd
// the source's owner, mode and times.
func (c *treeCopy) dir(sfd, dfd int, rel string, st *unix.Stat_t, depth int) error {
	if depth >= maxTarDepth {
		return fmt.Errorf("copy %s: nested over %d directories deep", path.Join(c.src, rel), maxTarDepth)
	}
	names, err := dirNames(sfd, path.Join(c.src, rel))
	if err != nil {
		return err
	}
	for _, n := range names {
		var cst unix.Stat_t
		if err := unix.Fstatat(sfd, n, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: path.Join(c.src, rel, n), Err: err}
		}
		if err := c.entry(sfd, dfd, n, path.Join(rel, n), &cst, depth); err != nil {
			return err
		}
	}
	c.stats.Entries++
	return c.meta(dfd, ".", st, 0)
}

func (c *treeCopy) entry(sfd, dfd int, n, rel string, st *unix.Stat_t, depth int) error {
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("copy %s: %w", c.src, err)
	}
	full := path.Join(c.dst, rel)
	wrap := func(op string, err error) error { return &os.PathError{Op: op, Path: full, Err: err} }
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dfd, n, 0o700); err != nil {
			return wrap("mkdir", err)
		}
		s, err := unix.Openat(sfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path.Join(c.src, rel), Err: err}
		}
		defer unix.Close(s)
		d, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return wrap("open", err)
		}
		defer unix.Close(d)
		return c.dir(s, d, rel, st, depth+1)
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok && st.Nlink > 1 {
			if err := unix.Linkat(unix.AT_FDCWD, path.Join(c.dst, first), dfd, n, 0); err != nil {
				return wrap("link", err)
			}
			c.stats.Entries++
			c.stats.Links++
			return nil
		}
		if st.Nlink > 1 {
			c.links[key] = rel
		}
		return c.file(sfd, dfd, n, rel, st)
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		k, err := unix.Readlinkat(sfd, n, buf)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: path.Join(c.src, rel), Err: err}
		}
		if err := unix.Symlinkat(string(buf[:k]), dfd, n); err != nil {
			return wrap("symlink", err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknodat(dfd, n, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return wrap("mknod", err)
		}
	default:
		return nil // sockets
	}
	c.stats.Entries++
	return c.meta(dfd, n, st, unix.AT_SYMLINK_NOFOLLOW)
}

// copyChunk is how much of a file is copied between looks at the
// context: well under a second on any disk.
const copyChunk = 64 << 20

// file copies one regular file's content, sharing it when it can.
func (c *treeCopy) file(sfd, dfd int, n, rel string, st *unix.Stat_t) error {
	s, err := unix.Openat(sfd, n, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path.Join(c.src, rel), Err: err}
	}
	src := os.NewFile(uintptr(s), path.Join(c.src, rel))
	defer src.Close()
	var now unix.Stat_t
	if err := unix.Fstat(s, &now); err != nil || now.Ino != st.Ino || now.Mode&unix.S_IFMT != unix.S_IFREG {
		return &os.PathError{Op: "open", Path: src.Name(), Err: fmt.Errorf("changed while being copied")}
	}
	d, err := unix.Openat(dfd, n, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: path.Join(c.dst, rel), Err: err}
	}
	out := os.NewFile(uintptr(d), path.Join(c.dst, rel))
	defer out.Close()
	c.stats.Files++
	c.stats.Bytes += now.Size
	cloned := false
	if c.clone && now.Size > 0 {
		switch err := unix.IoctlFileClone(d, s); {
		case err == nil:
			cloned = true
			c.stats.Reflinked += now.Size
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
			c.clone = false // this filesystem (or pair) cannot share extents
		default:
			return &os.PathError{Op: "clone", Path: out.Name(), Err: err}
		}
	}
	if !cloned {
		// *os.File to *os.File uses copy_file_range, in the kernel; in
		// chunks, so that a cancelled context stops a large file too.
		var k int64
		for k < now.Size {
			if err := c.ctx.Err(); err != nil {
				return fmt.Errorf("copy %s: %w", c.src, err)
			}
			m, err := io.CopyN(out, src, min(copyChunk, now.Size-k))
			k += m
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("%d of %d bytes: the source changed while being copied", k, now.Size)
				}
				return &os.PathError{Op: "copy", Path: out.Name(), Err: err}
			}
		}
	}
	c.stats.Entries++
	return c.meta(dfd, n, &now, unix.AT_SYMLINK_NOFOLLOW, d, s)
}

// meta gives the copy of n in dfd the source's owner, mode and times.
// For a regular file, fds are the open copy and source: file
// capabilities are set after chown, which clears them.
func (c *treeCopy) meta(dfd int, n string, st *unix.Stat_t, flags int, fds ...int) error {
	full := path.Join(c.dst, n)
	if err := unix.Fchownat(dfd, n, int(st.Uid), int(st.Gid), flags); err != nil {
		return &os.PathError{Op: "chown", Path: full, Err: err}
	}
	var err error
	switch {
	case len(fds) == 2:
		err = unix.Fchmod(fds[0], st.Mode&0o7777)
	case st.Mode&unix.S_IFMT != unix.S_IFLNK:
		// Not a symlink, and only this copy writes below dst.
		err = unix.Fchmodat(dfd, n, st.Mode&0o7777, 0)
	}
	if err != nil {
		return &os.PathError{Op: "chmod", Path: full, Err: err}
	}
	if len(fds) == 2 {
		for _, x := range xattrsKept {
			buf := make([]byte, 256)
			if k, err := unix.Fgetxattr(fds[1], x, buf); err == nil {
				if err := unix.Fsetxattr(fds[0], x, buf[:k], 0); err != nil {
					return &os.PathError{Op: "setxattr " + x, Path: full, Err: err}
				}
			}
		}
	}
	if err := unix.UtimesNanoAt(dfd, n, []unix.Timespec{st.Atim, st.Mtim}, flags); err != nil {
		return &os.PathError{Op: "utimes", Path: full, Err: err}
	}
	return nil
}
