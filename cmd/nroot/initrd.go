package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newInitrdCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "initrd",
		Short: "Inspect, verify, diff and assemble initramfs images",
		Long: `The initrd commands read every segment of an initramfs, uncompressed or
compressed (gzip, xz, zstd, lz4, bzip2, lzma), to the end of the file, where
lsinitrd reads two and stops.`,
	}
	cmd.AddCommand(newInitrdLsCmd(), newInitrdCatCmd(), newInitrdExtractCmd(), newInitrdDiffCmd(), newInitrdVerifyCmd(), newInitrdPackCmd(), newInitrdAppendCmd())
	return cmd
}

func openImage(p string) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	return f, nil
}
