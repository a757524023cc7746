//go:build linux

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"nroot/serve/identity"
	"nroot/serve/inventory"
	"nroot/serve/pxe"
)

func newPXECmd(g *globals) *cobra.Command {
	var asJSON bool
	var o pxe.Options
	var store string
	cmd := &cobra.Command{
		Use:   "pxe [flags] IMAGE INVENTORY",
		Short: "Write the network boot configuration of an inventory's nodes: iPXE scripts, identity segments, dnsmasq and nginx configuration",
		Long: `Pxe writes, into the image directory IMAGE:
  boot.ipxe           the entry script DHCP gives iPXE; it chains to
  nodes/MAC.ipxe      each node's script (MAC as 52-54-00-00-00-01), which
                      names the node and chains to the published generation
                      (published.ipxe) or the one it is pinned to
  nodes/NAME.img      each node's identity segment (SSH host keys,
                      machine-id, hostname; made once, kept in --state),
                      loaded after the generation's shared initramfs
  dnsmasq.conf        DHCP reservations from the inventory and chainloading
                      into iPXE (firmware gets undionly.kpxe or ipxe.efi by
                      TFTP, iPXE gets boot.ipxe by HTTP); only listed MACs
  nginx.conf          a server block serving only what booting reads, each
                      segment only to its node's address when it has one

Run it again after changing the inventory; publishing a generation needs
no new configuration.`,
		Example: `  # nodes.txt: node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24
  nroot pxe --http http://10.0.0.1 --server 10.0.0.1 --export /nroot /srv/nroot nodes.txt
  # nodes taking their address by DHCP need the range to lend from
  nroot pxe --http http://10.0.0.1 --server 10.0.0.1 --dhcp-range 10.0.0.100,10.0.0.200 /srv/nroot nodes.txt`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := openGenerations(args[0]); err != nil {
				return err
			}
			nodes, err := inventory.ReadFile(args[1])
			if err != nil {
				return usageErr("%w", err)
			}
			o.Inventory = args[1]
			res, err := pxe.Write(args[0], nodes, identity.Store{Dir: store}, o)
			if err != nil {
				return err
			}
			log := g.logger().With("stage", "pxe")
			if len(res.MissingFirmware) > 0 {
				log.Warn(fmt.Sprintf("%s has no %s, which dnsmasq.conf offers firmware by TFTP: install Debian's ipxe package (apt-get install ipxe) or give --tftp-root DIR", o.TFTPRoot, strings.Join(res.MissingFirmware, " or ")))
			}
			if res.SegmentGroup == "" && o.SegmentGroup != "root" {
				log.Warn(fmt.Sprintf("the identity segments are root-only (0600): no group %s here; give --segment-group GROUP of the HTTP server's worker", pxe.DefaultSegmentGroup))
			}
			if asJSON {
				return printJSON(res)
			}
			for _, n := range res.Nodes {
				fmt.Printf("%-16s %s %-15s generation %-9s %s %s\n", n.Name, n.MAC, n.Address, n.Generation, n.Script, n.Segment)
			}
			for _, r := range res.Removed {
				fmt.Printf("removed %s (no longer in the inventory)\n", r)
			}
			fmt.Printf("entry %s\ndnsmasq %s\nnginx %s\nNFS exports (the generations only) %s, nfs-ganesha %s\n", res.Entry, res.DNSMasq, res.Nginx, res.Exports, res.Ganesha)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Base, "http", "", "URL nodes reach the HTTP server at, which serves IMAGE at its root: http://ADDRESS[:PORT]")
	cmd.Flags().StringVar(&o.Server, "server", "", "the NFS server's address as nodes reach it")
	cmd.Flags().StringVar(&o.Export, "export", "/nroot", "the path nodes find IMAGE at over NFS: they mount EXPORT/generations/N/root, and only IMAGE/generations is exported (IMAGE/exports, IMAGE/ganesha.conf)")
	cmd.Flags().StringVar(&o.DHCPRange, "dhcp-range", "", "dnsmasq's dhcp-range, START,END[,LEASE] (default: the first node's network, static, when every node has an address)")
	cmd.Flags().StringVar(&o.TFTPRoot, "tftp-root", "/usr/lib/ipxe", "the directory with iPXE's undionly.kpxe and ipxe.efi")
	cmd.Flags().StringVar(&o.SegmentGroup, "segment-group", "", "group that may read the identity segments (0640), the HTTP server worker's; default www-data when this host has it; root keeps them root-only")
	cmd.Flags().StringVar(&store, "state", defaultIdentityStore, "the root-only directory that keeps the identities")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the nodes' configuration as JSON")
	return cmd
}
