// Package fsimage writes a root filesystem as one read-only image file,
// squashfs or erofs, that a node loop-mounts over NFS or fetches over
// HTTP; and it tells the two apart by their superblocks.
//
// The images are made by Debian's squashfs-tools (mksquashfs) and
// erofs-utils (mkfs.erofs): they are what the kernel's own drivers are
// tested against, they store xattrs (file capabilities), devices, FIFOs
// and hard links as they are, and both order their output by name, so
// one tree gives one image. Write fixes what they would take from the
// clock: the creation time and every later mtime are SOURCE_DATE_EPOCH
// (by default the tree's newest mtime, which changes nothing in it), and
// erofs's UUID is derived from the tree's size and that time. Two
// writes of one tree, or of two bootstraps from one lock with one
// SOURCE_DATE_EPOCH, are byte-identical.
package fsimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"nroot/internal/usage"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"nroot/internal/atomicfile"
	"nroot/internal/progress"
)

// Format is an image file format.
type Format string

const (
	Squashfs Format = "squashfs"
	EROFS    Format = "erofs"
)

// Formats lists them in the order nroot prefers.
var Formats = []Format{Squashfs, EROFS}

// suffixes say the format by the file's name.
var suffixes = []struct {
	suffix string
	format Format
}{{".squashfs", Squashfs}, {".sqfs", Squashfs}, {".erofs", EROFS}}

// FormatFor is the format for a file named name: the one asked for
// ("" or "auto" takes it from the name), refused when the name says
// another.
func FormatFor(name, asked string) (Format, error) {
	var named Format
	for _, s := range suffixes {
		if strings.HasSuffix(name, s.suffix) {
			named = s.format
		}
	}
	switch {
	case asked == "" || asked == "auto":
		if named == "" {
			return "", &FormatError{Name: name}
		}
		return named, nil
	case asked != string(Squashfs) && asked != string(EROFS):
		return "", &FormatError{Name: name, Asked: asked}
	case named != "" && string(named) != asked:
		return "", &FormatError{Name: name, Asked: asked, Named: named}
	}
	return Format(asked), nil
}

// FormatError says the format cannot be told or was asked for wrongly.
type FormatError struct {
	Name  string
	Asked string
	Named Format
}

func (e *FormatError) Error() string {
	switch {
	case e.Named != "":
		return fmt.Sprintf("--format %s, but %s is named as %s; rename it or drop --format", e.Asked, e.Name, e.Named)
	case e.Asked != "":
		return fmt.Sprintf("--format %q: one of squashfs, erofs", e.Asked)
	}
	return fmt.Sprintf("%s: name the file .squashfs, .sqfs or .erofs, or give --format=squashfs|erofs", e.Name)
}

// Options control Write.
type Options struct {
	Format Format
	// Epoch is the image's creation time; later mtimes are clamped to
	// it. Zero: the tree's newest mtime.
	Epoch time.Time
	// BlockSize is squashfs's data block size (4 KiB to 1 MiB, a power
	// of two; 0: 128 KiB) or erofs's largest physical cluster (a multiple
	// of 4 KiB up to 1 MiB; 0: one block). Larger blocks mean fewer,
	// larger reads when a node boots from the image.
	BlockSize int
	// Log gets one line when the tool starts and one when it ends.
	Log *slog.Logger
	// Group, when set, may read the image (mode 0640, that group: the
	// HTTP or NFS server's user); otherwise only its owner may (0600).
	// The image holds the root's /etc/shadow and whatever else only root
	// may read inside it.
	Group *int
}

// Info describes a written image.
type Info struct {
	Path    string  `json:"path"`
	Format  Format  `json:"format"`
	Bytes   int64   `json:"bytes"`
	Epoch   int64   `json:"epoch"`
	SHA256  string  `json:"sha256"`
	Entries int     `json:"entries"`
	Seconds float64 `json:"seconds"`
	Tool    string  `json:"tool"`
}

// ToolError says the program that writes the format is missing or
// failed.
type ToolError struct {
	Tool   string
	Err    error
	Output string
}

func (e *ToolError) Error() string {
	if errors.Is(e.Err, exec.ErrNotFound) {
		pkg := map[string]string{"mksquashfs": "squashfs-tools", "mkfs.erofs": "erofs-utils"}[e.Tool]
		return fmt.Sprintf("fsimage: %s is not installed; install Debian's %s", e.Tool, pkg)
	}
	return fmt.Sprintf("fsimage: %s: %v: %s", e.Tool, e.Err, lastLines(e.Output, 8))
}

func (e *ToolError) Unwrap() error { return e.Err }

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "; ")
}

// treeFacts are what Write reads of the tree before the tool runs.
type treeFacts struct {
	newest  time.Time
	entries int
	bytes   int64
}

// survey walks the tree without following a symlink: its newest mtime,
// its entries and their sizes.
func survey(ctx context.Context, root string) (treeFacts, error) {
	var f treeFacts
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if f.entries%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if m := time.Unix(st.Mtim.Unix()); m.After(f.newest) {
			f.newest = m
		}
		f.entries++
		f.bytes += st.Size
		return nil
	})
	return f, err
}

// Write writes the tree at root as an image file at target, through a
// temporary name beside it.
func Write(ctx context.Context, root, target string, o Options) (*Info, error) {
	start := time.Now()
	if o.Format != Squashfs && o.Format != EROFS {
		return nil, &FormatError{Name: target, Asked: string(o.Format)}
	}
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("fsimage: %s is not a directory; give the root of a tree", root)
	}
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("fsimage: %s is a directory; give the image file's name", target)
	}
	facts, err := survey(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("fsimage: reading %s: %w", root, err)
	}
	epoch := o.Epoch
	if epoch.IsZero() {
		epoch = facts.newest
	}
	if b := o.BlockSize; b != 0 && (b < 4096 || b > 1<<20 || (o.Format == Squashfs && b&(b-1) != 0) || b%4096 != 0) {
		return nil, &usage.Error{Option: "--block-size", Value: strconv.Itoa(b), Why: "a power of two from 4096 to 1048576 for squashfs, a multiple of 4096 up to 1048576 for erofs"}
	}
	if epoch.Unix() < 0 || epoch.Unix() > 1<<32-1 {
		return nil, fmt.Errorf("fsimage: time %d is outside what squashfs and erofs store (0 to 2^32-1)", epoch.Unix())
	}
	f, err := atomicfile.Create(target, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fsimage: %w", err)
	}
	defer f.Abort()
	tool, args := command(o.Format, root, f.Name(), epoch.Unix(), o.BlockSize, facts)
	if o.Log != nil {
		o.Log.Info(fmt.Sprintf("%s %s (%d entries, %s) to %s", tool, root, facts.entries, progress.Bytes(facts.bytes), target), "stage", "fsimage")
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch.Unix(), 10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ToolError{Tool: tool, Err: err, Output: out.String()}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("fsimage: reading back %s: %w", f.Name(), err)
	}
	got, err := Detect(io.NewSectionReader(f, 0, n))
	if err != nil || got != o.Format {
		return nil, fmt.Errorf("fsimage: %s wrote no %s image (%v)", tool, o.Format, err)
	}
	// The tool may have made the file anew: its mode is set last.
	mode := os.FileMode(0o600)
	if o.Group != nil {
		if err := f.Chown(-1, *o.Group); err != nil {
			return nil, fmt.Errorf("fsimage: giving %s to group %d: %w", target, *o.Group, err)
		}
		mode = 0o640
	}
	if err := f.Chmod(mode); err != nil {
		return nil, fmt.Errorf("fsimage: %w", err)
	}
	if err := f.Commit(); err != nil {
		return nil, fmt.Errorf("fsimage: %w", err)
	}
	info := &Info{Path: target, Format: o.Format, Bytes: n, Epoch: epoch.Unix(), SHA256: fmt.Sprintf("%x", h.Sum(nil)),
		Entries: facts.entries, Seconds: time.Since(start).Seconds(), Tool: tool}
	if o.Log != nil {
		o.Log.Info(fmt.Sprintf("%s: %s in %.1fs", target, progress.Bytes(n), info.Seconds), "stage", "fsimage")
	}
	return info, nil
}

// command is the tool's argv. squashfs: zstd, which every kernel nroot
// boots reads and which decompresses fast; 128 KiB blocks, the default,
// so a random read costs one block. erofs: lz4hc, the compressor every
// erofs-utils and kernel has.
func command(f Format, root, out string, epoch int64, block int, facts treeFacts) (string, []string) {
	if f == Squashfs {
		args := []string{root, out, "-noappend", "-no-progress", "-quiet", "-comp", "zstd", "-reproducible"}
		if block != 0 {
			args = append(args, "-b", strconv.Itoa(block))
		}
		return "mksquashfs", args
	}
	args := []string{"-zlz4hc", "-U", uuid(epoch, facts), "--quiet"}
	if block != 0 {
		args = append(args, "-C", strconv.Itoa(block))
	}
	return "mkfs.erofs", append(args, out, root)
}

// uuid derives erofs's filesystem UUID (version 4 form) from what the
// image holds, so it is the same for the same tree.
func uuid(epoch int64, facts treeFacts) string {
	var seed [24]byte
	binary.BigEndian.PutUint64(seed[0:], uint64(epoch))
	binary.BigEndian.PutUint64(seed[8:], uint64(facts.entries))
	binary.BigEndian.PutUint64(seed[16:], uint64(facts.bytes))
	s := sha256.Sum256(append([]byte("nroot fsimage "), seed[:]...))
	s[6] = s[6]&0x0f | 0x40
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
