package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"nroot/internal/fsroot"
)

// Record is an entry with a way to open its data, as u-root's cpio
// records are.
type Record struct {
	Header
	Open func() (io.ReadCloser, error) // nil for entries without data
	key  [2]uint64                     // device and inode on disk, for hard links
}

// StaticFile, Directory, Symlink and CharDev build records in memory.
func StaticFile(name string, data []byte, perm uint32) Record {
	return Record{Header: Header{Name: name, Mode: TypeReg | perm, NLink: 1, Size: int64(len(data))},
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

func Directory(name string, perm uint32) Record {
	return Record{Header: Header{Name: name, Mode: TypeDir | perm, NLink: 2}}
}

func Symlink(name, target string) Record {
	return Record{Header: Header{Name: name, Mode: TypeLink | 0o777, NLink: 1, Linkname: target}}
}

func CharDev(name string, perm, major, minor uint32) Record {
	return Record{Header: Header{Name: name, Mode: TypeChr | perm, NLink: 1, RDevMajor: major, RDevMinor: minor}}
}

// FromDir returns records for every file below dir, named relative to it
// under prefix, in sorted order.
func FromDir(dir, prefix string) ([]Record, error) {
	var recs []Record
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := path.Join(prefix, filepath.ToSlash(rel))
		if name == "." || name == "" {
			return nil // the archive root is implied
		}
		r, ok, err := recordFor(p, name)
		if err != nil || !ok {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("initrd: reading %s: %w", dir, err)
	}
	return recs, nil
}

// recordFor makes the record of one file on disk; false for sockets,
// which are not archived.
func recordFor(p, name string) (Record, bool, error) {
	st, err := fsroot.HostLstat(p)
	if err != nil {
		return Record{}, false, err
	}
	h := Header{Name: name, Mode: st.Mode, UID: st.UID, GID: st.GID, NLink: st.NLink,
		ModTime: st.ModTime, RDevMajor: st.RDevMajor, RDevMinor: st.RDevMinor}
	r := Record{Header: h, key: [2]uint64{st.Dev, st.Ino}}
	switch st.Mode & TypeMask {
	case TypeReg:
		r.Size = st.Size
		r.Open = func() (io.ReadCloser, error) { return os.Open(p) }
	case TypeLink:
		t, err := os.Readlink(p)
		if err != nil {
			return r, false, err
		}
		r.Linkname = t
	case TypeDir, TypeChr, TypeBlk, TypeFifo:
	default:
		return r, false, nil
	}
	return r, true, nil
}

// Sort orders records by name, so the same tree always gives the same
// archive.
func Sort(recs []Record) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
}

// MakeReproducible clamps mtimes to clamp (when set) and, unless
// keepOwner, sets owners to 0:0.
func MakeReproducible(recs []Record, clamp time.Time, keepOwner bool) {
	for i := range recs {
		if !clamp.IsZero() && recs[i].ModTime.After(clamp) {
			recs[i].ModTime = clamp
		}
		if !keepOwner {
			recs[i].UID, recs[i].GID = 0, 0
		}
	}
}

// DedupHardlinks numbers inodes from 1 in order and stores the data of
// files linked together once, with the first name, which is how the
// kernel's unpacker recreates hard links.
func DedupHardlinks(recs []Record) {
	first := map[[2]uint64]int{}
	links := map[[2]uint64]int{}
	for _, r := range recs {
		if r.Mode&TypeMask == TypeReg && r.key != [2]uint64{} {
			links[r.key]++
		}
	}
	next := uint64(1)
	for i := range recs {
		r := &recs[i]
		if r.Mode&TypeMask == TypeReg && r.key != [2]uint64{} && links[r.key] > 1 {
			if j, ok := first[r.key]; ok {
				r.Ino, r.Size, r.Open = recs[j].Ino, 0, nil
			} else {
				first[r.key] = i
				r.Ino = next
				next++
			}
			r.NLink = links[r.key]
			continue
		}
		r.Ino = next
		next++
		if r.Mode&TypeMask != TypeDir {
			r.NLink = 1
		}
	}
}

// WriteArchive writes records as one newc archive with its trailer.
func WriteArchive(w io.Writer, recs []Record) error {
	cw := NewWriter(w)
	for _, r := range recs {
		h := r.Header
		if err := cw.WriteHeader(&h); err != nil {
			return err
		}
		if r.Open != nil && h.Size > 0 {
			f, err := r.Open()
			if err != nil {
				return err
			}
			n, err := io.Copy(cw, io.LimitReader(f, h.Size))
			f.Close()
			if err != nil {
				return fmt.Errorf("initrd: %s: %w", h.Name, err)
			}
			if n != h.Size {
				return fmt.Errorf("initrd: %s changed size while packing", h.Name)
			}
		}
	}
	return cw.Close()
}

// PackOptions control Pack.
type PackOptions struct {
	Compression Compression
	// Early, when set, is a directory packed first as the uncompressed
	// early archive (microcode), with dracut's early_cpio marker.
	Early     string
	KeepOwner bool
	// Clamp, when set, is the latest mtime written (SOURCE_DATE_EPOCH).
	Clamp time.Time
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Pack writes dir as a dracut-compatible image: the early archive if
// any, then the main archive compressed, 4-byte aligned.
func Pack(w io.Writer, dir string, o PackOptions) error {
	for _, d := range []string{dir, o.Early} {
		if d == "" {
			continue
		}
		if fi, err := os.Stat(d); err != nil {
			return fmt.Errorf("initrd: pack: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("initrd: pack: %s is not a directory; pack takes the tree to put in the image", d)
		}
	}
	cw := &countingWriter{w: w}
	if o.Early != "" {
		recs, err := FromDir(o.Early, "")
		if err != nil {
			return err
		}
		recs = append(recs, StaticFile("early_cpio", []byte("1\n"), 0o644))
		if err := writeSegment(cw, recs, None, o); err != nil {
			return err
		}
	}
	recs, err := FromDir(dir, "")
	if err != nil {
		return err
	}
	return writeSegment(cw, recs, o.Compression, o)
}

func writeSegment(cw *countingWriter, recs []Record, c Compression, o PackOptions) error {
	if pad := pad4(cw.n); pad > 0 {
		if _, err := cw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	Sort(recs)
	MakeReproducible(recs, o.Clamp, o.KeepOwner)
	DedupHardlinks(recs)
	z, err := compressor(c, cw)
	if err != nil {
		return err
	}
	if err := WriteArchive(z, recs); err != nil {
		return err
	}
	return z.Close()
}

// AddSpec is one file to add with Append: SRC on the host, DEST in the
// image.
type AddSpec struct{ Src, Dest string }

// ParseAdd reads "SRC[:DEST]"; DEST defaults to SRC's base name at the
// image root.
func ParseAdd(s string) AddSpec {
	src, dest, ok := strings.Cut(s, ":")
	if !ok || dest == "" {
		dest = filepath.Base(src)
	}
	return AddSpec{Src: src, Dest: strings.TrimLeft(dest, "/")}
}

// ErrNotInitramfs says a file given as an image holds no cpio archive.
var ErrNotInitramfs = errors.New("not an initramfs image")

// Append copies the image and adds a new compressed segment holding the
// given files (directories recursively). The kernel unpacks segments in
// order, so the new files replace the old ones without the image being
// rebuilt. The image is read first, and the new segment is written the
// way the kernel will see it: each destination is resolved through the
// image's own directory symlinks (merged-/usr's lib -> usr/lib), and only
// the parent directories the image lacks are added, so none of its
// directories or symlinks is replaced or reset.
func Append(w io.Writer, image io.ReadSeeker, add []AddSpec, o PackOptions) error {
	// What the kernel would have made of the image so far: later
	// entries replace earlier ones.
	types := map[string]uint32{}
	links := map[string]string{}
	segs, err := Scan(image, func(h *Header, _ io.Reader) error {
		name := CleanName(h.Name)
		types[name] = h.Mode & TypeMask
		if h.IsSymlink() {
			links[name] = h.Linkname
		} else {
			delete(links, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("initrd: append: %w", err)
	}
	if len(segs) == 0 || len(types) == 0 {
		return fmt.Errorf("initrd: append: %w", ErrNotInitramfs)
	}
	if _, err := image.Seek(0, io.SeekStart); err != nil {
		return err
	}
	readlink := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	// resolve spells a destination as the kernel will reach it: its
	// directories through the image's symlinks, its last name as given.
	resolve := func(dest string) (string, error) {
		dir, base := path.Split(dest)
		if dir == "" {
			return base, nil
		}
		r, ok := fsroot.ResolveLinks(dir, readlink)
		if !ok {
			return "", fmt.Errorf("initrd: append: %s: the image's symlinks loop", dest)
		}
		return path.Join(r, base), nil
	}
	cw := &countingWriter{w: w}
	if _, err := io.Copy(cw, image); err != nil {
		return err
	}
	var recs []Record
	have := map[string]bool{}
	addParents := func(name string) error {
		var missing []string
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if have[d] {
				break
			}
			switch t, ok := types[d]; {
			case !ok:
				missing = append(missing, d)
			case t != TypeDir:
				return fmt.Errorf("initrd: append: %s: %s is not a directory in the image", name, d)
			}
			have[d] = true
		}
		for i := len(missing) - 1; i >= 0; i-- {
			recs = append(recs, Directory(missing[i], 0o755))
		}
		return nil
	}
	for _, a := range add {
		if a.Dest == "" || strings.Contains("/"+a.Dest+"/", "/../") {
			return fmt.Errorf("initrd: append: destination %q must be a path inside the image", a.Dest)
		}
		dest, err := resolve(path.Clean(a.Dest))
		if err != nil {
			return err
		}
		if err := addParents(dest); err != nil {
			return err
		}
		fi, err := os.Lstat(a.Src)
		if err != nil {
			return fmt.Errorf("initrd: append: %w", err)
		}
		if fi.IsDir() {
			// The tree's own records; its top directory only where the
			// image has none, so an existing one keeps its mode.
			sub, err := FromDir(a.Src, dest)
			if err != nil {
				return err
			}
			for _, r := range sub {
				if r.Name == dest && types[dest] == TypeDir {
					continue
				}
				recs = append(recs, r)
			}
			continue
		}
		r, ok, err := recordFor(a.Src, dest)
		if err != nil {
			return fmt.Errorf("initrd: append: %w", err)
		}
		if ok {
			recs = append(recs, r)
		}
	}
	return writeSegment(cw, recs, o.Compression, o)
}
