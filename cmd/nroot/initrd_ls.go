package main

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nroot/format/report"
	"nroot/node/initrd"
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
					lines = append(lines, formatLong(h))
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
				writeHeaderSummary(out, args[0], fi.Size(), info)
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

// formatLong renders an entry as cpio -tv and lsinitrd do.
func formatLong(h *initrd.Header) string {
	owner := func(id int) string {
		if id == 0 {
			return "root"
		}
		return fmt.Sprint(id)
	}
	size := fmt.Sprint(h.Size)
	if h.Mode&initrd.TypeMask == initrd.TypeChr || h.Mode&initrd.TypeMask == initrd.TypeBlk {
		size = fmt.Sprintf("%d, %d", h.RDevMajor, h.RDevMinor)
	}
	mt := h.ModTime.UTC()
	stamp := mt.Format("Jan _2 15:04")
	if time.Since(mt) > 180*24*time.Hour || mt.After(time.Now().Add(24*time.Hour)) {
		stamp = mt.Format("Jan _2  2006")
	}
	line := fmt.Sprintf("%s %3d %-8s %-8s %8s %s %s", modeString(h), h.NLink, owner(h.UID), owner(h.GID), size, stamp, initrd.CleanName(h.Name))
	if h.IsSymlink() {
		line += " -> " + h.Linkname
	}
	return line
}

func modeString(h *initrd.Header) string {
	b := []byte("----------")
	switch h.Mode & initrd.TypeMask {
	case initrd.TypeDir:
		b[0] = 'd'
	case initrd.TypeLink:
		b[0] = 'l'
	case initrd.TypeChr:
		b[0] = 'c'
	case initrd.TypeBlk:
		b[0] = 'b'
	case initrd.TypeFifo:
		b[0] = 'p'
	case initrd.TypeSock:
		b[0] = 's'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if h.Mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	if h.Mode&0o4000 != 0 {
		b[3] = map[bool]byte{true: 's', false: 'S'}[b[3] == 'x']
	}
	if h.Mode&0o2000 != 0 {
		b[6] = map[bool]byte{true: 's', false: 'S'}[b[6] == 'x']
	}
	if h.Mode&0o1000 != 0 {
		b[9] = map[bool]byte{true: 't', false: 'T'}[b[9] == 'x']
	}
	return string(b)
}

// writeHeaderSummary prints an image's dracut metadata the way lsinitrd
// heads its listing.
func writeHeaderSummary(w io.Writer, name string, size int64, in *initrd.Info) {
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(w, "Image: %s: %s\n%s\n", name, humanSize(size), rule)
	if in.EarlyCPIO {
		fmt.Fprintf(w, "Early CPIO image\n%s\n", rule)
	}
	if in.DracutVersion != "" {
		fmt.Fprintf(w, "Version: dracut-%s\n\n", in.DracutVersion)
	}
	if in.Generator != "" && in.Generator != initrd.Dracut {
		fmt.Fprintf(w, "Generator: %s\n\n", in.Generator)
	}
	if in.BuildParameters != "" {
		fmt.Fprintf(w, "Arguments: %s\n\n", in.BuildParameters)
	}
	if len(in.DracutModules) > 0 {
		fmt.Fprintf(w, "dracut modules:\n%s\n", strings.Join(in.DracutModules, "\n"))
	}
	if len(in.KernelVersions) > 0 {
		fmt.Fprintf(w, "kernel versions: %s\n", strings.Join(in.KernelVersions, " "))
	}
	// In the order dracut reads them, which is also a stable one.
	for _, f := range slices.Sorted(maps.Keys(in.Cmdline)) {
		fmt.Fprintf(w, "%s: %s\n", f, strings.ReplaceAll(in.Cmdline[f], "\n", " "))
	}
	fmt.Fprintln(w, rule)
}

// humanSize is lsinitrd's size, as its "Image: NAME: 12M" header has it:
// lsinitrd's format, kept for scripts that read it, not nroot's own
// (progress.Bytes).
func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d", n)
}
