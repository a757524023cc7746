package hook

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nroot/deb"
	"nroot/internal/atomicfile"
	"nroot/internal/decompress"
	"nroot/internal/fsroot"
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

func runSpecial(args []string, env Env) error {
	img, err := fsroot.Open(env.Target)
	if err != nil {
		return err
	}
	defer img.Close()
	op, a := args[0], args[1:]
	switch op {
	case "copy-in": // host paths... into an image directory
		dst := a[len(a)-1]
		for _, src := range a[:len(a)-1] {
			if err := hostToImage(src, filepath.Base(src)+"/", img, dst); err != nil {
				return err
			}
		}
		return nil
	case "copy-out": // image paths... into a host directory
		dst := a[len(a)-1]
		for _, src := range a[:len(a)-1] {
			rel, err := imagePath(src)
			if err != nil {
				return err
			}
			if err := imageToHost(img, rel, filepath.Base(rel)+"/", dst); err != nil {
				return err
			}
		}
		return nil
	case "sync-in": // a host directory's contents into an image directory
		return hostToImage(a[0], "./", img, a[1])
	case "sync-out":
		rel, err := imagePath(a[0])
		if err != nil {
			return err
		}
		return imageToHost(img, rel, "./", a[1])
	case "tar-in": // a host tarball unpacked into an image directory
		f, err := os.Open(a[0])
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
	case "tar-out": // an image directory as a host tarball
		rel, err := imagePath(a[0])
		if err != nil {
			return err
		}
		f, err := atomicfile.Create(a[1], 0o644)
		if err != nil {
			return err
		}
		defer f.Abort()
		if err := img.WriteTar(f, rel, fsroot.TarOptions{}); err != nil {
			return err
		}
		return f.Commit()
	case "upload": // a host file to an image file
		rel, err := imagePath(a[1])
		if err != nil {
			return err
		}
		f, err := os.Open(a[0])
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("upload: %s is not a regular file", a[0])
		}
		return img.WriteFile(rel, f, st.Size(), fsroot.Meta{Mode: 0o644, Chown: os.Geteuid() == 0, ModTime: time.Now()})
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
		f, err := atomicfile.Create(a[1], 0o644)
		if err != nil {
			return err
		}
		defer f.Abort()
		if _, err := io.Copy(f, src); err != nil {
			return err
		}
		return f.Commit()
	}
	return fmt.Errorf("unknown special hook %q", op)
}

// hostToImage copies a host path into the image directory dst, naming
// its top entry top ("./" for a directory's contents).
func hostToImage(src, top string, img *fsroot.Root, dst string) error {
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
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(host.WriteTar(pw, base, fsroot.TarOptions{Name: top})) }()
	err = unpackInto(tar.NewReader(pr), img, dst, true)
	pr.CloseWithError(err)
	return err
}

// imageToHost copies an image path into the host directory dst. What
// comes out of the image is hostile: it is written through fsroot below
// dst, device nodes are not made, and setuid and setgid bits are dropped.
func imageToHost(img *fsroot.Root, rel, top, dst string) error {
	if top != "./" && !strings.HasSuffix(top, "/") {
		top += "/"
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(img.WriteTar(pw, rel, fsroot.TarOptions{Name: top, DropSetid: true})) }()
	host, err := fsroot.Open(dst)
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer host.Close()
	_, err = deb.Unpack(tar.NewReader(pr), host, deb.UnpackOptions{Chown: os.Geteuid() == 0})
	pr.CloseWithError(err)
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
