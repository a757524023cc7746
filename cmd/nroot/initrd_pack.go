package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nroot/internal/atomicfile"
	"nroot/node/initrd"
)

func newInitrdPackCmd() *cobra.Command {
	var out, comp, early string
	var keepOwner bool
	cmd := &cobra.Command{
		Use:   "pack DIR -o IMAGE [--compress=zstd|gzip|xz|lz4|none] [--early DIR]",
		Short: "Pack a directory as a dracut-compatible initramfs",
		Long: `Pack writes DIR as an initramfs: an uncompressed early archive first (from
--early, with dracut's early_cpio marker), then the main archive compressed,
4-byte aligned. Entries are sorted, owners 0:0 unless --keep-owner, mtimes
clamped to SOURCE_DATE_EPOCH, hard links stored once: two runs give the same
bytes. xz uses CRC32 checks and lz4 the kernel's legacy format.`,
		Example: `  nroot initrd pack ./initramfs -o initrd.img
  nroot initrd pack ./initramfs --early ./ucode --compress=xz -o initrd.img`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("pack: -o IMAGE is required")
			}
			for _, d := range []string{args[0], early} {
				if d != "" && within(out, d) {
					return usageErr("-o %s is inside %s, which would pack its own partial output; write the image elsewhere", out, d)
				}
			}
			o, err := packOptions(comp, keepOwner)
			if err != nil {
				return err
			}
			o.Early = early
			return writeAtomic(out, func(f *os.File) error { return initrd.Pack(f, args[0], o) })
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image to write")
	cmd.Flags().StringVar(&early, "early", "", "directory for the uncompressed early archive (microcode)")
	packFlags(cmd, &comp, &keepOwner)
	return cmd
}

func packFlags(cmd *cobra.Command, comp *string, keepOwner *bool) {
	cmd.Flags().StringVar(comp, "compress", "zstd", "compression of the new archive: zstd, gzip, xz, lz4 or none")
	cmd.Flags().BoolVar(keepOwner, "keep-owner", false, "keep owners instead of 0:0")
}

func packOptions(comp string, keepOwner bool) (initrd.PackOptions, error) {
	c := initrd.Compression(comp)
	switch c {
	case initrd.Zstd, initrd.Gzip, initrd.XZ, initrd.None:
	case "lz4":
		c = initrd.LZ4Legacy
	default:
		return initrd.PackOptions{}, fmt.Errorf("--compress %q: one of zstd, gzip, xz, lz4, none", comp)
	}
	o := initrd.PackOptions{Compression: c, KeepOwner: keepOwner}
	var err error
	o.Clamp, err = sourceDateEpoch()
	return o, err
}

// writeAtomic writes through a temporary file renamed into place.
func writeAtomic(path string, fn func(f *os.File) error) error {
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fn(f.File); err != nil {
		return err
	}
	return f.Commit()
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		p = filepath.Join(r, filepath.Base(p))
	}
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (zero time when unset).
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
	}
	return time.Unix(n, 0), nil
}
