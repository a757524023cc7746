//go:build linux

package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"nroot/serve/status"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON, check bool
	var o status.Options
	cmd := &cobra.Command{
		Use:   "status [flags] IMAGE",
		Short: "Show which generation each node last booted, and when; the stale and the never seen",
		Long: `Status reads the access log of the nginx block nroot pxe wrote for IMAGE
(its --access-log, recorded in IMAGE/nodes.json with the nodes) and tells,
for each node nroot pxe wrote, the generation it last booted, when and from
which address, and its state:
  current      it booted the generation it boots now (the published one,
               or the one it is pinned to)
  stale        it booted another one: reboot it to run the published one
  never-seen   the log holds no boot of it

The log is in nginx's predefined combined format:
  $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
A boot is the node's segment (GET /nodes/NAME.img, answered 200) after a
generation's kernel or initramfs (GET /generations/N/vmlinuz) from the same
address, which is the order iPXE fetches them in. Nodes that boot at once
from behind one address (NAT) cannot be told apart; a rotated log forgets
the boots it held (--log names another file).

With --check, status exits 1 when a node is stale or never seen.`,
		Example: `  nroot status /srv/nroot
  nroot status --json /srv/nroot | jq '.nodes[] | select(.state == "stale") | .name'`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := status.Read(args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(rep); err != nil {
					return err
				}
			} else {
				fmt.Printf("published generation %d (%s)\n", rep.PublishedGeneration, rep.AccessLog)
				fmt.Printf("%-16s %-11s %-8s %-8s %-20s %s\n", "NODE", "STATE", "BOOTED", "EXPECTED", "AT", "FROM")
				for _, n := range rep.Nodes {
					booted, at := "-", "-"
					if n.BootedAt != nil {
						booted, at = fmt.Sprint(n.BootedGeneration), n.BootedAt.Local().Format(time.DateTime)
					}
					exp := fmt.Sprint(n.ExpectedGeneration)
					if n.Pinned {
						exp += " (pin)"
					}
					fmt.Printf("%-16s %-11s %-8s %-8s %-20s %s\n", n.Name, n.State, booted, exp, at, n.BootedFrom)
				}
				fmt.Printf("%d current, %d stale, %d never seen\n", rep.Current, rep.Stale, rep.NeverSeen)
			}
			if check && rep.Stale+rep.NeverSeen > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d nodes stale, %d never seen", rep.Stale, rep.NeverSeen)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Log, "log", "", "the nginx access log to read (default: the --access-log nroot pxe wrote into its nginx block)")
	cmd.Flags().BoolVar(&check, "check", false, "exit 1 when a node is stale or never seen")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (published_generation, nodes[].booted_generation, booted_at, booted_from, state)")
	return cmd
}
