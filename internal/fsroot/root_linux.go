//go:build linux

package fsroot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Root is an open directory that paths are resolved in.
type Root struct {
	fd   int
	Path string
}

// Open opens dir as a root.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Root{fd: fd, Path: dir}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Sync writes back everything of the filesystem the root is on (syncfs):
// one call that makes a tree durable whose files were written without
// an fsync each.
func (r *Root) Sync() error {
	fd, err := unix.Openat(r.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: r.Path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: r.Path, Err: err}
	}
	return nil
}

func (r *Root) full(rel string) string { return path.Join(r.Path, rel) }

// how resolves in the root, refusing /proc magic links.
func how(flags uint64) *unix.OpenHow {
	return &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
}

// openDir opens a directory below the root, following symlinks inside it.
func (r *Root) openDir(rel string) (int, error) {
	if rel == "." || rel == "" {
		return unix.Dup(r.fd)
	}
	return r.openat(rel, unix.O_PATH|unix.O_DIRECTORY)
}

// parent opens the directory holding rel and returns it with the base
// name.
func (r *Root) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	if base == "" || base == "." || base == ".." {
		return -1, "", fmt.Errorf("%s: not a file name", rel)
	}
	fd, err := r.openDir(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return -1, "", &os.PathError{Op: "open parent", Path: r.full(rel), Err: err}
	}
	return fd, base, nil
}

// CanMknod and CanSymlink: Linux makes device nodes, FIFOs and symlinks.
const (
	CanMknod   = true
	CanSymlink = true
)

// isRealDir reports whether rel is a directory itself, not a symlink to
// one.
func (r *Root) isRealDir(rel string) bool {
	st, err := r.Lstat(rel)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// replaced reports an error of a path a later entry replaced: no longer
// there, or no longer a directory.
func replaced(err error) bool {
	return errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP)
}

// Lstat stats a path without following its last component.
func (r *Root) Lstat(rel string) (*unix.Stat_t, error) {
	if rel == "." {
		var st unix.Stat_t
		err := unix.Fstat(r.fd, &st)
		return &st, err
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: r.full(rel), Err: err}
	}
	return &st, nil
}

// Stat stats a path, following symlinks inside the root.
func (r *Root) Stat(rel string) (*unix.Stat_t, error) {
	fd, err := r.openat(rel, unix.O_PATH)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: r.full(rel), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	return &st, err
}

// IsDir reports whether rel resolves, inside the root, to a directory.
func (r *Root) IsDir(rel string) bool {
	st, err := r.Stat(rel)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// Mkdir creates a directory. An existing directory, or a symlink that
// resolves inside the root to one (merged-/usr's bin -> usr/bin), is kept,
// as dpkg keeps it.
func (r *Root) Mkdir(rel string, mode uint32) error {
	if rel == "." {
		return nil
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Mkdirat(pfd, base, mode&0o7777)
	if err == nil {
		return nil
	}
	if err == unix.EEXIST && r.IsDir(rel) {
		return nil
	}
	return &os.PathError{Op: "mkdir", Path: r.full(rel), Err: err}
}

// replace renames a freshly made temporary entry over base, refusing to
// replace a directory with something else.
func replace(pfd int, tmp, base, full string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Unlinkat(pfd, tmp, 0)
		return &os.PathError{Op: "replace", Path: full, Err: errors.New("a directory is in the way")}
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return &os.PathError{Op: "rename", Path: full, Err: err}
	}
	return nil
}

// WriteFile writes a regular file from src, which must hold exactly size
// bytes. A new path is created directly; an existing file or symlink is
// replaced by writing a temporary file and renaming it over, so a symlink
// at rel is never written through.
func (r *Root) WriteFile(rel string, src io.Reader, size int64, m Meta) error {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	name, direct := base, true
	fd, err := unix.Openat(pfd, base, flags, 0o600)
	if err == unix.EEXIST {
		name, direct = tmpName(base), false
		fd, err = unix.Openat(pfd, name, flags, 0o600)
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: r.full(rel), Err: err}
	}
	n, err := copyTo(fd, src, size)
	if err == nil && n != size {
		err = fmt.Errorf("short content: %d of %d bytes", n, size)
	}
	if err == nil {
		err = setMeta(fd, m)
	}
	if err == nil && !m.ModTime.IsZero() {
		ts := []unix.Timespec{unix.NsecToTimespec(m.ModTime.UnixNano()), unix.NsecToTimespec(m.ModTime.UnixNano())}
		err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(pfd, name, 0)
		return fmt.Errorf("%s: %w", r.full(rel), err)
	}
	if direct {
		return nil
	}
	return replace(pfd, name, base, r.full(rel))
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyTo writes up to size bytes of src to fd with plain write calls: an
// *os.File would add an fstat, an fcntl and a 32 KiB bounce buffer for
// every file. Content already in memory is written from where it is.
func copyTo(fd int, src io.Reader, size int64) (int64, error) {
	if br, ok := src.(*bytes.Reader); ok && int64(br.Len()) <= size {
		// A bytes.Reader hands over its bytes without a copy only
		// through WriteTo.
		return br.WriteTo(fdWriter(fd))
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return io.CopyBuffer(fdWriter(fd), io.LimitReader(src, size), *bp)
}

// fdWriter writes all of p to a file descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		k, err := unix.Write(int(w), p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}

func setMeta(fd int, m Meta) error {
	if m.Chown {
		if err := unix.Fchown(fd, m.UID, m.GID); err != nil {
			return err
		}
	}
	// After chown, which clears setuid and setgid.
	return unix.Fchmod(fd, m.Mode&0o7777)
}

// Symlink creates or replaces a symlink. The target is stored as given:
// it is only ever resolved inside the root.
func (r *Root) Symlink(target, rel string, m Meta) error {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	tmp := tmpName(base)
	if err := unix.Symlinkat(target, pfd, tmp); err != nil {
		return &os.PathError{Op: "symlink", Path: r.full(rel), Err: err}
	}
	if m.Chown {
		unix.Fchownat(pfd, tmp, m.UID, m.GID, unix.AT_SYMLINK_NOFOLLOW)
	}
	if !m.ModTime.IsZero() {
		ts := []unix.Timespec{unix.NsecToTimespec(m.ModTime.UnixNano()), unix.NsecToTimespec(m.ModTime.UnixNano())}
		unix.UtimesNanoAt(pfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return replace(pfd, tmp, base, r.full(rel))
}

// Link makes rel a hard link to the existing file old, both inside the
// root.
func (r *Root) Link(old, rel string) error {
	opfd, obase, err := r.parent(old)
	if err != nil {
		return err
	}
	defer unix.Close(opfd)
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(opfd, obase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "link", Path: r.full(old), Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return &os.PathError{Op: "link", Path: r.full(old), Err: errors.New("is a directory")}
	}
	tmp := tmpName(base)
	if err := unix.Linkat(opfd, obase, pfd, tmp, 0); err != nil {
		return &os.PathError{Op: "link", Path: r.full(rel), Err: err}
	}
	return replace(pfd, tmp, base, r.full(rel))
}

// Mknod creates a device node or FIFO; mode carries the type bits.
func (r *Root) Mknod(rel string, mode uint32, dev uint64, m Meta) error {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	tmp := tmpName(base)
	if err := unix.Mknodat(pfd, tmp, mode, int(dev)); err != nil {
		return &os.PathError{Op: "mknod", Path: r.full(rel), Err: err}
	}
	if m.Chown {
		unix.Fchownat(pfd, tmp, m.UID, m.GID, unix.AT_SYMLINK_NOFOLLOW)
	}
	unix.Fchmodat(pfd, tmp, m.Mode&0o7777, 0)
	return replace(pfd, tmp, base, r.full(rel))
}

// SetDirMeta sets a directory's owner, mode and mtime.
func (r *Root) SetDirMeta(rel string, m Meta) error {
	fd, err := r.openat(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return &os.PathError{Op: "open", Path: r.full(rel), Err: err}
	}
	defer unix.Close(fd)
	if err := setMeta(fd, m); err != nil {
		return &os.PathError{Op: "chmod", Path: r.full(rel), Err: err}
	}
	return nil
}

// Chtimes sets the mtime of rel without following a final symlink.
func (r *Root) Chtimes(rel string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if rel == "." {
		return unix.UtimesNanoAt(r.fd, "", ts, unix.AT_EMPTY_PATH)
	}
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// Open opens a regular file for reading, resolving symlinks inside the
// root. Anything else is refused with ErrNotRegular, without blocking on
// a FIFO or touching a device.
func (r *Root) Open(rel string) (*os.File, error) {
	fd, err := r.openat(rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: r.full(rel), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: ErrNotRegular}
	}
	return os.NewFile(uintptr(fd), r.full(rel)), nil
}

// ReadHostFile reads one of nroot's own files outside any image (an
// image's history, a node's key): a symlink, or anything but a regular
// file, is refused with ErrNotRegular without blocking on it, and more
// than max bytes with ErrTooLarge.
func ReadHostFile(name string, max int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	b, err := ReadAll(f, max)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: name, Err: err}
	}
	return b, nil
}

// ReadDir lists a directory's entry names, sorted, resolving symlinks
// inside the root.
func (r *Root) ReadDir(rel string) ([]string, error) {
	fd, err := r.openat(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: err}
	}
	defer unix.Close(fd)
	return dirNames(fd, r.full(rel))
}

// Readlink reads a symlink's target without following it.
func (r *Root) Readlink(rel string) (string, error) {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(pfd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(pfd, base, buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: r.full(rel), Err: err}
	}
	return string(buf[:n]), nil
}

// Exists reports whether rel resolves inside the root to anything.
func (r *Root) Exists(rel string) bool {
	_, err := r.Stat(rel)
	return err == nil
}

// IsRegular reports whether rel resolves inside the root to a regular file.
func (r *Root) IsRegular(rel string) bool {
	st, err := r.Stat(rel)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// Rename renames old to new, both resolved inside the root, without
// following either final component.
func (r *Root) Rename(old, new string) error {
	ofd, obase, err := r.parent(old)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := r.parent(new)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return &os.PathError{Op: "rename", Path: r.full(old), Err: err}
	}
	return nil
}

// Remove removes a file, symlink or empty directory, not following a
// final symlink.
func (r *Root) Remove(rel string) error {
	pfd, base, err := r.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Unlinkat(pfd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: r.full(rel), Err: err}
	}
	return nil
}

// maxRemoveDepth bounds RemoveAll's nesting.
const maxRemoveDepth = 256

// RemoveAll removes rel and everything below it, never following a
// symlink: a symlink is removed, not what it points at.
func (r *Root) RemoveAll(rel string) error {
	return r.removeAll(rel, 0)
}

func (r *Root) removeAll(rel string, depth int) error {
	st, err := r.Lstat(rel)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if depth >= maxRemoveDepth {
			return &os.PathError{Op: "remove", Path: r.full(rel), Err: fmt.Errorf("nested over %d directories deep", maxRemoveDepth)}
		}
		names, err := r.ReadDir(rel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := r.removeAll(path.Join(rel, n), depth+1); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return r.Remove(rel)
}

// Mkdev makes a device number for Mknod.
func Mkdev(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }
