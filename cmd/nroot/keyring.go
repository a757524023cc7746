package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"nroot/format/keyring"
	"nroot/internal/atomicfile"
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
	var out string
	export := &cobra.Command{
		Use:   "export NAME [-o FILE]",
		Short: "Write a bundled keyring (debian, ubuntu) as a binary OpenPGP keyring",
		Long: `Export writes the bundled keyring NAME in binary OpenPGP form, as the
distribution's keyring package installs it, to FILE or stdout: what
mmdebstrap --keyring, apt's Signed-By or gpgv --keyring take on a host that
lacks the package (mmdebstrap on Debian stops with NO_PUBKEY for Ubuntu).`,
		Example: `  nroot keyring export ubuntu -o ubuntu-archive-keyring.gpg
  mmdebstrap --keyring=ubuntu-archive-keyring.gpg noble ./noble http://MIRROR/ubuntu`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := keyring.Named(args[0])
			if err != nil {
				return usageErr("%w", err)
			}
			if out == "" {
				_, err := os.Stdout.Write(k.Raw)
				return err
			}
			return atomicfile.WriteFile(out, k.Raw, 0o644)
		},
	}
	export.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	cmd.AddCommand(list, export)
	return cmd
}
