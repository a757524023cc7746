package main

import (
	"os"

	"github.com/spf13/cobra"

	"nroot/node/initrd"
)

func newInitrdCatCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat IMAGE PATH",
		Short: "Print one file of an image",
		Long: `Cat prints the content of PATH as the kernel would leave it after unpacking
every segment: the last entry of that name wins, and a hard link gets the
data stored with another name of its inode. A symlink, a directory or a
missing name is an error (exit 1).`,
		Example: `  nroot initrd cat IMAGE usr/lib/dracut/modules.txt`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return initrd.Cat(f, args[1], os.Stdout)
		},
	}
}
