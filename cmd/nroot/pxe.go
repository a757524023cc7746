//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
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
                      names the node and its root mode and chains to the
                      published generation (published.ipxe) or the one it
                      is pinned to
  nodes/NAME.img      each node's identity segment (SSH host keys,
                      machine-id, hostname; made once, kept in --state),
                      loaded after the generation's shared initramfs
  dnsmasq.conf        DHCP reservations from the inventory and chainloading
                      into iPXE (firmware gets undionly.kpxe or ipxe.efi by
                      TFTP, iPXE gets boot.ipxe by HTTP); only listed MACs
  nginx.conf          a server block serving only what booting reads, each
                      segment only to its node's address when it has one,
                      logging to --access-log (nroot status reads it)
  nginx-cache.conf    a caching tier for the generations' kernels,
                      initramfs and image files (--image-http)
  nodes.json          the nodes written, for nroot status

Each node's segment also holds its overlays (overlays= on its line or its
groups'), rendered for it: the built-ins hosts, network and ssh-host-cert,
and the directories of --overlays. See nroot-status(1) and the template
variables below.
` + overlayHelp + `
ROOT MODES: root= on a node's line or its groups' says how it mounts its
root: tree (the default: the generation's root/ over NFS), nfs-squashfs or
nfs-erofs (the generation's image file loop-mounted over NFS), http-squashfs
or http-erofs (the file fetched into RAM over HTTP, from --image-http).
Image modes need a generation made with nroot image create or update
--fsimage; pxe refuses a node whose pinned generation (or the published one)
lacks its mode, and a generation published later without it stops the
node's boot with a message saying so, never booting another mode.

Run it again after changing the inventory or an overlay; publishing a
generation needs no new configuration.`,
		Example: `  # nodes.txt: node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24
  nroot pxe --http http://10.0.0.1 --server 10.0.0.1 --export /nroot /srv/nroot nodes.txt
  # nodes taking their address by DHCP need the range to lend from
  nroot pxe --http http://10.0.0.1 --server 10.0.0.1 --dhcp-range 10.0.0.100,10.0.0.200 /srv/nroot nodes.txt`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := openGenerations(args[0]); err != nil {
				return err
			}
			inv, err := inventory.Load(args[1])
			if err != nil {
				return usageErr("%w", err)
			}
			o.Inventory, o.Groups = args[1], inv.Groups
			if !cmd.Flags().Changed("overlays") {
				// OVERLAYS beside the inventory, when there is one.
				if d := filepath.Join(filepath.Dir(args[1]), "overlays"); isDir(d) {
					o.Overlays = d
				}
			} else if !isDir(o.Overlays) {
				return usageErr("--overlays %s: not a directory; give the directory that holds one directory per overlay", o.Overlays)
			}
			res, err := pxe.Write(args[0], inv.Nodes, identity.Store{Dir: store}, o)
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
				fmt.Printf("%-16s %s %-15s generation %-9s root %-13s %s %s\n", n.Name, n.MAC, n.Address, n.Generation, n.Root, n.Script, n.Segment)
			}
			for _, r := range res.Removed {
				fmt.Printf("removed %s (no longer in the inventory)\n", r)
			}
			fmt.Printf("entry %s\ndnsmasq %s\nnginx %s (access log %s, for nroot status)\nNFS exports (the generations only) %s, nfs-ganesha %s\n", res.Entry, res.DNSMasq, res.Nginx, res.AccessLog, res.Exports, res.Ganesha)
			if res.CertAuthority != "" {
				fmt.Printf("users' known_hosts, to trust every node's host certificate:\n%s\n", res.CertAuthority)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Base, "http", "", "URL nodes reach the HTTP server at, which serves IMAGE at its root: http://ADDRESS[:PORT]")
	cmd.Flags().StringVar(&o.Server, "server", "", "the NFS server's address as nodes reach it")
	cmd.Flags().IntVar(&o.NFSPort, "nfs-port", 0, "the NFS server's port as nodes reach it, when not 2049 (root=nfs4:HOST:PATH:port=N)")
	cmd.Flags().StringVar(&o.ImageBase, "image-http", "", "URL nodes with root=http-* fetch the generations' image files from, a caching tier running nginx-cache.conf: http://ADDRESS[:PORT] (default --http)")
	cmd.Flags().StringVar(&o.Export, "export", "/nroot", "the path nodes find IMAGE at over NFS: they mount EXPORT/generations/N/root, and only IMAGE/generations is exported (IMAGE/exports, IMAGE/ganesha.conf)")
	cmd.Flags().StringVar(&o.DHCPRange, "dhcp-range", "", "dnsmasq's dhcp-range, START,END[,LEASE] (default: the first node's network, static, when every node has an address)")
	cmd.Flags().StringVar(&o.TFTPRoot, "tftp-root", "/usr/lib/ipxe", "the directory with iPXE's undionly.kpxe and ipxe.efi")
	cmd.Flags().StringVar(&o.SegmentGroup, "segment-group", "", "group that may read the identity segments (0640), the HTTP server worker's; default www-data when this host has it; root keeps them root-only")
	cmd.Flags().StringVar(&store, "state", defaultIdentityStore, "the root-only directory that keeps the identities")
	cmd.Flags().StringVar(&o.Overlays, "overlays", "", "the directory of overlays, one directory per overlay (default: overlays/ beside INVENTORY, when it exists)")
	cmd.Flags().BoolVar(&o.SecretsToAnyAddress, "secrets-to-any-address", false, "let a node without address= have an overlay's secret, though nginx then serves its segment to any address")
	cmd.Flags().StringVar(&o.AccessLog, "access-log", pxe.DefaultAccessLog, "the file nginx logs the nodes' requests to (combined format), which nroot status reads")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the nodes' configuration as JSON")
	return cmd
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// overlayHelp describes the inventory's groups and variables and the
// overlays' templates, for pxe's and status's help and man pages.
const overlayHelp = `
INVENTORY: one node, or a hostlist range (node[01-04]), per line with
mac=, address=, hostname=, generation=, root=, args=, groups=a,b,
overlays=a,b and any other key=value as a variable. A line "@NAME key=value ..." defines a
group; a node takes its groups' values in order, its own winning, and
their overlays before its own.

  @compute  overlays=hosts,network,slurm role=compute domain=cluster.example
  node[01-04] mac=52:54:00:00:00:[01-04] groups=compute ens4.address=192.168.50.[11-14]/24

OVERLAYS: DIR/NAME/ is a tree copied onto the node's root (modes kept,
owner root, or as DIR/NAME/.owners says: "PATH UID:GID" lines). A file
ending .tmpl is a Go text/template, written without the suffix; a missing
variable is an error. A file ending .secret is written without the suffix,
mode 0600, only into the segments of nodes with that overlay; a node with a
secret needs address= (or --secrets-to-any-address). Symlinks and devices
in the tree, and two overlays giving one file, are refused.

TEMPLATE VARIABLES:
  .Node        the node: .Name .Hostname .MAC .Address (dhcp or A/LEN)
               .IP (A, "" with dhcp) .Generation .Groups .Overlays .Vars
  .Vars        the node's variables: {{.Vars.role}}; with a dot in the
               name, {{var .Node "ens4.address"}}
  .Nodes       every node, in inventory order, as .Node
  .Groups      every group by name: .Name .Vars .Overlays .Nodes (names)
  functions    join, split, var

BUILT-IN OVERLAYS:
  hosts          /etc/hosts: every node with address= or a static
                 interface address, as HOSTNAME.DOMAIN HOSTNAME with a
                 domain= variable
  network        IFACE.address=A/LEN[,A/LEN] IFACE.mtu=N
                 IFACE.route="DEST via GW[,DEST via GW]" for interfaces
                 other than the boot one, written for systemd-networkd,
                 ifupdown or (nroot node masks networkd) a oneshot unit
                 running ip, as the image has it (variable network= to
                 choose); the initramfs drops the boot interface's file
  ssh-host-cert  each host key's certificate from the cluster CA in
                 --state (principals HOSTNAME and HOSTNAME.DOMAIN), sshd's
                 HostCertificate lines and ssh_known_hosts; pxe prints the
                 @cert-authority line for users' known_hosts
`
