package main

import (
	"os"

	"github.com/spf13/cobra"

	"nroot/node/initrd"
)

func newInitrdAppendCmd() *cobra.Command {
	var out, comp string
	var adds []string
	var keepOwner bool
	cmd := &cobra.Command{
		Use:   "append IMAGE --add SRC[:DEST]... -o OUT",
		Short: "Add files to an image as a new segment, without rebuilding it",
		Long: `Append copies IMAGE to OUT and adds one compressed segment with the given
files (directories recursively). The kernel unpacks segments in order, so the
new files are added to, or replace, the image's.`,
		Example: `  nroot initrd append initrd.img --add ./probe.service:/etc/systemd/system/probe.service -o initrd-probe.img`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" || len(adds) == 0 {
				return usageErr("append: --add and -o are required")
			}
			o, err := packOptions(comp, keepOwner)
			if err != nil {
				return err
			}
			in, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			var specs []initrd.AddSpec
			for _, a := range adds {
				specs = append(specs, initrd.ParseAdd(a))
			}
			return writeAtomic(out, func(f *os.File) error { return initrd.Append(f, in, specs, o) })
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image to write")
	cmd.Flags().StringArrayVar(&adds, "add", nil, "SRC[:DEST] to add; repeatable")
	packFlags(cmd, &comp, &keepOwner)
	return cmd
}
