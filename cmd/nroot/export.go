//go:build linux

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"nroot/serve/export"
)

func newExportCmd(g *globals) *cobra.Command {
	var o export.Options
	var server string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "export ROOT --server=ADDR [--ganesha] [--path=PATH] [--port=N] [--image=FILE [--image-path=DIR] [--http=URL]]",
		Short: "Print the NFS server and network boot configuration for an image",
		Long: `Export prints what serving ROOT takes: an /etc/exports line (read-only, as
the nodes put an overlay over it; no_root_squash, as root must read
/etc/shadow; no_subtree_check), or with --ganesha an nfs-ganesha EXPORT
block; then the kernel command line from ROOT/boot/nroot-cmdline with the
server and path filled in, an iPXE script, a GRUB menuentry and a pxelinux
entry.

--server is the address nodes reach the server at: an IPv4 or IPv6 address
or a host name, without a port (--port gives one). --path is the absolute
path nodes mount (the ganesha Pseudo path); by default ROOT.

--image names an image file of ROOT (nroot fsimage ROOT FILE.squashfs) and
adds the image modes' boot lines, with the root=live: line from
ROOT/boot/nroot-cmdline-image: over NFS, dracut mounts the directory
holding the file (--image-path, the path nodes mount; by default the file's
directory, exported by the ganesha block printed with it) and loop-mounts
the file; with --http=URL, dracut fetches the file from URL into RAM. Either
way an overlay on tmpfs makes the root writable.

Given an nroot image directory (nroot image create), export prints the
export of its generations directory alone, at --path/generations (nodes
boot from PATH/generations/N/root): never export the image directory
itself, whose nodes/ holds every node's private host keys.`,
		Example: `  nroot export ./node --server=10.0.0.1
  nroot export /srv/node --server=10.0.0.1 --ganesha --path=/node
  nroot export /srv/node --server=nfs.example.org --port=20049 --json
  nroot export /srv/node --server=10.0.0.1 --image=/srv/img/node.squashfs --http=http://10.0.0.1/node.squashfs`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Server = server
			if err := o.Validate(); err != nil {
				return usageErr("%w", err)
			}
			c, err := export.Render(args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c)
			}
			if c.ImageDir {
				fmt.Printf("# %s is an nroot image: only its generations are exported (nodes/ holds\n# private keys); nroot pxe writes the boot configuration.\n", c.Root)
				if o.Ganesha {
					fmt.Printf("# nfs-ganesha export (add to ganesha.conf):\n%s", c.Ganesha)
				} else {
					fmt.Printf("# /etc/exports:\n%s\n", c.Exports)
				}
				return nil
			}
			if o.Ganesha {
				fmt.Printf("# nfs-ganesha export (add to ganesha.conf):\n%s\n", c.Ganesha)
			} else {
				fmt.Printf("# /etc/exports:\n%s\n\n", c.Exports)
			}
			fmt.Printf("# kernel command line:\n%s\n\n# iPXE:\n%s\n# GRUB:\n%s\n# pxelinux:\n%s", c.Cmdline, c.IPXE, c.GRUB, c.PXELinux)
			if c.Image != nil {
				fmt.Printf("\n# image file %s (%s, %d bytes); nfs-ganesha export of its directory:\n%s\n", o.Image, c.Image.Format, c.Image.Bytes, c.ImageGanesha)
				fmt.Printf("# kernel command line, image over NFS:\n%s\n", c.CmdlineNFSImg)
				if c.CmdlineHTTP != "" {
					fmt.Printf("\n# kernel command line, image over HTTP:\n%s\n", c.CmdlineHTTP)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "address nodes reach the NFS server at (IP address or host name; required)")
	cmd.Flags().BoolVar(&o.Ganesha, "ganesha", false, "print an nfs-ganesha EXPORT block instead of an /etc/exports line")
	cmd.Flags().StringVar(&o.Path, "path", "", "path nodes mount (the ganesha Pseudo path); default ROOT")
	cmd.Flags().IntVar(&o.Port, "port", 0, "NFS port, when not 2049")
	cmd.Flags().StringVar(&o.Image, "image", "", "image file of ROOT (nroot fsimage): print the image modes' boot lines")
	cmd.Flags().StringVar(&o.ImagePath, "image-path", "", "directory nodes mount to reach the image file; default the file's directory")
	cmd.Flags().StringVar(&o.HTTP, "http", "", "URL the image file is served at, for the HTTP boot line")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
