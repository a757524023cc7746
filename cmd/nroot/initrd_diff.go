package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"nroot/node/initrd"
)

func newInitrdDiffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show what changed between two images",
		Long: `Diff compares every path of two images (type, mode, owner, size, content
hash, symlink target, device numbers), grouped by top directory, and sums up
the kernel modules and dracut modules that changed. Exit status 1 when they
differ, as diff(1).`,
		Example: `  nroot initrd diff /boot/initrd.img-6.1.0-25-amd64 /boot/initrd.img-6.1.0-26-amd64`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := openImage(args[1])
			if err != nil {
				return err
			}
			defer b.Close()
			res, err := initrd.Diff(a, b)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(res); err != nil {
					return err
				}
			} else {
				var tops []string
				for t := range res.ByTopDir {
					tops = append(tops, t)
				}
				sort.Strings(tops)
				for _, t := range tops {
					fmt.Printf("%s/\n", t)
					for _, c := range res.ByTopDir[t] {
						switch c.Kind {
						case "added":
							fmt.Printf("  + %s\n", c.Path)
						case "removed":
							fmt.Printf("  - %s\n", c.Path)
						default:
							fmt.Printf("  ~ %s (%s)\n", c.Path, c.Fields)
						}
					}
				}
				fmt.Printf("%d added, %d removed, %d changed\n", res.Added, res.Removed, res.Changed)
				for _, s := range []struct {
					label string
					v     []string
				}{{"kernels added", res.KernelsAdded}, {"kernels removed", res.KernelsRemoved}, {"kernel modules added", res.KernelModulesAdded}, {"kernel modules removed", res.KernelModulesRemoved}, {"kernel modules changed", res.KernelModulesChanged},
					{"dracut modules added", res.DracutModulesAdded}, {"dracut modules removed", res.DracutModulesRemoved}} {
					if len(s.v) > 0 {
						fmt.Printf("%s: %s\n", s.label, strings.Join(s.v, " "))
					}
				}
			}
			if len(res.Changes) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("images differ")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
