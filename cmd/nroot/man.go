package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"nroot/build/apt"
)

// newManCmd writes the manual pages (make man): one per command, from
// the same help text --help prints.
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write nroot's manual pages to DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "NROOT", Section: "1", Source: "nroot " + version().Version, Manual: "nroot manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			return nil
		},
	}
}

// completeValues offers the values a flag takes in shell completion.
func completeValues(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// registerCompletions gives every flag with a fixed set of values its
// completion, wherever it is defined.
func registerCompletions(root *cobra.Command) {
	values := map[string][]string{
		"variant":       apt.Variants,
		"compress":      {"zstd", "gzip", "xz", "lz4", "none"},
		"architectures": {"amd64", "arm64", "armel", "armhf", "i386", "ppc64el", "riscv64", "s390x", "loong64"},
		"components":    {"main", "contrib", "non-free", "non-free-firmware", "restricted", "universe", "multiverse"},
	}
	for name, vs := range linuxCompletions {
		values[name] = vs
	}
	walkCommands(root, func(c *cobra.Command) {
		for name, vs := range values {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, completeValues(vs...))
			}
		}
	})
}
