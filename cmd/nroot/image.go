//go:build linux

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"nroot/build/apt"
	"nroot/internal/fetch"
	"nroot/internal/progress"
	"nroot/node"
	"nroot/serve/image"
	"nroot/serve/inventory"
	"nroot/serve/pxe"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Keep a node image as immutable generations: create, update, list, diff, publish, rollback, remove",
		Long: `An image is a directory of generations, each a node root filesystem with
its kernel, initramfs, installed-package list and iPXE script, never
changed once made. One pointer, IMAGE/published.ipxe, names the
generation nodes boot; publish and rollback swap it atomically, so a
node that boots reads either the old generation or the new, and a running
node keeps the root it mounted. Copies of a generation share extents with
it where the filesystem has reflinks (btrfs, XFS) and are full copies
otherwise, never hard links.

Serve IMAGE over NFS (its generations' roots) and HTTP (kernels,
initramfs and scripts; nroot pxe writes the nginx block), then point
nodes at it with nroot pxe.`,
	}
	cmd.AddCommand(newImageCreateCmd(g), newImageUpdateCmd(g), newImageListCmd(), newImageDiffCmd(), newImagePublishCmd(), newImageRollbackCmd(), newImageRemoveCmd())
	return cmd
}

// genArg reads a generation number argument.
func genArg(s, name string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id <= 0 {
		return 0, usageErr("%s %q: give a generation number (nroot image list)", name, s)
	}
	return id, nil
}

// openImage opens IMAGE, a usage error when it is none.
func openGenerations(dir string) (image.Image, error) {
	im, err := image.Open(dir)
	if errors.Is(err, image.ErrNoImage) {
		return im, usageErr("%w", err)
	}
	return im, err
}

// printGeneration prints what a command made.
func printGeneration(gen *image.Generation, asJSON bool) error {
	if asJSON {
		return printJSON(gen)
	}
	fmt.Printf("generation %d: %s; kernel %s, %d packages; %.1fs, %s of files, %s on disk (%s shared); root modes %s\n",
		gen.ID, gen.Source, gen.Kernel, len(gen.Packages), gen.Seconds, progress.Bytes(gen.Bytes), progress.Bytes(gen.DiskBytes), progress.Bytes(gen.Shared), strings.Join(gen.Modes(), " "))
	return nil
}

// fsimageFlags are --fsimage and --fsimage-group of image create and
// update.
type fsimageFlags struct {
	formats []string
	group   string
}

func (f *fsimageFlags) add(cmd *cobra.Command, def string) {
	cmd.Flags().StringSliceVar(&f.formats, "fsimage", nil, "write the generation's root as image files too, for nodes with root=nfs-FORMAT or http-FORMAT: squashfs, erofs, both (squashfs,erofs) or none; default "+def)
	cmd.Flags().StringVar(&f.group, "fsimage-group", "", "group that may read the image files (0640), the HTTP server worker's; default www-data when this host has it; root keeps them root-only")
}

// options reads the flags; Formats stays nil when --fsimage is not given.
func (f *fsimageFlags) options(cmd *cobra.Command, log *slog.Logger) (image.FSImageOptions, error) {
	o := image.FSImageOptions{Log: log}
	if cmd.Flags().Changed("fsimage") {
		var err error
		if o.Formats, err = image.ParseFormats(f.formats); err != nil {
			return o, err
		}
	}
	switch f.group {
	case "root", "0":
	case "":
		if gid, err := lookupGroupID(pxe.DefaultSegmentGroup); err == nil {
			o.Group = &gid
		}
	default:
		gid, err := lookupGroupID(f.group)
		if err != nil {
			return o, usageErr("--fsimage-group %q: %v; give a group of this host (getent group), or root", f.group, err)
		}
		o.Group = &gid
	}
	return o, nil
}

func newImageCreateCmd(g *globals) *cobra.Command {
	var asJSON, move bool
	var fs fsimageFlags
	cmd := &cobra.Command{
		Use:   "create [flags] IMAGE ROOT",
		Short: "Make a new generation of IMAGE from a node root (nroot bootstrap, then nroot node)",
		Long: `Make a new generation of IMAGE from a node root that nroot node built.
The generation holds the root, its kernel and initramfs, and boot.ipxe,
which boots the root as an NFS tree. With --fsimage it also holds the root
as image files, generations/N/root.squashfs and/or root.erofs (as nroot
fsimage writes them), and boot.ipxe boots those too: a node with root=
nfs-squashfs in the inventory loop-mounts the file over NFS, one with
http-squashfs fetches it over HTTP (nroot pxe). The files are written
before the generation is sealed: it appears whole or not at all.`,
		Example: `  nroot bootstrap bookworm /srv/work/root && nroot node /srv/work/root
  nroot image create --move /srv/nroot /srv/work/root
  nroot image create --fsimage squashfs /srv/nroot /srv/work/root`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			fo, err := fs.options(cmd, g.logger())
			if err != nil {
				return err
			}
			gen, err := image.Image{Dir: args[0]}.Import(cmd.Context(), args[1], image.ImportOptions{Move: move, FSImage: fo})
			if err != nil {
				return err
			}
			return printGeneration(gen, asJSON)
		},
	}
	cmd.Flags().BoolVar(&move, "move", false, "rename ROOT into the image instead of copying it (same filesystem; ROOT is gone after)")
	fs.add(cmd, "none")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the generation as JSON")
	return cmd
}

func newImageUpdateCmd(g *globals) *cobra.Command {
	var asJSON, upgrade bool
	var from string
	var install []string
	var nodeOpts node.Options
	var fs fsimageFlags
	cmd := &cobra.Command{
		Use:   "update [flags] IMAGE",
		Short: "Make a new generation from the published one (or --from): apt-get upgrade or added packages, then the node stage and its checks",
		Long: `Make a new generation from the published one (or --from): a copy of its
root, apt-get upgrade or added packages, then the node stage again, which
rebuilds and verifies the initramfs for the newest kernel. The node
stage's choices are the ones recorded when the parent was made (nroot
node's --kernel, --kver, --hostname, --packages); a flag given here wins.
So are the parent's image files (--fsimage): the new generation gets the
same formats, written from its own root, unless --fsimage says otherwise
(--fsimage none makes none). The parent is held while it is copied: image
remove refuses it until the copy ends. Ctrl-C stops the update and leaves
no generation.`,
		Example: `  nroot image update --upgrade /srv/nroot
  nroot image update --install htop,numactl /srv/nroot
  nroot image update --fsimage squashfs,erofs /srv/nroot`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			fo, err := fs.options(cmd, g.logger())
			if err != nil {
				return err
			}
			o := image.UpdateOptions{Install: install, Upgrade: upgrade, Node: nodeOpts, FSImage: fo}
			if from != "" {
				if o.Parent, err = genArg(from, "--from"); err != nil {
					return err
				}
			}
			dir := g.cacheDir
			if dir == "" {
				dir = fetch.DefaultCacheDir()
			}
			o.Node.CacheDir = filepath.Join(dir, "apt-archives")
			o.Apt = apt.Options{Fetcher: fetch.NewFetcher(dir), Log: g.logger()}
			o.Node.Log = g.logger()
			gen, err := im.Update(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printGeneration(gen, asJSON)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the generation to start from (default: the published one, else the newest)")
	cmd.Flags().StringSliceVar(&install, "install", nil, "packages to add, comma-separated")
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "apt-get upgrade")
	fs.add(cmd, "the parent's")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the generation as JSON")
	// The node stage runs again with what the parent's recorded; these
	// override it.
	cmd.Flags().StringVar(&nodeOpts.Kernel, "kernel", "", "kernel package (default: the parent's nroot node --kernel)")
	cmd.Flags().StringVar(&nodeOpts.Kver, "kver", "", "build the initramfs for this installed kernel only (default: the parent's --kver)")
	cmd.Flags().StringVar(&nodeOpts.Hostname, "hostname", "", "write /etc/hostname (default: the parent's --hostname)")
	cmd.Flags().BoolVar(&nodeOpts.E2EProbe, "e2e-probe", false, "install the end-to-end probe unit")
	cmd.Flags().MarkHidden("e2e-probe")
	return cmd
}

func newImageListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [flags] IMAGE",
		Short: "List IMAGE's generations",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			gens, err := im.List()
			if err != nil {
				return err
			}
			if gens == nil {
				gens = []*image.Generation{}
			}
			if asJSON {
				return printJSON(struct {
					Image       string              `json:"image"`
					Generations []*image.Generation `json:"generations"`
				}{im.Dir, gens})
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "GEN\tPUBLISHED\tCREATED\tKERNEL\tPACKAGES\tDISK\tIMAGES\tSOURCE")
			for _, g := range gens {
				pub := ""
				if g.Published {
					pub = "*"
				}
				src := g.Source
				if g.Problem != "" {
					src = "BROKEN: " + g.Problem + "; " + src
				}
				images := strings.Join(g.Images, ",")
				if images == "" {
					images = "-"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", g.ID, pub, time.Unix(g.Created, 0).Format("2006-01-02 15:04"), g.Kernel, len(g.Packages), progress.Bytes(g.DiskBytes), images, src)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the generations as JSON")
	return cmd
}

func newImageDiffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff [flags] IMAGE A B",
		Short: "Show what changed from generation A to B: packages added, removed and changed, then files by path (exit 1 when they differ)",
		Args:  usageArgs(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			a, err := genArg(args[1], "A")
			if err != nil {
				return err
			}
			b, err := genArg(args[2], "B")
			if err != nil {
				return err
			}
			d, err := im.Diff(a, b)
			if err != nil {
				return err
			}
			differ := error(nil)
			if !d.Empty() {
				differ = &exitError{code: 1, err: fmt.Errorf("generations %d and %d differ", a, b)}
			}
			if asJSON {
				if err := printJSON(d); err != nil {
					return err
				}
				return differ
			}
			for _, p := range d.Added {
				fmt.Printf("+ %s %s %s\n", p.Name, p.Version, p.Architecture)
			}
			for _, p := range d.Removed {
				fmt.Printf("- %s %s %s\n", p.Name, p.Version, p.Architecture)
			}
			for _, p := range d.Upgraded {
				fmt.Printf("~ %s %s -> %s %s\n", p.Name, p.Old, p.New, p.Architecture)
			}
			for _, f := range d.Files {
				sign := map[string]string{"added": "+", "removed": "-", "changed": "~"}[f.Kind]
				fields := ""
				if f.Fields != "" {
					fields = " (" + f.Fields + ")"
				}
				fmt.Printf("%s %s%s\n", sign, f.Path, fields)
			}
			fmt.Fprintf(os.Stderr, "%d packages added, %d removed, %d changed; %d paths differ\n", len(d.Added), len(d.Removed), len(d.Upgraded), len(d.Files))
			return differ
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the differences as JSON")
	return cmd
}

// printAction says what publish, rollback or remove did.
func printAction(im image.Image, action string, id int, asJSON bool) error {
	if asJSON {
		return printJSON(struct {
			Image      string `json:"image"`
			Action     string `json:"action"`
			Generation int    `json:"generation"`
		}{im.Dir, action, id})
	}
	fmt.Printf("%s generation %d\n", map[string]string{"publish": "published", "rollback": "published", "remove": "removed"}[action], id)
	return nil
}

func newImagePublishCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "publish [flags] IMAGE GEN",
		Short: "Point IMAGE's boot configuration at generation GEN, atomically",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			id, err := genArg(args[1], "GEN")
			if err != nil {
				return err
			}
			if err := im.Publish(id); err != nil {
				return err
			}
			return printAction(im, "publish", id, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was done as JSON")
	return cmd
}

func newImageRollbackCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback [flags] IMAGE",
		Short: "Publish again the generation published before the current one; again, to step further back",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			id, err := im.Rollback()
			if err != nil {
				return err
			}
			return printAction(im, "rollback", id, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was done as JSON")
	return cmd
}

func newImageRemoveCmd() *cobra.Command {
	var inv string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "remove [flags] IMAGE GEN",
		Short: "Delete generation GEN, refusing the published one and any the inventory pins",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := openGenerations(args[0])
			if err != nil {
				return err
			}
			id, err := genArg(args[1], "GEN")
			if err != nil {
				return err
			}
			var pinned []int
			if inv != "" {
				nodes, err := inventory.ReadFile(inv)
				if err != nil {
					return usageErr("%w", err)
				}
				for _, n := range nodes {
					if p, err := strconv.Atoi(n.Gen); err == nil {
						pinned = append(pinned, p)
					}
				}
			}
			if err := im.Remove(id, pinned); err != nil {
				return err
			}
			return printAction(im, "remove", id, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was done as JSON")
	cmd.Flags().StringVar(&inv, "inventory", "", "refuse generations that nodes of this inventory are pinned to (generation=)")
	return cmd
}
