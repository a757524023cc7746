package deb

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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
}

// Manifest lists what a data archive contained, as dpkg's info/PKG.list
// records it: "/." then each path, in archive order.
type Manifest struct {
	Paths   []string
	Skipped []string // device nodes not created without Devices
	Size    int64    // bytes of regular files written
}

// Unpack writes a data archive below root. Every name is checked (no
// "..", no absolute paths) and resolved inside root, so neither a name
// nor a symlink in the archive or already in root can make it write
// elsewhere; a symlink at a path being written is replaced, not followed.
// An existing directory symlink is kept when the archive has a directory
// there, as dpkg keeps merged-/usr's bin -> usr/bin.
func Unpack(tr *tar.Reader, root *fsroot.Root, o UnpackOptions) (*Manifest, error) {
	m := &Manifest{Paths: []string{"/."}}
	type dirMeta struct {
		rel  string
		meta fsroot.Meta
	}
	var dirs []dirMeta
	for {
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
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(rel, 0o755); err != nil {
				return m, err
			}
			if st, err := root.Lstat(rel); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				dirs = append(dirs, dirMeta{rel, meta})
			}
		case tar.TypeReg, tar.TypeRegA:
			if err := root.WriteFile(rel, tr, h.Size, meta); err != nil {
				return m, err
			}
			m.Size += h.Size
		case tar.TypeSymlink:
			if h.Linkname == "" {
				return m, fmt.Errorf("data archive: symlink %s has no target", h.Name)
			}
			if err := root.Symlink(h.Linkname, rel, meta); err != nil {
				return m, err
			}
		case tar.TypeLink:
			old, err := fsroot.Clean(h.Linkname)
			if err != nil {
				return m, fmt.Errorf("data archive: hard link %s: %w", h.Name, err)
			}
			if err := root.Link(old, rel); err != nil {
				return m, err
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if !o.Devices && h.Typeflag != tar.TypeFifo {
				m.Skipped = append(m.Skipped, "/"+rel)
				continue
			}
			mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
			dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
			if err := root.Mknod(rel, mode|meta.Mode, dev, meta); err != nil {
				return m, err
			}
		default:
			return m, fmt.Errorf("data archive: %s: unsupported entry type %q", h.Name, h.Typeflag)
		}
	}
	// Directory modes and times last, so writing into them first worked
	// and their mtimes stay as packaged.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := root.SetDirMeta(d.rel, d.meta); err != nil {
			return m, err
		}
		if !d.meta.ModTime.IsZero() {
			root.Chtimes(d.rel, d.meta.ModTime)
		}
	}
	return m, nil
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
