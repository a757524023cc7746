//go:build linux

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"nroot/serve/identity"
	"nroot/serve/inventory"
)

// defaultIdentityStore is where nodes' identities are kept on the server.
const defaultIdentityStore = "/var/lib/nroot/identity"

func newIdentityCmd(g *globals) *cobra.Command {
	var asJSON bool
	var store string
	cmd := &cobra.Command{
		Use:   "identity [flags] INVENTORY DIR",
		Short: "Give each node of an inventory its own SSH host keys, machine-id and hostname, as an initramfs segment",
		Long: `Identity reads INVENTORY (one node, or a hostlist range like node[001-128],
per line, with mac=, address=, hostname=, generation= and args=) and, for
every node, makes once and keeps in --state (root-only) its SSH host keys
(ecdsa, ed25519, rsa, as ssh-keygen -A), a stable machine-id and its
hostname. It writes each node's identity to DIR/NAME.img, a small
uncompressed initramfs segment (mode 0600: it holds the private keys).

The boot loader loads the segment after the image's shared initramfs
(iPXE: a second initrd line; GRUB and pxelinux take several initrds); the
dracut module nroot node installs copies its files into the node's
writable overlay before switch-root. The shared image and its initramfs
stay the same for every node, and a node keeps its host keys and
machine-id across reboots and image updates.

It also makes once, and keeps root-only (0600) in --state, the cluster's
SSH certificate authority (ssh_ca_key), which signs the nodes' host keys
for the ssh-host-cert overlay (nroot pxe), and prints the one
"@cert-authority *.DOMAIN,HOST1,HOST2,... KEY" line (each domain= of
the nodes with the ssh-host-cert overlay, then their host names; the
line nroot pxe prints) that makes users trust their host certificates. Overlays are rendered into the segments nroot pxe writes.`,
		Example: `  nroot identity nodes.txt /srv/nroot/identity
  nroot identity --state /srv/nroot/state --json nodes.txt /srv/nroot/identity`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			nodes, err := inventory.ReadFile(args[0])
			if err != nil {
				return usageErr("%w", err)
			}
			st := identity.Store{Dir: store}
			segs, err := st.WriteSegments(nodes, args[1])
			if err != nil {
				return err
			}
			ca, err := st.EnsureCA()
			if err != nil {
				return err
			}
			known := ca.KnownHosts(nodes)
			if asJSON {
				if segs == nil {
					segs = []identity.Segment{}
				}
				return printJSON(struct {
					Nodes         []identity.Segment `json:"nodes"`
					CertAuthority string             `json:"cert_authority"`
				}{segs, known})
			}
			if known != "" {
				defer fmt.Printf("cluster CA (%s/ssh_ca_key, root-only); for users' known_hosts:\n%s\n", store, known)
			} else {
				defer fmt.Printf("cluster CA (%s/ssh_ca_key, root-only); no node has the ssh-host-cert overlay, so no known_hosts line\n", store)
			}
			for _, s := range segs {
				state := "kept"
				if s.Created {
					state = "new"
				}
				fp := ""
				for _, k := range s.Keys {
					if k.Type == "ed25519" {
						fp = k.Fingerprint
					}
				}
				fmt.Printf("%-16s %s %s ed25519 %s %s\n", s.Name, s.MAC, state, fp, s.Segment)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each node's identity (machine-id, host key fingerprints, segment) as JSON")
	cmd.Flags().StringVar(&store, "state", defaultIdentityStore, "the root-only directory that keeps the identities")
	return cmd
}
