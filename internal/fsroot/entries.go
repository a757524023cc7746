package fsroot

import (
	"fmt"
	"io"
	"sort"
)

// DirMeta is a directory's metadata as an archive gives it, applied once
// the directory's contents are written.
type DirMeta struct {
	Rel  string
	Meta Meta
}

// Entries writes the entries of one archive (a .deb's data archive, an
// initramfs) below a root: the one engine both extractions use. Small
// files and symlinks go to a write pool while the archive is still being
// decoded; larger files, hard links, directories and nodes are written at
// once. Writes to one path, and below a symlink still queued, stay in
// archive order. Directories get their owners, modes and times last, so
// that writing into them does not change them again. Every error is
// reported.
type Entries struct {
	root  *Root
	batch *Batch // nil: every write is made at once
	dirs  []DirMeta
}

// NewEntries starts writing an archive below root, through pool when it
// is not nil.
func NewEntries(root *Root, pool *WritePool) *Entries {
	e := &Entries{root: root}
	if pool != nil {
		e.batch = pool.Batch()
	}
	return e
}

// Err is the first error of a queued write so far, so the reader of the
// archive can stop early.
func (e *Entries) Err() error {
	if e.batch == nil {
		return nil
	}
	return e.batch.Err()
}

// Prepare waits for the queued writes an entry at rel must follow: of rel
// itself and of every directory above it (one may be a symlink).
func (e *Entries) Prepare(rel string) {
	if e.batch != nil {
		e.batch.WaitFor(rel)
		e.batch.WaitForParents(rel)
	}
}

// WaitFor waits for a queued write of rel (a hard link's target).
func (e *Entries) WaitFor(rel string) {
	if e.batch != nil {
		e.batch.WaitFor(rel)
	}
}

// Dir makes a directory, keeping an existing one or a symlink to one (as
// dpkg keeps merged-/usr's bin -> usr/bin), and records its metadata for
// Finish.
func (e *Entries) Dir(rel string, m Meta) error {
	if err := e.root.Mkdir(rel, 0o755); err != nil {
		return err
	}
	if e.root.isRealDir(rel) {
		e.dirs = append(e.dirs, DirMeta{rel, m})
	}
	return nil
}

// File writes a regular file of size bytes from r: queued when it is
// small (read into memory now), written at once otherwise. done is called
// once it is written.
func (e *Entries) File(rel string, r io.Reader, size int64, m Meta, done func()) error {
	if e.batch != nil && size <= e.batch.MaxFile() {
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			done()
			return err
		}
		e.batch.WriteFile(e.root, rel, data, m, done)
		return nil
	}
	defer done()
	return e.root.WriteFile(rel, r, size, m)
}

// Symlink writes a symlink (queued when there is a pool).
func (e *Entries) Symlink(target, rel string, m Meta, done func()) error {
	if target == "" {
		done()
		return fmt.Errorf("symlink %s has no target", rel)
	}
	if e.batch != nil {
		e.batch.Symlink(e.root, target, rel, m, done)
		return nil
	}
	defer done()
	return e.root.Symlink(target, rel, m)
}

// Link makes rel a hard link to old, once old is written.
func (e *Entries) Link(old, rel string) error {
	e.WaitFor(old)
	return e.root.Link(old, rel)
}

// Node makes a device node, FIFO or socket.
func (e *Entries) Node(rel string, mode uint32, dev uint64, m Meta) error {
	return e.root.Mknod(rel, mode, dev, m)
}

// Wait waits for every queued write and returns the first error.
func (e *Entries) Wait() error {
	if e.batch == nil {
		return nil
	}
	return e.batch.Wait()
}

// Dirs are the directories written, with their metadata, in archive order.
func (e *Entries) Dirs() []DirMeta { return e.dirs }

// Finish waits for the queued writes, then applies the directories'
// metadata.
func (e *Entries) Finish() error {
	if err := e.Wait(); err != nil {
		return err
	}
	return ApplyDirs(e.root, e.dirs)
}

// ApplyDirs sets directories' owners, modes and times, deepest first,
// after their contents are written. A directory a later entry replaced is
// no longer there to set (the later entry won, as dpkg and the kernel's
// unpacker have it); any other error is reported.
func ApplyDirs(root *Root, dirs []DirMeta) error {
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		err := root.SetDirMeta(d.Rel, d.Meta)
		if err == nil && !d.Meta.ModTime.IsZero() {
			err = root.Chtimes(d.Rel, d.Meta.ModTime)
		}
		if err != nil && !replaced(err) {
			return fmt.Errorf("directory %s: %w", d.Rel, err)
		}
	}
	return nil
}

// SortDirs orders directories by path, so that ApplyDirs, going backwards,
// sets the deepest first.
func SortDirs(dirs []DirMeta) {
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Rel < dirs[j].Rel })
}
