package initrd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"

	"nroot/internal/fsroot"
)

// ExtractOptions control Extract.
type ExtractOptions struct {
	Globs []string
	// Devices creates device nodes (needs root); otherwise they are
	// skipped and listed in the result. An untrusted image could
	// otherwise leave a node for the host's disk, writable by all.
	Devices bool
	// Setuid keeps the setuid and setgid bits of files; otherwise they
	// are cleared, and the files listed in the result.
	Setuid bool
	// Chown keeps owners (needs root).
	Chown bool
}

// ExtractResult says what Extract did.
type ExtractResult struct {
	Entries int      `json:"entries"`
	Skipped []string `json:"skipped,omitempty"`
	// Unset are files written without their setuid or setgid bit.
	Unset []string `json:"setuid_cleared,omitempty"`
	// NotMade are entries this system cannot make: device nodes and FIFOs
	// off Linux, symlinks on Windows (fsroot.CanMknod, CanSymlink).
	NotMade []NotMade `json:"not_made,omitempty"`
}

// NotMade is an entry Extract could not make on this system, and why.
type NotMade struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Extract writes an image's entries below dir, every path resolved inside
// it, so no name or symlink in the image can make it write elsewhere.
// Later segments overwrite earlier ones, as the kernel unpacks them. Hard
// links are recreated from inode numbers. Small files and symlinks are
// written by a pool of goroutines while the image is decoded; writes to
// one path, and to the paths below a pending symlink, stay in order.
func Extract(r io.Reader, dir string, o ExtractOptions) (res *ExtractResult, err error) {
	if _, serr := os.Lstat(dir); os.IsNotExist(serr) {
		// A directory made here and left empty by a failure (not an
		// image, nothing matching) is removed again.
		defer func() {
			if err != nil || res == nil || res.Entries == 0 {
				os.Remove(dir)
			}
		}()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := fsroot.Open(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Writing is kernel work that competes with decoding for the CPUs.
	pool := fsroot.NewWritePool(runtime.NumCPU(), 64<<20)
	defer pool.Close()
	e := fsroot.NewEntries(root, pool)
	res = &ExtractResult{}
	type linkKey struct {
		seg      int
		ino      uint64
		maj, min uint32
	}
	links := map[linkKey][]string{}     // names written so far for each inode
	known := map[string]bool{".": true} // directories that exist
	noop := func() {}
	_, err = Scan(r, func(h *Header, data io.Reader) error {
		if err := e.Err(); err != nil {
			return err
		}
		if !Match(h.Name, o.Globs) {
			return nil
		}
		rel, err := fsroot.Clean(h.Name)
		if err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		if rel == "." {
			return nil
		}
		res.Entries++
		meta := fsroot.Meta{Mode: h.Mode & 0o7777, UID: h.UID, GID: h.GID, Chown: o.Chown, ModTime: h.ModTime}
		if h.Mode&TypeMask == TypeReg && meta.Mode&0o6000 != 0 && !o.Setuid {
			meta.Mode &^= 0o6000
			res.Unset = append(res.Unset, rel)
		}
		// A queued write of this path, or of a symlink on its way, goes
		// first.
		e.Prepare(rel)
		// Something else in place of a known directory (a symlink to one
		// that was walked through) may lead elsewhere now: forget them all.
		if known[rel] && h.Mode&TypeMask != TypeDir {
			clear(known)
			known["."] = true
		}
		// Parents an image leaves out are made as the kernel would.
		if parent := parentOf(rel); !known[parent] {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return err
			}
			markKnown(known, parent)
		}
		switch h.Mode & TypeMask {
		case TypeDir:
			if err := e.Dir(rel, meta); err != nil {
				return err
			}
			markKnown(known, rel)
		case TypeReg:
			if h.NLink > 1 {
				key := linkKey{h.Segment, h.Ino, h.DevMajor, h.DevMinor}
				names, ok := links[key]
				links[key] = append(names, rel)
				if ok {
					if h.Size == 0 {
						return e.Link(names[0], rel)
					}
					// The data came with a later link (GNU cpio puts it on
					// the last): write it, then link every name to it.
					for _, n := range names {
						e.WaitFor(n)
					}
					if err := root.WriteFile(rel, data, h.Size, meta); err != nil {
						return err
					}
					for _, n := range names {
						if err := root.Link(rel, n); err != nil {
							return err
						}
					}
					return nil
				}
			}
			return e.File(rel, data, h.Size, meta, noop) // the reader names the entry and segment
		case TypeLink:
			if !fsroot.CanSymlink {
				res.NotMade = append(res.NotMade, NotMade{rel, "symlink", runtime.GOOS + " makes no POSIX symlinks"})
				return nil
			}
			return e.Symlink(h.Linkname, rel, meta, noop)
		case TypeChr, TypeBlk, TypeFifo, TypeSock:
			if h.Mode&TypeMask != TypeFifo && !o.Devices {
				res.Skipped = append(res.Skipped, rel)
				return nil
			}
			if !fsroot.CanMknod {
				res.NotMade = append(res.NotMade, NotMade{rel, TypeName(h.Mode), "nroot makes device nodes and FIFOs on Linux only"})
				return nil
			}
			return e.Node(rel, h.Mode, fsroot.Mkdev(h.RDevMajor, h.RDevMinor), meta)
		default:
			return fmt.Errorf("entry %q: unknown type %o", h.Name, h.Mode&TypeMask)
		}
		return nil
	})
	// Directories get their modes and times last, deepest first.
	if ferr := e.Finish(); err == nil {
		err = ferr
	}
	return res, err
}

// markKnown records that dir and its parents exist.
func markKnown(known map[string]bool, dir string) {
	for d := dir; d != "." && !known[d]; d = parentOf(d) {
		known[d] = true
	}
}

func parentOf(rel string) string {
	i := bytes.LastIndexByte([]byte(rel), '/')
	if i < 0 {
		return "."
	}
	return rel[:i]
}

// Cat writes the content of one file of the image, as the kernel would
// leave it: the last entry of that name wins, and a hard link whose data
// the archive stored with another name of the same inode (GNU cpio puts
// it on the last, nroot on the first) gets that data.
func Cat(r io.ReadSeeker, name string, w io.Writer) error {
	want := CleanName(name)
	type inode struct {
		seg      int
		ino      uint64
		maj, min uint32
	}
	var found []byte
	var ok bool
	var target string
	var key inode
	var linked bool
	_, err := Scan(r, func(h *Header, data io.Reader) error {
		if CleanName(h.Name) != want {
			return nil
		}
		ok, target, found, linked = true, "", nil, false
		if h.IsSymlink() {
			target = h.Linkname
			return nil
		}
		if !h.IsRegular() {
			return fmt.Errorf("%s is not a regular file", want)
		}
		key, linked = inode{h.Segment, h.Ino, h.DevMajor, h.DevMinor}, h.NLink > 1 && h.Size == 0
		b, err := io.ReadAll(io.LimitReader(data, h.Size))
		found = b
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %w", want, ErrNoMatch)
	}
	if target != "" {
		return fmt.Errorf("%s is a symlink to %s", want, target)
	}
	if linked {
		// The data is on another link of the inode: read it there.
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := Scan(r, func(h *Header, data io.Reader) error {
			if h.IsRegular() && h.Size > 0 && (inode{h.Segment, h.Ino, h.DevMajor, h.DevMinor}) == key {
				b, err := io.ReadAll(io.LimitReader(data, h.Size))
				found = b
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	_, err = w.Write(found)
	return err
}
