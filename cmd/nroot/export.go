package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"nroot/node"
)

func newExportCmd(g *globals) *cobra.Command {
	var o node.ExportOptions
	var server string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export ROOT [--server=ADDR|ganesha] [--path=PATH]",
		Short: "Print the NFS server and network boot configuration for an image",
		Long: `Export prints what serving ROOT takes: an /etc/exports line (read-only, as
the nodes put an overlay over it; no_root_squash, as root must read
/etc/shadow; no_subtree_check), or with --server=ganesha an nfs-ganesha
EXPORT block; then the kernel command line from ROOT/boot/nroot-cmdline with
the server and path filled in, an iPXE script, a GRUB menuentry and a
pxelinux entry.`,
		Example: `  nroot export ./node --server=10.0.0.1
  nroot export /srv/node --server=ganesha --path=/node
  nroot export /srv/node --server=10.0.0.1 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if server == "ganesha" {
				o.Ganesha = true
			} else {
				o.Server = server
			}
			c, err := node.Export(args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c)
			}
			if o.Ganesha {
				fmt.Printf("# nfs-ganesha export (add to ganesha.conf):\n%s\n", c.Ganesha)
			} else {
				fmt.Printf("# /etc/exports:\n%s\n\n", c.Exports)
			}
			fmt.Printf("# kernel command line:\n%s\n\n# iPXE:\n%s\n# GRUB:\n%s\n# pxelinux:\n%s", c.Cmdline, c.IPXE, c.GRUB, c.PXELinux)
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "address nodes reach the NFS server at, or \"ganesha\" for an nfs-ganesha EXPORT block")
	cmd.Flags().StringVar(&o.Path, "path", "", "path nodes mount (the ganesha Pseudo path); default ROOT")
	cmd.Flags().IntVar(&o.Port, "port", 0, "NFS port, when not 2049")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
