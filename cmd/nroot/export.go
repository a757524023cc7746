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
		Use:   "export ROOT --server=ADDR [--ganesha] [--path=PATH] [--port=N]",
		Short: "Print the NFS server and network boot configuration for an image",
		Long: `Export prints what serving ROOT takes: an /etc/exports line (read-only, as
the nodes put an overlay over it; no_root_squash, as root must read
/etc/shadow; no_subtree_check), or with --ganesha an nfs-ganesha EXPORT
block; then the kernel command line from ROOT/boot/nroot-cmdline with the
server and path filled in, an iPXE script, a GRUB menuentry and a pxelinux
entry.

--server is the address nodes reach the server at: an IPv4 or IPv6 address
or a host name, without a port (--port gives one). --path is the absolute
path nodes mount (the ganesha Pseudo path); by default ROOT.`,
		Example: `  nroot export ./node --server=10.0.0.1
  nroot export /srv/node --server=10.0.0.1 --ganesha --path=/node
  nroot export /srv/node --server=nfs.example.org --port=20049 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Server = server
			if err := o.Validate(); err != nil {
				return usageErr("%w", err)
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
	cmd.Flags().StringVar(&server, "server", "", "address nodes reach the NFS server at (IP address or host name; required)")
	cmd.Flags().BoolVar(&o.Ganesha, "ganesha", false, "print an nfs-ganesha EXPORT block instead of an /etc/exports line")
	cmd.Flags().StringVar(&o.Path, "path", "", "path nodes mount (the ganesha Pseudo path); default ROOT")
	cmd.Flags().IntVar(&o.Port, "port", 0, "NFS port, when not 2049")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
