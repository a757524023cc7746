package deb

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
	"time"

	"nroot/internal/fsroot"
)

// UnpackOptions control how a data archive is written.
type UnpackOptions struct {
	// Chown sets numeric owners and groups from the archive; it needs
	// root. Without it everything belongs to the caller.
	Chown bool
	// Devices creates device nodes; it needs root. Without it device
	// entries are skipped and reported.
	Devices bool
	// ClampMtime, when set, is the latest mtime written
	// (SOURCE_DATE_EPOCH).
	ClampMtime time.Time
	// Conffiles are written as PATH.dpkg-new, for dpkg --configure to
	// move into place, as dpkg itself unpacks them.
	Conffiles map[string]bool
	// Claim, when set, is asked before a non-directory path is written;
	// it returns whether to write it and a function to call once written.
	// Several packages unpacking at once use it to let the one that
	// dpkg would unpack last win.
	Claim func(rel string) (write bool, done func())
	// DeferDirs leaves directory owners, modes and times to the caller,
	// in Manifest.Dirs.
	DeferDirs bool
	// Pool, when set, writes small files and symlinks concurrently.
	Pool *fsroot.WritePool
	// Filter, when set, leaves out the paths dpkg's path-exclude and
	// path-include would.
	Filter *PathFilter
}

// DirMeta is a directory's metadata as the archive gives it.
type DirMeta = fsroot.DirMeta

// Manifest lists what a data archive contained, as dpkg's info/PKG.list
// records it: "/." then each path, in archive order.
type Manifest struct {
	Paths   []string
	Skipped []string // device nodes not created without Devices
	Size    int64    // bytes of regular files written
	// Filtered counts the entries Filter left out, FilteredSize their
	// bytes; they are in Paths all the same.
	Filtered     int
	FilteredSize int64
	Dirs         []DirMeta
}

// Unpack writes a data archive below root. Every name is checked (no
// "..", no absolute paths) and resolved inside root, so neither a name
// nor a symlink in the archive or already in root can make it write
// elsewhere; a symlink at a path being written is replaced, not followed.
// An existing directory symlink is kept when the archive has a directory
// there, as dpkg keeps merged-/usr's bin -> usr/bin. The writing is
// fsroot's Entries, the engine initrd extraction uses too.
func Unpack(tr *tar.Reader, root *fsroot.Root, o UnpackOptions) (m *Manifest, err error) {
	m = &Manifest{Paths: []string{"/."}}
	e := fsroot.NewEntries(root, o.Pool)
	defer func() {
		if werr := e.Wait(); err == nil {
			err = werr
		}
	}()
	for {
		if err := e.Err(); err != nil {
			return m, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, fmt.Errorf("data archive: %w", noEOF(err))
		}
		if isSparse(h) {
			// Sparse entries expand holes to any size; dpkg does not
			// write them and neither does nroot.
			return m, fmt.Errorf("data archive: %s: sparse files are not supported", h.Name)
		}
		rel, err := fsroot.Clean(h.Name)
		if err != nil {
			return m, fmt.Errorf("data archive: %w", err)
		}
		meta := fsroot.Meta{Mode: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid, Chown: o.Chown, ModTime: h.ModTime}
		if !o.ClampMtime.IsZero() && meta.ModTime.After(o.ClampMtime) {
			meta.ModTime = o.ClampMtime
		}
		if rel != "." {
			m.Paths = append(m.Paths, "/"+rel)
		}
		if rel != "." && o.Filter.Skip("/"+rel, h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink) {
			m.Filtered++
			if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
				m.FilteredSize += h.Size
			}
			continue // listed, not written, as dpkg has it
		}
		e.Prepare(rel)
		if h.Typeflag == tar.TypeDir {
			if err := e.Dir(rel, meta); err != nil {
				return m, err
			}
			continue
		}
		write, done := true, func() {}
		if o.Claim != nil {
			write, done = o.Claim(rel)
		}
		if !write {
			done() // another package owns the path
			continue
		}
		if err := writeEntry(e, tr, h, rel, meta, m, o, done); err != nil {
			return m, err
		}
	}
	// Directory metadata goes on after the files in them exist.
	if err := e.Wait(); err != nil {
		return m, err
	}
	m.Dirs = e.Dirs()
	if !o.DeferDirs {
		if err := fsroot.ApplyDirs(root, m.Dirs); err != nil {
			return m, err
		}
	}
	return m, nil
}

// writeEntry writes one non-directory entry; done is called once it is
// written (small files and symlinks later, by the pool).
func writeEntry(e *fsroot.Entries, tr *tar.Reader, h *tar.Header, rel string, meta fsroot.Meta, m *Manifest, o UnpackOptions, done func()) error {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		dst := rel
		if o.Conffiles["/"+rel] {
			dst += ".dpkg-new"
		}
		m.Size += h.Size
		if err := e.File(dst, tr, h.Size, meta, done); err != nil {
			return fmt.Errorf("data archive: %s: %w", h.Name, noEOF(err))
		}
		return nil
	case tar.TypeSymlink:
		if err := e.Symlink(h.Linkname, rel, meta, done); err != nil {
			return fmt.Errorf("data archive: %w", err)
		}
		return nil
	}
	defer done()
	switch h.Typeflag {
	case tar.TypeLink:
		old, err := fsroot.Clean(h.Linkname)
		if err != nil {
			return fmt.Errorf("data archive: hard link %s: %w", h.Name, err)
		}
		return e.Link(old, rel)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !o.Devices && h.Typeflag != tar.TypeFifo {
			m.Skipped = append(m.Skipped, "/"+rel)
			return nil
		}
		mode := map[byte]uint32{tar.TypeChar: fsroot.ModeChar, tar.TypeBlock: fsroot.ModeBlock, tar.TypeFifo: fsroot.ModeFIFO}[h.Typeflag]
		return e.Node(rel, mode|meta.Mode, fsroot.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)), meta)
	}
	return fmt.Errorf("data archive: %s: unsupported entry type %q", h.Name, h.Typeflag)
}

func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
