package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"nroot/internal/buildinfo"
)

func version() buildinfo.Info { return buildinfo.Read() }

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print nroot's version, from the module's build information",
		Long: `Version prints the module version nroot was built as, the VCS revision and
time it was built from (with "+dirty" when the work tree had changes), and
the Go version. Lockfiles and --json reports record the same string.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := version()
			if asJSON {
				return printJSON(v)
			}
			fmt.Println("nroot", v.String())
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Println(bi.GoVersion)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
