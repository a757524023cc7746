//go:build linux

package main

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"nroot/build/fsimage"
)

func newFSImageCmd(g *globals) *cobra.Command {
	var format, block, group string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "fsimage ROOT FILE [--format auto|squashfs|erofs]",
		Short: "Write a root as one read-only image file (squashfs or erofs)",
		Long: `Fsimage writes the tree at ROOT (a node image, an image generation's root)
as one squashfs or erofs file that nodes loop-mount over NFS or fetch over
HTTP (nroot export --image prints the boot lines). The format comes from
FILE's name (.squashfs, .sqfs, .erofs) or --format.

Debian's mksquashfs (zstd, 128 KiB blocks) and mkfs.erofs (lz4hc) write it,
storing owners, modes, xattrs (file capabilities), devices, FIFOs and hard
links as they are, and never following a symlink in ROOT. The image's
creation time, and every mtime later than it, is SOURCE_DATE_EPOCH, or by
default ROOT's newest mtime; erofs's UUID derives from the tree. So one tree
gives one image, byte for byte. FILE is written under a temporary name and
renamed into place, mode 0600: it holds the root's /etc/shadow. With
--group, that group may read it too (0640), for the server that serves
it: --group www-data for Debian's nginx.`,
		Example: `  nroot fsimage /srv/node /srv/img/node.squashfs
  SOURCE_DATE_EPOCH=1700000000 nroot fsimage --format=erofs ./node node.img --json`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := fsimage.FormatFor(args[1], format)
			if err != nil {
				return usageErr("%w", err)
			}
			epoch, err := sourceDateEpoch()
			if err != nil {
				return usageErr("%w", err)
			}
			o := fsimage.Options{Format: f, Epoch: epoch, Log: g.logger()}
			if block != "" {
				n, err := parseSize(block)
				if err != nil {
					return usageErr("--block-size %q: a size such as 128K or 1M", block)
				}
				o.BlockSize = int(n)
			}
			if group != "" {
				gid, err := lookupGroupID(group)
				if err != nil {
					return usageErr("--group %q: %v; give a group of this host (getent group)", group, err)
				}
				o.Group = &gid
			}
			info, err := fsimage.Write(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(info)
			}
			fmt.Printf("%s: %s, %d bytes, sha256 %s\n", info.Path, info.Format, info.Bytes, info.SHA256)
			return nil
		},
	}
	cmd.Flags().StringVar(&block, "block-size", "", "squashfs block size or erofs cluster size (e.g. 128K, 1M); default the tool's")
	cmd.Flags().StringVar(&format, "format", "auto", "squashfs or erofs; auto takes it from FILE's name")
	cmd.Flags().StringVar(&group, "group", "", "a group that may read FILE (mode 0640); default only its owner (0600)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// lookupGroupID is a host group's number, by name or number.
func lookupGroupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if g, err = user.LookupGroupId(name); err != nil {
			return 0, err
		}
	}
	return strconv.Atoi(g.Gid)
}

// parseSize reads a byte count with an optional K or M suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1<<30 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
