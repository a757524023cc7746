package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"nroot/keyring"
)

func newKeyringCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "Show the archive keyrings nroot trusts",
	}
	var asJSON bool
	var files []string
	list := &cobra.Command{
		Use:   "list",
		Short: "List every key of the bundled keyrings (and of --keyring files)",
		Long: `List prints each key nroot trusts: fingerprint, user ID, algorithm, creation
and expiry, and the keyring it belongs to. The bundled keyrings come from
debian-archive-keyring and ubuntu-keyring; a Release is checked against the
one its signed Origin names. --keyring FILE (armored or binary) lists a
keyring you would pass to resolve or bootstrap instead.`,
		Example: `  nroot keyring list
  nroot keyring list --json
  nroot keyring list --keyring ./vendor-archive.asc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rings := keyring.Bundled()
			for _, f := range files {
				k, err := keyring.Load(f)
				if err != nil {
					return err
				}
				rings = append(rings, k)
			}
			var keys []keyring.Key
			for _, k := range rings {
				keys = append(keys, k.Keys()...)
			}
			if asJSON {
				return printJSON(keys)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEYRING\tFINGERPRINT\tALGO\tCREATED\tEXPIRES\tUSER ID")
			for _, k := range keys {
				exp := "never"
				if k.Expires != nil {
					exp = k.Expires.Format("2006-01-02")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Keyring, k.Fingerprint, k.Algorithm, k.Created.Format("2006-01-02"), exp, k.UserID)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, k := range rings {
				fmt.Fprintf(os.Stderr, "%s: %s\n", k.Name, k.Source)
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list.Flags().StringArrayVar(&files, "keyring", nil, "also list the keys of this keyring file (armored or binary); repeatable")
	cmd.AddCommand(list)
	return cmd
}
