package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"nroot/initrd"
	"nroot/internal/atomicfile"
)

func openImage(p string) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return f, nil
}

func newInitrdCatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print one file of an image",
		Long: `Cat prints the content of PATH as the kernel would leave it after unpacking
every segment: the last entry of that name wins, and a hard link gets the
data stored with another name of its inode. A symlink, a directory or a
missing name is an error (exit 1).`,
		Example: `  nroot initrd cat IMAGE usr/lib/dracut/modules.txt`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return initrd.Cat(f, args[1], os.Stdout)
		},
	}
}

func newInitrdExtractCmd() *cobra.Command {
	var asJSON, devices, setuid bool
	cmd := &cobra.Command{
		Use:   "extract IMAGE DIR [GLOB...]",
		Short: "Extract an image below DIR, safely",
		Long: `Extract writes every entry (or those matching GLOB) below DIR. Names and
symlinks are resolved inside DIR, so nothing is written outside it; hard
links are recreated; as root, owners are kept.

An image is untrusted input: device nodes are skipped unless --devices is
given (and nroot runs as root), and files lose their setuid and setgid bits
unless --setuid is given. Both are listed.`,
		Example: `  nroot initrd extract IMAGE /tmp/x
  nroot initrd extract IMAGE /tmp/x 'usr/lib/dracut/*'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := initrd.CheckGlobs(args[2:]); err != nil {
				return usageErr("%w", err)
			}
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			root := os.Geteuid() == 0
			if devices && !root {
				return fmt.Errorf("--devices: making device nodes needs root")
			}
			res, err := initrd.Extract(f, args[1], initrd.ExtractOptions{Globs: args[2:], Devices: devices, Setuid: setuid, Chown: root})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(args) > 2 && res.Entries == 0 {
				return fmt.Errorf("%s: %s: %w; nothing extracted", args[0], strings.Join(args[2:], " "), initrd.ErrNoMatch)
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Printf("%d entries extracted to %s\n", res.Entries, args[1])
			if len(res.Skipped) > 0 {
				fmt.Printf("device nodes skipped (--devices makes them): %s\n", strings.Join(res.Skipped, " "))
			}
			if len(res.Unset) > 0 {
				fmt.Printf("setuid/setgid bits cleared (--setuid keeps them): %s\n", strings.Join(res.Unset, " "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&devices, "devices", false, "make the image's device nodes (as root); skipped otherwise")
	cmd.Flags().BoolVar(&setuid, "setuid", false, "keep setuid and setgid bits on files; cleared otherwise")
	return cmd
}

func newInitrdDiffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show what changed between two images",
		Long: `Diff compares every path of two images (type, mode, owner, size, content
hash, symlink target, device numbers), grouped by top directory, and sums up
the kernel modules and dracut modules that changed. Exit status 1 when they
differ, as diff(1).`,
		Example: `  nroot initrd diff /boot/initrd.img-6.1.0-25-amd64 /boot/initrd.img-6.1.0-26-amd64`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := openImage(args[1])
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := initrd.Diff(a, b)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(res); err != nil {
					return err
				}
			} else {
				var tops []string
				for t := range res.ByTopDir {
					tops = append(tops, t)
				}
				sort.Strings(tops)
				for _, t := range tops {
					fmt.Printf("%s/\n", t)
					for _, c := range res.ByTopDir[t] {
						switch c.Kind {
						case "added":
							fmt.Printf("  + %s\n", c.Path)
						case "removed":
							fmt.Printf("  - %s\n", c.Path)
						default:
							fmt.Printf("  ~ %s (%s)\n", c.Path, c.Fields)
						}
					}
				}
				fmt.Printf("%d added, %d removed, %d changed\n", res.Added, res.Removed, res.Changed)
				for _, s := range []struct {
					label string
					v     []string
				}{{"kernels added", res.KernelsAdded}, {"kernels removed", res.KernelsRemoved}, {"kernel modules added", res.KernelModulesAdded}, {"kernel modules removed", res.KernelModulesRemoved}, {"kernel modules changed", res.KernelModulesChanged},
					{"dracut modules added", res.DracutModulesAdded}, {"dracut modules removed", res.DracutModulesRemoved}} {
					if len(s.v) > 0 {
						fmt.Printf("%s: %s\n", s.label, strings.Join(s.v, " "))
					}
				}
			}
			if len(res.Changes) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("images differ")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newInitrdVerifyCmd() *cobra.Command {
	var o initrd.VerifyOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify IMAGE [--nfs] [--overlay] [--kver K] [--rootfs DIR]",
		Short: "Check, without booting, that an image can do what a node needs",
		Long: `Verify runs named checks, each PASS or FAIL with its reason: /init is an
executable; dracut's base, network (with a handler) and, with --nfs, nfs
modules with mount.nfs, nfs-lib.sh and their hooks; the kernel modules
sunrpc, nfs, nfsv3/nfsv4 and, with --overlay, overlay are present and
consistent with modules.dep; every executable's DT_NEEDED libraries resolve
inside the image; with --rootfs, the kernel is installed there; with
--overlay, the overlay hook this dracut flavour runs is present.
Exit status 0 only if every check passes.`,
		Example: `  nroot initrd verify --nfs --overlay /srv/node/boot/initrd.img-6.12.48+deb13-amd64
  nroot initrd verify --nfs --overlay --rootfs /srv/node --json IMAGE`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			checks, _, err := initrd.Verify(f, o)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return reportChecks(args[0], "image", checks, asJSON)
		},
	}
	cmd.Flags().BoolVar(&o.NFS, "nfs", false, "the image must mount an NFS root")
	cmd.Flags().BoolVar(&o.Overlay, "overlay", false, "the image must put a writable overlay over the root")
	cmd.Flags().StringVar(&o.Kver, "kver", "", "kernel version to check (default: the image's)")
	cmd.Flags().StringVar(&o.Rootfs, "rootfs", "", "root filesystem whose installed kernel the image must match")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
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
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return o, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		o.Clamp = time.Unix(n, 0)
	}
	return o, nil
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

func newInitrdAppendCmd() *cobra.Command {
	var out, comp string
	var adds []string
	var keepOwner bool
	cmd := &cobra.Command{
		Use:   "append IMAGE --add SRC[:DEST]... -o OUT",
		Short: "Add files to an image as a new segment, without rebuilding it",
		Long: `Append copies IMAGE to OUT and adds one compressed segment with the given
files (directories recursively). The kernel unpacks segments in order, so the
new files are added to, or replace, the image's.`,
		Example: `  nroot initrd append initrd.img --add ./probe.service:/etc/systemd/system/probe.service -o initrd-probe.img`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" || len(adds) == 0 {
				return usageErr("append: --add and -o are required")
			}
			o, err := packOptions(comp, keepOwner)
			if err != nil {
				return err
			}
			in, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var specs []initrd.AddSpec
			for _, a := range adds {
				specs = append(specs, initrd.ParseAdd(a))
			}
			return writeAtomic(out, func(f *os.File) error { return initrd.Append(f, in, specs, o) })
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image to write")
	cmd.Flags().StringArrayVar(&adds, "add", nil, "SRC[:DEST] to add; repeatable")
	packFlags(cmd, &comp, &keepOwner)
	return cmd
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
