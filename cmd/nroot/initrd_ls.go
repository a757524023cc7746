package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"nroot/initrd"
	"nroot/report"
)

func newInitrdLsCmd() *cobra.Command {
	var long, segments, asJSON bool
	cmd := &cobra.Command{
		Use:   "ls IMAGE [GLOB...]",
		Short: "List an image's entries, like lsinitrd and cpio -tv",
		Example: `  nroot initrd ls /boot/initrd.img-6.12.48+deb13-amd64
  nroot initrd ls --long IMAGE 'usr/lib/modules/*/kernel/fs/nfs/*'
  nroot initrd ls --segments IMAGE
  nroot initrd ls --json IMAGE`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := initrd.CheckGlobs(args[1:]); err != nil {
				return usageErr("%w", err)
			}
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, _ := f.Stat()
			matched := 0
			out := bufio.NewWriterSize(os.Stdout, 1<<16)
			defer out.Flush()
			globs := args[1:]
			type jsonEntry struct {
				Name     string      `json:"name"`
				Type     string      `json:"type"`
				Mode     report.Mode `json:"mode"`
				UID      int         `json:"uid"`
				GID      int         `json:"gid"`
				NLink    int         `json:"nlink"`
				Size     int64       `json:"size"`
				MTime    int64       `json:"mtime"`
				Linkname string      `json:"linkname,omitempty"`
				Segment  int         `json:"segment"`
			}
			var entries []jsonEntry
			info := &initrd.Info{}
			var lines []string
			segs, err := initrd.Scan(f, func(h *initrd.Header, data io.Reader) error {
				info.Collect(h, data)
				if !initrd.Match(h.Name, globs) {
					return nil
				}
				matched++
				switch {
				case asJSON:
					entries = append(entries, jsonEntry{initrd.CleanName(h.Name), initrd.TypeName(h.Mode), report.Mode(h.Mode & 0o7777), h.UID, h.GID, h.NLink, h.Size, h.ModTime.Unix(), h.Linkname, h.Segment})
				case segments:
				case long:
					lines = append(lines, initrd.FormatLong(h))
				default:
					lines = append(lines, initrd.CleanName(h.Name))
				}
				return nil
			})
			info.Finish(segs)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			// As cpio and 3cpio: patterns that match nothing are an
			// error a script can see.
			noMatch := len(globs) > 0 && matched == 0
			if asJSON {
				if err := printJSON(map[string]any{"image": args[0], "info": info, "entries": entries}); err != nil {
					return err
				}
				if noMatch {
					return fmt.Errorf("%s: %s: %w", args[0], strings.Join(globs, " "), initrd.ErrNoMatch)
				}
				return nil
			}
			if noMatch {
				return fmt.Errorf("%s: %s: %w", args[0], strings.Join(globs, " "), initrd.ErrNoMatch)
			}
			if segments {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "SEGMENT\tOFFSET\tCOMPRESSED\tUNCOMPRESSED\tCOMPRESSION\tENTRIES\t")
				for _, s := range segs {
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%d\t\n", s.Index, s.Offset, s.CompressedSize, s.UncompressedSize, s.Compression, s.Entries)
				}
				return tw.Flush()
			}
			if len(globs) == 0 {
				initrd.WriteHeaderSummary(out, args[0], fi.Size(), info)
			}
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, links, owner, size, mtime and symlink targets")
	cmd.Flags().BoolVar(&segments, "segments", false, "list the segments: offset, sizes, compression, entries")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
