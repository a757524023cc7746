package hook

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"nroot/build/deb"
	"nroot/internal/atomicfile"
	"nroot/internal/decompress"
	"nroot/internal/fsroot"

	"golang.org/x/sys/unix"
)

// specialArity is each special hook's number of arguments after its name;
// -2 is "two or more".
var specialArity = map[string]int{
	"copy-in": -2, "copy-out": -2,
	"tar-in": 2, "tar-out": 2,
	"upload": 2, "download": 2,
	"sync-in": 2, "sync-out": 2,
}

func checkSpecial(args []string) error {
	n := specialArity[args[0]]
	got := len(args) - 1
	if (n > 0 && got != n) || (n < 0 && got < -n) {
		want := fmt.Sprint(n)
		if n < 0 {
			want = fmt.Sprintf("at least %d", -n)
		}
		return fmt.Errorf("%s takes %s arguments, not %d", args[0], want, got)
	}
	for _, a := range args[1:] {
		if a == "" {
			return fmt.Errorf("%s: an argument is empty", args[0])
		}
	}
	return nil
}

// maxWords bounds SplitWords.
const maxWords = 4096

// SplitWords splits a command line as a POSIX shell splits words: blanks
// separate, single quotes keep everything, double quotes keep all but
// \" \\ \$ \` escapes, and a backslash outside quotes quotes the next
// character. There is no expansion of any kind.
func SplitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
				if len(out) > maxWords {
					return nil, fmt.Errorf("over %d words", maxWords)
				}
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// imagePath makes a path inside the image ("/etc/hosts") relative to its
// root, refusing ".." rather than guessing.
func imagePath(p string) (string, error) {
	return fsroot.Clean(strings.TrimLeft(p, "/"))
}

// resolvedImagePath is imagePath with its symlinks followed inside the
// image, as mmdebstrap resolves the inside path of copy-out and tar-out
// (chrooted_realpath): copy-out /etc/os-release gives the file, not a
// link pointing nowhere on the host.
func resolvedImagePath(img *fsroot.Root, p string) (string, error) {
	rel, err := imagePath(p)
	if err != nil {
		return "", err
	}
	resolved, ok := fsroot.ResolveLinks(rel, func(q string) (string, bool) {
		t, err := img.Readlink(q)
		return t, err == nil
	})
	if !ok {
		return "", fmt.Errorf("%s in the image: too many levels of symbolic links", p)
	}
	if resolved == "" {
		resolved = "."
	}
	return resolved, nil
}

// runSpecial runs a special hook. Every one of them stops, with ctx's
// error, as soon as ctx ends: host input is read through input, tar
// streams are checked between reads and writes, and a file cut short is
// removed, so nothing half-written is left in the image or on the host.
func runSpecial(ctx context.Context, args []string, env Env) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	img, err := fsroot.Open(env.Target)
	if err != nil {
		return err
	}
	defer img.Close()
	err = special(ctx, img, args[0], args[1:])
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s stopped: %w", args[0], ctx.Err())
	}
	return err
}

func special(ctx context.Context, img *fsroot.Root, op string, a []string) error {
	switch op {
	case "copy-in": // host paths... into an image directory
		dst := a[len(a)-1]
		for _, src := range a[:len(a)-1] {
			if err := hostToImage(ctx, src, filepath.Base(src)+"/", img, dst); err != nil {
				return err
			}
		}
		return nil
	case "copy-out": // image paths... into a host directory
		dst := a[len(a)-1]
		for _, src := range a[:len(a)-1] {
			rel, err := resolvedImagePath(img, src)
			if err != nil {
				return err
			}
			if err := imageToHost(ctx, img, rel, filepath.Base(rel)+"/", dst); err != nil {
				return err
			}
		}
		return nil
	case "sync-in": // a host directory's contents into an image directory
		return hostToImage(ctx, a[0], "./", img, a[1])
	case "sync-out":
		rel, err := imagePath(a[0])
		if err != nil {
			return err
		}
		return imageToHost(ctx, img, rel, "./", a[1])
	case "tar-in": // a host tarball unpacked into an image directory
		f, err := openInput(ctx, a[0])
		if err != nil {
			return err
		}
		defer f.Close()
		format, err := decompress.ByExt(strings.TrimPrefix(filepath.Ext(a[0]), ".tar"))
		if err != nil {
			format = decompress.None
		}
		r, err := decompress.NewReader(format, f)
		if err != nil {
			return fmt.Errorf("%s: %w", a[0], err)
		}
		defer r.Close()
		return unpackInto(tar.NewReader(r), img, a[1], true)
	case "tar-out": // an image path as a host tarball, named by its base name (tar -C DIR -c BASE, as mmdebstrap runs it)
		rel, err := resolvedImagePath(img, a[0])
		if err != nil {
			return err
		}
		top := "./"
		if rel != "" && rel != "." {
			top = path.Base(rel) + "/"
		}
		if err := os.MkdirAll(filepath.Dir(a[1]), 0o755); err != nil {
			return err
		}
		f, err := atomicfile.Create(a[1], 0o644)
		if err != nil {
			return err
		}
		defer f.Abort()
		if err := img.WriteTar(ctxWriter{ctx, f}, rel, fsroot.TarOptions{Name: top}); err != nil {
			return err
		}
		return f.Commit()
	case "upload": // a host file to an image file
		rel, err := imagePath(a[1])
		if err != nil {
			return err
		}
		f, err := openInput(ctx, a[0])
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("upload: %s: %w (upload needs the size of what it writes; use tar-in, or copy the file first)", a[0], fsroot.ErrNotRegular)
		}
		return img.WriteFile(rel, f, st.Size(), uploadMeta(img, rel))
	case "download": // an image file to a host file
		rel, err := imagePath(a[0])
		if err != nil {
			return err
		}
		src, err := img.Open(rel) // regular files only
		if err != nil {
			return err
		}
		defer src.Close()
		if err := os.MkdirAll(filepath.Dir(a[1]), 0o755); err != nil {
			return err
		}
		f, err := atomicfile.Create(a[1], 0o644)
		if err != nil {
			return err
		}
		defer f.Abort()
		if _, err := io.Copy(ctxWriter{ctx, f}, src); err != nil {
			return err
		}
		return f.Commit()
	}
	return fmt.Errorf("unknown special hook %q", op)
}

// uploadMeta is what an uploaded file gets. mmdebstrap writes into the
// file at the path (cat > PATH), so an existing one keeps its mode and
// owner: /etc/shadow stays 0640 root:shadow. nroot writes a new file and
// renames it over, so that a file is never seen half-written, and gives
// it the existing file's mode and owner. A new file gets what cat gives
// it under mmdebstrap's umask, 0644, owned by the builder. Whatever else
// is at the path (a symlink, a FIFO, a device) lends nothing, and is
// replaced, never followed or opened.
func uploadMeta(img *fsroot.Root, rel string) fsroot.Meta {
	m := fsroot.Meta{Mode: 0o644, UID: os.Geteuid(), GID: os.Getegid(), Chown: os.Geteuid() == 0, ModTime: time.Now()}
	if st, err := img.Lstat(rel); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
		m.Mode, m.UID, m.GID = st.Mode&0o7777, int(st.Uid), int(st.Gid)
	}
	return m
}

// hostToImage copies a host path into the image directory dst, naming
// its top entry top ("./" for a directory's contents).
func hostToImage(ctx context.Context, src, top string, img *fsroot.Root, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	if top == "./" {
		dir, base = abs, "."
	}
	host, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer host.Close()
	return piped(ctx, func(w io.Writer) error {
		return host.WriteTar(w, base, fsroot.TarOptions{Name: top})
	}, func(tr *tar.Reader) error {
		return unpackInto(tr, img, dst, true)
	})
}

// imageToHost copies an image path into the host directory dst. What
// comes out of the image is hostile: it is written through fsroot below
// dst, device nodes are not made, and setuid and setgid bits are dropped.
func imageToHost(ctx context.Context, img *fsroot.Root, rel, top, dst string) error {
	if top != "./" && !strings.HasSuffix(top, "/") {
		top += "/"
	}
	// Paths outside the image are made as needed, as mmdebstrap makes
	// them.
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	host, err := fsroot.Open(dst)
	if err != nil {
		return err
	}
	defer host.Close()
	return piped(ctx, func(w io.Writer) error {
		return img.WriteTar(w, rel, fsroot.TarOptions{Name: top, DropSetid: true})
	}, func(tr *tar.Reader) error {
		_, err := deb.Unpack(tr, host, deb.UnpackOptions{Chown: os.Geteuid() == 0})
		return err
	})
}

// piped runs a tar writer and its reader on the two ends of a pipe, and
// returns once both are done, so that nothing is still read or written
// after it. Both ends stop at ctx's end.
func piped(ctx context.Context, write func(io.Writer) error, read func(*tar.Reader) error) error {
	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() {
		err := write(ctxWriter{ctx, pw})
		pw.CloseWithError(err)
		wrote <- err
	}()
	err := read(tar.NewReader(ctxReader{ctx, pr}))
	if err == nil {
		// A tar stream ends before the writer's last padding: drain
		// it, so that the writer's error (if any) is seen.
		_, err = io.Copy(io.Discard, ctxReader{ctx, pr})
	}
	pr.CloseWithError(err) // the writer, if not done, stops at its next write
	if werr := <-wrote; err == nil && werr != nil {
		err = werr
	}
	return err
}

// unpackInto unpacks a tar stream into the image directory dst, which
// must exist.
func unpackInto(tr *tar.Reader, img *fsroot.Root, dst string, devices bool) error {
	rel, err := imagePath(dst)
	if err != nil {
		return err
	}
	sub, err := img.Sub(rel)
	if err != nil {
		return fmt.Errorf("%s in the image: %w", dst, err)
	}
	defer sub.Close()
	root := os.Geteuid() == 0
	_, err = deb.Unpack(tr, sub, deb.UnpackOptions{Chown: root, Devices: root && devices})
	return err
}
