package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"nroot/node/initrd"
)

func newInitrdExtractCmd() *cobra.Command {
	var asJSON, devices, setuid bool
	cmd := &cobra.Command{
		Use:   "extract IMAGE DIR [GLOB...]",
		Short: "Extract an image below DIR, safely",
		Long: `Extract writes every entry (or those matching GLOB) below DIR. Names and
symlinks are resolved inside DIR, so nothing is written outside it; hard
links are recreated; as root, owners are kept.

An image is untrusted input: device nodes are skipped unless --devices is
given (and nroot runs as root), and files lose their setuid and setgid bits
unless --setuid is given. Both are listed.`,
		Example: `  nroot initrd extract IMAGE /tmp/x
  nroot initrd extract IMAGE /tmp/x 'usr/lib/dracut/*'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := initrd.CheckGlobs(args[2:]); err != nil {
				return usageErr("%w", err)
			}
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			root := os.Geteuid() == 0
			if devices && !root {
				return fmt.Errorf("--devices: making device nodes needs root")
			}
			res, err := initrd.Extract(f, args[1], initrd.ExtractOptions{Globs: args[2:], Devices: devices, Setuid: setuid, Chown: root})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(args) > 2 && res.Entries == 0 {
				return fmt.Errorf("%s: %s: %w; nothing extracted", args[0], strings.Join(args[2:], " "), initrd.ErrNoMatch)
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Printf("%d entries extracted to %s\n", res.Entries, args[1])
			for _, n := range res.NotMade {
				fmt.Fprintf(os.Stderr, "initrd extract: %s (%s) not made: %s\n", n.Path, n.Type, n.Reason)
			}
			if len(res.Skipped) > 0 {
				fmt.Printf("device nodes skipped (--devices makes them): %s\n", strings.Join(res.Skipped, " "))
			}
			if len(res.Unset) > 0 {
				fmt.Printf("setuid/setgid bits cleared (--setuid keeps them): %s\n", strings.Join(res.Unset, " "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&devices, "devices", false, "make the image's device nodes (as root); skipped otherwise")
	cmd.Flags().BoolVar(&setuid, "setuid", false, "keep setuid and setgid bits on files; cleared otherwise")
	return cmd
}
