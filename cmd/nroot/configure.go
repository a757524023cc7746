//go:build linux

package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"nroot/build/rootfs"
)

func newConfigureCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "configure TARGET",
		Short: "Run the maintainer scripts of a root that bootstrap only unpacked",
		Long: `Configure finishes a root filesystem that nroot bootstrap unpacked but could
not configure, because this host could not run its architecture: it runs the
preinsts and dpkg --configure inside systemd-nspawn, on a host of that
architecture or with a binfmt_misc handler for it.`,
		Example: `  nroot bootstrap --architectures=arm64 trixie ./node-arm64   # on amd64: unpacks only
  nroot configure ./node-arm64                                 # on arm64, or with qemu-user-binfmt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var log io.Writer = os.Stderr
			if g.quiet {
				log = nil
			}
			return rootfs.ConfigureDir(cmd.Context(), args[0], log)
		},
	}
}
