package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"nroot/build/fsimage"
	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
)

// Formats Bootstrap can write: a directory, a tarball (compressed in Go,
// or by the compressor mmdebstrap would run), an image file, or null
// (build, run the hooks, keep nothing).
var Formats = []string{"dir", "tar", "tar.gz", "tar.zst", "tar.xz", "tar.bz2", "tar.lz4", "tar.lzma", "tar.lz", "tar.lzo", "tar.Z", "squashfs", "erofs", "null"}

// externalCompressors are the tarball formats compressed by a program, as
// mmdebstrap compresses them: the program reads the tar on stdin.
var externalCompressors = map[string]string{
	"tar.xz": "xz", "tar.bz2": "bzip2", "tar.lz4": "lz4", "tar.lzma": "lzma",
	"tar.lz": "lzip", "tar.lzo": "lzop", "tar.Z": "compress",
}

// compressorPackage is the Debian package of each external compressor.
var compressorPackage = map[string]string{
	"xz": "xz-utils", "bzip2": "bzip2", "lz4": "lz4", "lzma": "xz-utils",
	"lzip": "lzip", "lzop": "lzop", "compress": "ncompress",
}

// Stdout is the TARGET that means a tarball on standard output.
const Stdout = "-"

// isImage says the format is an image file (nroot/fsimage).
func isImage(f string) bool { return f == "squashfs" || f == "erofs" }

// isTar says the format is a tarball.
func isTar(f string) bool { return f == "tar" || strings.HasPrefix(f, "tar.") }

// formatSuffixes are the TARGET names that say a format, as mmdebstrap
// reads them (get_tar_compressor), longest first where one ends another.
var formatSuffixes = []struct{ suffix, format string }{
	{".tar.zst", "tar.zst"}, {".tzst", "tar.zst"}, {".zst", "tar.zst"},
	{".tar.gz", "tar.gz"}, {".tgz", "tar.gz"}, {".taz", "tar.gz"}, {".gz", "tar.gz"},
	{".tar.xz", "tar.xz"}, {".txz", "tar.xz"}, {".xz", "tar.xz"},
	{".tar.bz2", "tar.bz2"}, {".tbz2", "tar.bz2"}, {".tbz", "tar.bz2"}, {".tz2", "tar.bz2"}, {".bz2", "tar.bz2"},
	{".tar.lz4", "tar.lz4"}, {".lz4", "tar.lz4"},
	{".tar.lzma", "tar.lzma"}, {".tlz", "tar.lzma"}, {".lzma", "tar.lzma"},
	{".tar.lz", "tar.lz"}, {".lz", "tar.lz"},
	{".tar.lzo", "tar.lzo"}, {".lzo", "tar.lzo"},
	{".tar.Z", "tar.Z"}, {".taZ", "tar.Z"}, {".Z", "tar.Z"},
	{".tar", "tar"},
	{".squashfs", "squashfs"}, {".sqfs", "squashfs"}, {".erofs", "erofs"},
	{".ext2", "ext2"}, // mmdebstrap's; refused here, never a directory so named
}

// formatAliases are other spellings of a format: mmdebstrap's.
var formatAliases = map[string]string{"directory": "dir"}

// FormatFor is the output format for TARGET: the one asked for ("auto" or
// "" takes it from the name, else a directory), refused when the name
// says another (a tarball named .tar.zst written uncompressed). As in
// mmdebstrap, /dev/null is the null format, "-" a tarball on standard
// output, and --format=tar compresses as the name says.
func FormatFor(target, asked string) (string, error) {
	if a, ok := formatAliases[asked]; ok {
		asked = a
	}
	named := "dir"
	switch target {
	case "/dev/null":
		named = "null"
	case Stdout:
		named = "tar"
	default:
		for _, f := range formatSuffixes {
			if strings.HasSuffix(target, f.suffix) {
				named = f.format
				break
			}
		}
	}
	switch {
	case named == "ext2" || asked == "ext2":
		return "", fmt.Errorf("--format ext2 (TARGET %s): nroot does not write ext2 images; use --format=squashfs or erofs (.squashfs, .erofs), or build a directory and run mke2fs -d DIR IMAGE", target)
	case asked == "" || asked == "auto":
		return named, nil
	case !slices.Contains(Formats, asked):
		return "", fmt.Errorf("--format %q: one of auto, directory, %s", asked, strings.Join(Formats, ", "))
	case target == Stdout && !isTar(asked) && asked != "null":
		return "", fmt.Errorf("--format %s cannot be written to standard output (TARGET -); give a tar format, or a TARGET path", asked)
	case target == Stdout || asked == "null":
		return asked, nil
	case asked == "tar" && isTar(named):
		return named, nil // compressed as the name says, as mmdebstrap does
	case named != "dir" && named != "null" && named != asked:
		return "", fmt.Errorf("--format %s, but TARGET %s is named as %s; rename it or drop --format", asked, target, named)
	}
	return asked, nil
}

// ErrTargetExists is a TARGET nroot will not build over.
var ErrTargetExists = errors.New("target exists")

// checkTarget refuses to overwrite: a directory target must be absent,
// empty, or hold only lost+found (a new filesystem's mount point); a file
// target absent or a regular file, replaced once the new one is whole. It also checks, before any work, that a tarball's
// compressor can be run.
func checkTarget(target, format string, stdout io.Writer) error {
	if prog, ok := externalCompressors[format]; ok {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("bootstrap: TARGET %s is compressed with %s, which is not installed (Debian package %s); install it, or name the TARGET .tar.zst, .tar.gz or .tar", target, prog, compressorPackage[prog])
		}
	}
	switch {
	case format == "null":
		return nil
	case target == Stdout:
		if stdout == nil {
			return fmt.Errorf("bootstrap: TARGET - writes the tarball to standard output, and none was given")
		}
		return nil
	}
	fi, err := os.Lstat(target)
	if os.IsNotExist(err) {
		if _, err := os.Stat(filepath.Dir(filepath.Clean(target))); err != nil {
			return fmt.Errorf("bootstrap: parent of %s: %w", target, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if format == "dir" && fi.IsDir() && emptyTarget(target) {
		return nil
	}
	if format != "dir" && fi.Mode().IsRegular() {
		return nil // replaced by a rename at the end, as mmdebstrap overwrites it
	}
	return fmt.Errorf("bootstrap: %s already exists; nroot does not build over an existing %s (remove it or choose another TARGET): %w", target, map[bool]string{true: "directory", false: "file"}[fi.IsDir()], ErrTargetExists)
}

// emptyTarget says a directory holds nothing, or only a lost+found
// directory.
func emptyTarget(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(3)
	if err != nil && err != io.EOF {
		return false
	}
	switch len(names) {
	case 0:
		return true
	case 1:
		fi, err := os.Lstat(filepath.Join(dir, names[0]))
		return err == nil && names[0] == "lost+found" && fi.IsDir()
	}
	return false
}

// buildDir makes the temporary directory the image is built in: inside
// an existing (empty) target directory, which may be a mount point and
// so on another filesystem than its parent; in the temporary directory
// for a target that is no path (null, "-"); else beside the target, so
// the final rename stays on one filesystem.
func buildDir(target, format string) (string, error) {
	var dir, pattern string
	switch fi, err := os.Stat(target); {
	case format == "null" || target == Stdout:
		dir, pattern = "", "nroot-bootstrap-"
	case format == "dir" && err == nil && fi.IsDir():
		dir, pattern = target, ".nroot-"
	default:
		dir, pattern = filepath.Dir(filepath.Clean(target)), "."+filepath.Base(target)+".nroot-"
	}
	if dir == "" {
		dir = os.TempDir()
	}
	// Absolute: hooks get it as $1 and run in the caller's directory.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// output moves the finished tree into place, writes it as a tarball
// (through a temporary file, or to standard output) or an image file, or,
// for null, keeps nothing.
func output(ctx context.Context, dir, target string, o Options, skip skipSet) error {
	switch {
	case o.Format == "null":
		return nil
	case o.Format == "dir" && builtInside(dir, target):
		if err := syncTree(dir); err != nil {
			return err
		}
		if err := moveUp(dir, target); err != nil {
			return err
		}
		return syncDir(target)
	case o.Format == "dir":
		if err := syncTree(dir); err != nil {
			return err
		}
		if err := os.Rename(dir, target); err != nil {
			return fmt.Errorf("moving the image into place: %w", err)
		}
		return syncDir(filepath.Dir(target))
	case isImage(o.Format):
		_, err := fsimage.Write(ctx, dir, target, fsimage.Options{Format: fsimage.Format(o.Format), Epoch: o.SourceDateEpoch, Log: o.Log})
		return err
	case target == Stdout:
		if err := writeTarball(ctx, dir, o.Stdout, o, skip); err != nil {
			return fmt.Errorf("writing the tarball to standard output: %w", err)
		}
		return nil
	}
	f, err := atomicfile.Create(target, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	err = writeTarball(ctx, dir, f, o, skip)
	if err == nil {
		err = f.Commit()
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", target, err)
	}
	return nil
}

// syncTree writes the built tree back to disk, once, before it is moved
// into place: nothing wrote it with an fsync per file (neither the
// unpacking nor, under nspawn's --suppress-sync, dpkg), so this one
// syncfs is what makes the image durable, and a crash never leaves a
// TARGET whose files are not all there.
func syncTree(dir string) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Sync(); err != nil {
		return fmt.Errorf("writing the image to disk: %w", err)
	}
	return nil
}

// syncDir makes a rename in the host directory dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s to disk: %w", dir, err)
	}
	return nil
}

// builtInside says the build directory dir is inside target (buildDir
// made it there).
func builtInside(dir, target string) bool {
	abs, err := filepath.Abs(target)
	return err == nil && filepath.Dir(dir) == abs
}

// moveUp moves a tree built in dir, a directory inside target, up into
// target, and removes dir: each entry is one rename within a filesystem.
// Names target holds already (lost+found) are left as they are, unless
// the image has them too, which is an error.
func moveUp(dir, target string) error {
	names, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var moved []string
	// On a failure, what was moved goes back, leaving target as it was.
	undo := func(err error) error {
		for _, n := range moved {
			os.Rename(filepath.Join(target, n), filepath.Join(dir, n))
		}
		return err
	}
	for _, e := range names {
		to := filepath.Join(target, e.Name())
		if _, err := os.Lstat(to); err == nil {
			if e.Name() == "lost+found" {
				continue // the filesystem's own: the image's empty one goes
			}
			return undo(fmt.Errorf("moving the image into %s: %s is there already", target, e.Name()))
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), to); err != nil {
			return undo(fmt.Errorf("moving the image into place: %w", err))
		}
		moved = append(moved, e.Name())
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := os.Chmod(target, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// writeTarball writes the tree in dir to w as a tar, compressed as the
// format says.
func writeTarball(ctx context.Context, dir string, out io.Writer, o Options, skip skipSet) error {
	var w io.WriteCloser = nopCloser{out}
	var wait func() error
	switch o.Format {
	case "tar.gz":
		w = gzip.NewWriter(out)
	case "tar.zst":
		zw, err := zstd.NewWriter(out, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		w = zw
	default:
		prog, ok := externalCompressors[o.Format]
		if !ok {
			break
		}
		cmd := exec.CommandContext(ctx, prog, "-c")
		cmd.Stdout = out
		var stderr strings.Builder
		cmd.Stderr = &stderr
		pw, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", prog, err)
		}
		w = pw
		wait = func() error {
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(stderr.String()))
			}
			return nil
		}
	}
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	to := fsroot.TarOptions{Clamp: o.SourceDateEpoch}
	if devPlaceholders(o, skip) {
		to.Nodes = devTarNodes()
	}
	err = root.WriteTar(w, ".", to)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if wait != nil {
		if werr := wait(); err == nil {
			err = werr
		}
	}
	return err
}
