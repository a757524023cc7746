package fsroot

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// xattrsKept are the extended attributes an image needs: file
// capabilities set by postinsts (ping's cap_net_raw).
var xattrsKept = []string{"security.capability"}

// maxTarDepth bounds the walk's nesting; no real tree comes near it.
const maxTarDepth = 256

// TarOptions control WriteTar.
type TarOptions struct {
	// Clamp, when set, is the latest mtime written.
	Clamp time.Time
	// Name is the name of the top entry, "./" by default; entries below
	// a directory are named from it ("usr/" gives "usr/bin/").
	Name string
	// DropSetid clears setuid and setgid bits and leaves device nodes
	// out: for copying out of an image onto the host.
	DropSetid bool
	// Nodes are device nodes written in place of the empty regular files
	// at these paths (relative to rel, "dev/null"): a build that may not
	// make device nodes, in a user namespace, leaves such placeholders
	// and its tarball still gets the nodes.
	Nodes map[string]Node
}

// Node is a device node for TarOptions.Nodes: Mode carries the type bits
// (S_IFCHR or S_IFBLK) and the permissions.
type Node struct {
	Mode uint32
	Dev  uint64
}

// WriteTar writes the tree at rel (resolved inside the root) as a tar
// stream: entries sorted by path, numeric owners, hard links as links,
// mtimes clamped when asked, so the same tree always gives the same
// bytes. rel may be a directory (symlinks to one inside the root are
// followed) or any other entry, written alone. The walk goes one name at
// a time from open directories and never follows a symlink below rel:
// whatever the tree holds, nothing outside it is read. Sockets are left
// out, as tar leaves them.
func (r *Root) WriteTar(w io.Writer, rel string, o TarOptions) error {
	name := o.Name
	if name == "" {
		name = "./"
	}
	tw := tar.NewWriter(w)
	t := &tarWalk{tw: tw, o: o, links: map[[2]uint64]string{}, full: r.full(rel), top: name}
	var st unix.Stat_t
	fd, err := r.openDir(rel)
	switch {
	case err == nil:
		if err = unix.Fstat(fd, &st); err == nil {
			err = t.entry(fd, "", name, &st, 0)
		}
		unix.Close(fd)
	case errors.Is(err, unix.ENOTDIR):
		var pfd int
		var base string
		if pfd, base, err = r.parent(rel); err != nil {
			return err
		}
		if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			err = t.entry(pfd, base, strings.TrimSuffix(name, "/"), &st, 0)
		} else {
			err = &os.PathError{Op: "lstat", Path: r.full(rel), Err: err}
		}
		unix.Close(pfd)
	default:
		err = &os.PathError{Op: "open", Path: r.full(rel), Err: err}
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// Sub opens the directory rel, resolved inside the root, as a root of its
// own.
func (r *Root) Sub(rel string) (*Root, error) {
	fd, err := r.openDir(rel)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: r.full(rel), Err: err}
	}
	return &Root{fd: fd, Path: r.full(rel)}, nil
}

type tarWalk struct {
	tw    *tar.Writer
	o     TarOptions
	links map[[2]uint64]string
	full  string
	top   string
}

// entry writes one entry, whose parent directory is dirfd and whose name
// there is base ("" for the top, which fd-is itself).
func (t *tarWalk) entry(dirfd int, base, name string, st *unix.Stat_t, depth int) error {
	mtime := time.Unix(st.Mtim.Unix())
	if !t.o.Clamp.IsZero() && mtime.After(t.o.Clamp) {
		mtime = t.o.Clamp
	}
	h := &tar.Header{Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: mtime.Truncate(time.Second), Format: tar.FormatPAX}
	var file *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: path.Join(t.full, name), Err: err}
		}
		h.Linkname = string(buf[:n])
	case unix.S_IFREG:
		if n, ok := t.o.Nodes[strings.TrimPrefix(name, t.top)]; ok && st.Size == 0 {
			if t.o.DropSetid {
				return nil
			}
			h.Typeflag = tar.TypeChar
			if n.Mode&unix.S_IFMT == unix.S_IFBLK {
				h.Typeflag = tar.TypeBlock
			}
			h.Mode, h.Devmajor, h.Devminor = int64(n.Mode&0o7777), int64(unix.Major(n.Dev)), int64(unix.Minor(n.Dev))
			break
		}
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok && st.Nlink > 1 {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			break
		}
		t.links[key] = name
		h.Typeflag, h.Size = tar.TypeReg, st.Size
		fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path.Join(t.full, name), Err: err}
		}
		file = os.NewFile(uintptr(fd), name)
		defer file.Close()
		var now unix.Stat_t
		if err := unix.Fstat(fd, &now); err != nil || now.Ino != st.Ino || now.Mode&unix.S_IFMT != unix.S_IFREG {
			return &os.PathError{Op: "open", Path: path.Join(t.full, name), Err: fmt.Errorf("changed while being read")}
		}
		for _, x := range xattrsKept {
			buf := make([]byte, 256)
			if n, err := unix.Fgetxattr(fd, x, buf); err == nil {
				if h.PAXRecords == nil {
					h.PAXRecords = map[string]string{}
				}
				h.PAXRecords["SCHILY.xattr."+x] = string(buf[:n])
			}
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if t.o.DropSetid {
			return nil
		}
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil // sockets
	}
	if t.o.DropSetid {
		h.Mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if err := t.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %s: %w", name, err)
	}
	if file != nil && h.Size > 0 {
		if _, err := io.CopyN(t.tw, file, h.Size); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
	}
	if h.Typeflag != tar.TypeDir {
		return nil
	}
	if depth >= maxTarDepth {
		return fmt.Errorf("tar %s: nested over %d directories deep", name, maxTarDepth)
	}
	fd := dirfd
	if base != "" {
		var err error
		if fd, err = unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err != nil {
			return &os.PathError{Op: "open", Path: path.Join(t.full, name), Err: err}
		}
		defer unix.Close(fd)
	}
	names, err := dirNames(fd, path.Join(t.full, name))
	if err != nil {
		return err
	}
	for _, n := range names {
		var cst unix.Stat_t
		if err := unix.Fstatat(fd, n, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: path.Join(t.full, name, n), Err: err}
		}
		child := name + n
		if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
			child += "/"
		}
		if err := t.entry(fd, n, child, &cst, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// dirNames lists the directory open at fd (an O_PATH or O_RDONLY
// descriptor), sorted, bounded like ReadDir.
func dirNames(fd int, full string) ([]string, error) {
	rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: full, Err: err}
	}
	f := os.NewFile(uintptr(rfd), full)
	defer f.Close()
	var names []string
	for {
		batch, err := f.Readdirnames(4096)
		names = append(names, batch...)
		if len(names) > maxDirEntries {
			return nil, &os.PathError{Op: "readdir", Path: full, Err: fmt.Errorf("%w: over %d entries", ErrTooLarge, maxDirEntries)}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return names, nil
}
