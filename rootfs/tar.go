package rootfs

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// xattrsKept are the extended attributes an image needs: file
// capabilities set by postinsts (ping's cap_net_raw).
var xattrsKept = []string{"security.capability"}

// WriteTar writes dir as a tar stream with entries sorted by path,
// numeric owners, hard links as links and mtimes clamped to clamp (when
// set), so the same tree always gives the same bytes.
func WriteTar(w io.Writer, dir string, clamp time.Time) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(paths, func(i, j int) bool { return tarName(dir, paths[i]) < tarName(dir, paths[j]) })
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		name := tarName(dir, p)
		mtime := time.Unix(st.Mtim.Unix())
		if !clamp.IsZero() && mtime.After(clamp) {
			mtime = clamp
		}
		h := &tar.Header{Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: mtime.Truncate(time.Second), Format: tar.FormatPAX}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			h.Typeflag = tar.TypeDir
		case unix.S_IFLNK:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				h.Typeflag, h.Linkname = tar.TypeLink, first
			} else {
				links[key] = name
				h.Typeflag, h.Size = tar.TypeReg, st.Size
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			h.Typeflag = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				h.Typeflag = tar.TypeBlock
			}
			h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			h.Typeflag = tar.TypeFifo
		case unix.S_IFSOCK:
			continue
		}
		for _, x := range xattrsKept {
			buf := make([]byte, 256)
			if n, err := unix.Lgetxattr(p, x, buf); err == nil {
				if h.PAXRecords == nil {
					h.PAXRecords = map[string]string{}
				}
				h.PAXRecords["SCHILY.xattr."+x] = string(buf[:n])
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", name, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, h.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("tar %s: %w", name, err)
			}
		}
	}
	return tw.Close()
}

func tarName(dir, p string) string {
	rel, _ := filepath.Rel(dir, p)
	if rel == "." {
		return "./"
	}
	return "./" + strings.TrimPrefix(filepath.ToSlash(rel), "/")
}
