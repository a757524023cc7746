package main

import (
	"fmt"
	"os"

	"nroot/build/hostapt"

	"github.com/spf13/cobra"
)

func newMirrorCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Show the mirror nroot uses when none is given, and where it came from",
		Long: `Mirror prints the archive nroot uses when no MIRROR is given: $NROOT_MIRROR,
else the first non-security entry of the host's APT sources (deb822, then
one-line), with the file it came from; and the security archive, the host's
-security entry when it has one. An Ubuntu suite needs an Ubuntu mirror:
give it as MIRROR, or in $NROOT_MIRROR.`,
		Example: `  nroot mirror
  NROOT_MIRROR=http://MIRROR/debian nroot mirror --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			host, err := hostapt.Sources(hostapt.SourceFiles)
			if err != nil {
				return err
			}
			m, sec, from, err := hostapt.FindMirror("", host)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(map[string]string{"mirror": m, "security": sec, "from": from})
			}
			fmt.Println(m)
			fmt.Fprintf(os.Stderr, "from %s", from)
			if sec != "" {
				fmt.Fprintf(os.Stderr, "; security archive %s", sec)
			}
			fmt.Fprintln(os.Stderr)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
