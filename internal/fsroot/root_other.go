//go:build !linux

package fsroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"time"
)

// Root is an open directory that paths are resolved in: an os.Root,
// which refuses a path, or a symlink met on the way, that leads out of
// it.
type Root struct {
	root *os.Root
	Path string
}

// CanMknod: device nodes and FIFOs are made only on Linux; elsewhere an
// archive's are reported, entry by entry, as not made.
const CanMknod = false

// CanSymlink: Windows has no POSIX symlinks (its own need a privilege and
// differ for files and directories); the other systems make them.
const CanSymlink = runtime.GOOS != "windows"

// Open opens dir as a root.
func Open(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Root{root: r, Path: dir}, nil
}

// Close releases the root.
func (r *Root) Close() error { return r.root.Close() }

// Sync makes the root's tree durable: elsewhere than Linux, which has
// syncfs, by fsyncing the root directory alone, so the files must have
// been synced as they were written.
func (r *Root) Sync() error {
	f, err := r.root.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (r *Root) full(rel string) string { return path.Join(r.Path, rel) }

// name is rel as os.Root takes it.
func name(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// IsDir reports whether rel resolves, inside the root, to a directory.
func (r *Root) IsDir(rel string) bool {
	fi, err := r.root.Stat(name(rel))
	return err == nil && fi.IsDir()
}

// isRealDir reports whether rel is a directory itself, not a symlink to
// one.
func (r *Root) isRealDir(rel string) bool {
	fi, err := r.root.Lstat(name(rel))
	return err == nil && fi.IsDir()
}

// replaced reports an error of a path a later entry replaced.
func replaced(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// Exists reports whether rel resolves inside the root to anything.
func (r *Root) Exists(rel string) bool {
	_, err := r.root.Stat(name(rel))
	return err == nil
}

// IsRegular reports whether rel resolves inside the root to a regular file.
func (r *Root) IsRegular(rel string) bool {
	fi, err := r.root.Stat(name(rel))
	return err == nil && fi.Mode().IsRegular()
}

// Mkdir creates a directory; an existing directory, or a symlink that
// resolves inside the root to one, is kept.
func (r *Root) Mkdir(rel string, mode uint32) error {
	if rel == "." {
		return nil
	}
	err := r.root.Mkdir(rel, fs.FileMode(mode&0o777))
	if err == nil || (errors.Is(err, fs.ErrExist) && r.IsDir(rel)) {
		return nil
	}
	return err
}

// fileMode turns Unix permission bits into an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// replace renames a freshly made temporary entry over rel, refusing to
// replace a directory with something else.
func (r *Root) replace(tmp, rel string) error {
	if r.isRealDir(rel) {
		r.root.Remove(tmp)
		return &os.PathError{Op: "replace", Path: r.full(rel), Err: errors.New("a directory is in the way")}
	}
	if err := r.root.Rename(tmp, rel); err != nil {
		r.root.Remove(tmp)
		return err
	}
	return nil
}

// WriteFile writes a regular file from src, which must hold exactly size
// bytes. An existing file or symlink is replaced by writing a temporary
// file and renaming it over, so a symlink at rel is never written through.
func (r *Root) WriteFile(rel string, src io.Reader, size int64, m Meta) error {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	tmp := rel
	f, err := r.root.OpenFile(tmp, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		tmp = path.Join(path.Dir(rel), tmpName(path.Base(rel)))
		f, err = r.root.OpenFile(tmp, flags, 0o600)
	}
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err == nil && n != size {
		err = fmt.Errorf("short content: %d of %d bytes", n, size)
	}
	if err == nil && m.Chown {
		err = f.Chown(m.UID, m.GID)
	}
	if err == nil {
		err = f.Chmod(fileMode(m.Mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !m.ModTime.IsZero() {
		err = r.root.Chtimes(tmp, m.ModTime, m.ModTime)
	}
	if err != nil {
		r.root.Remove(tmp)
		return fmt.Errorf("%s: %w", r.full(rel), err)
	}
	if tmp == rel {
		return nil
	}
	return r.replace(tmp, rel)
}

// Symlink creates or replaces a symlink; its target is only ever
// resolved inside the root.
func (r *Root) Symlink(target, rel string, m Meta) error {
	if !CanSymlink {
		return &os.PathError{Op: "symlink", Path: r.full(rel), Err: errors.ErrUnsupported}
	}
	tmp := path.Join(path.Dir(rel), tmpName(path.Base(rel)))
	if err := r.root.Symlink(target, tmp); err != nil {
		return err
	}
	if m.Chown {
		r.root.Lchown(tmp, m.UID, m.GID)
	}
	return r.replace(tmp, rel)
}

// Link makes rel a hard link to the existing file old, both inside the
// root.
func (r *Root) Link(old, rel string) error {
	if r.isRealDir(old) {
		return &os.PathError{Op: "link", Path: r.full(old), Err: errors.New("is a directory")}
	}
	tmp := path.Join(path.Dir(rel), tmpName(path.Base(rel)))
	if err := r.root.Link(old, tmp); err != nil {
		return err
	}
	return r.replace(tmp, rel)
}

// Mknod is Linux's alone (CanMknod).
func (r *Root) Mknod(rel string, mode uint32, dev uint64, m Meta) error {
	return &os.PathError{Op: "mknod", Path: r.full(rel), Err: errors.ErrUnsupported}
}

// SetDirMeta sets a directory's owner and mode.
func (r *Root) SetDirMeta(rel string, m Meta) error {
	if m.Chown {
		if err := r.root.Chown(name(rel), m.UID, m.GID); err != nil {
			return err
		}
	}
	return r.root.Chmod(name(rel), fileMode(m.Mode)|fs.ModeDir)
}

// Chtimes sets the mtime of rel.
func (r *Root) Chtimes(rel string, t time.Time) error {
	return r.root.Chtimes(name(rel), t, t)
}

// Open opens a regular file for reading, resolving symlinks inside the
// root. Anything else is refused with ErrNotRegular, without blocking on
// a FIFO.
func (r *Root) Open(rel string) (*os.File, error) {
	if fi, err := r.root.Stat(name(rel)); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: ErrNotRegular}
	}
	f, err := r.root.OpenFile(name(rel), os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: ErrNotRegular}
	}
	return f, nil
}

// ReadDir lists a directory's entry names, sorted, resolving symlinks
// inside the root.
func (r *Root) ReadDir(rel string) ([]string, error) {
	d, err := r.root.Open(name(rel))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(maxDirEntries + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(names) > maxDirEntries {
		return nil, &os.PathError{Op: "readdir", Path: r.full(rel), Err: fmt.Errorf("over %d entries", maxDirEntries)}
	}
	sort.Strings(names)
	return names, nil
}

// Readlink reads a symlink's target without following it.
func (r *Root) Readlink(rel string) (string, error) {
	return r.root.Readlink(rel)
}

// Mkdev makes a device number for Mknod, which is Linux's alone.
func Mkdev(major, minor uint32) uint64 { return uint64(major)<<32 | uint64(minor) }
