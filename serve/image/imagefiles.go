package image

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"nroot/build/fsimage"
	"nroot/internal/fsroot"
	"nroot/internal/usage"
	"nroot/node"
	"nroot/serve/inventory"
)

// FSImageOptions say which image files of its root (nroot fsimage) a
// generation gets beside it, written before it is sealed.
type FSImageOptions struct {
	Formats []fsimage.Format
	// Group, when set, may read the files (0640): the HTTP server's
	// worker's. Otherwise only root may (0600); NFS reads them as root.
	Group *int
	Log   *slog.Logger
}

// replay is o for a generation made from parent: with no Formats asked
// for (nil), the parent's, as update replays the node stage's choices;
// an empty list makes none.
func (o FSImageOptions) replay(parent *Generation, log *slog.Logger) FSImageOptions {
	if o.Formats == nil {
		o.Formats = parent.Formats()
	}
	if o.Log == nil {
		o.Log = log
	}
	return o
}

// ParseFormats reads --fsimage's list: squashfs, erofs, or none. The
// result is in fsimage.Formats order, each once.
func ParseFormats(list []string) ([]fsimage.Format, error) {
	out := []fsimage.Format{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "none" || s == "" {
			continue
		}
		if !slices.Contains(fsimage.Formats, fsimage.Format(s)) {
			return nil, &usage.Error{Option: "--fsimage", Value: s, Why: "give squashfs, erofs, both (squashfs,erofs) or none"}
		}
		if !slices.Contains(out, fsimage.Format(s)) {
			out = append(out, fsimage.Format(s))
		}
	}
	slices.SortFunc(out, func(a, b fsimage.Format) int {
		return slices.Index(fsimage.Formats, a) - slices.Index(fsimage.Formats, b)
	})
	return out, nil
}

// imageFile is the name of the generation's image file in format f.
func imageFile(f fsimage.Format) string { return "root." + string(f) }

// imageFormat is the format of a generation's image file by its name;
// an error for any other name.
func imageFormat(name string) (fsimage.Format, error) {
	for _, f := range fsimage.Formats {
		if name == imageFile(f) {
			return f, nil
		}
	}
	return "", fmt.Errorf("%q is not a generation's image file", name)
}

// Formats are the formats of the generation's image files.
func (g *Generation) Formats() []fsimage.Format {
	var out []fsimage.Format
	for _, name := range g.Images {
		if f, err := imageFormat(name); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// Modes are the root modes (inventory.RootModes) the generation boots:
// the tree always, and over NFS and HTTP each image file it has.
func (g *Generation) Modes() []string {
	var out []string
	for _, m := range inventory.RootModes {
		if g.Boots(m) {
			out = append(out, m)
		}
	}
	return out
}

// Boots says whether the generation boots root mode m ("" is the tree).
func (g *Generation) Boots(m string) bool {
	if m == "" || m == inventory.RootTree {
		return true
	}
	_, f, ok := strings.Cut(m, "-")
	return ok && g.ImageCmdline != "" && slices.Contains(g.Formats(), fsimage.Format(f)) && slices.Contains(inventory.RootModes, m)
}

// imageCmdline is the boot line the root's node stage left for image
// files, when formats are asked for ("" when none are). An older
// dracut, or a root without that line, is refused: its nodes could not
// boot the files.
func imageCmdline(r *fsroot.Root, formats []fsimage.Format) (string, error) {
	if len(formats) == 0 {
		return "", nil
	}
	names := make([]string, len(formats))
	for i, f := range formats {
		names[i] = string(f)
	}
	flag := strings.Join(names, ",")
	if v := node.DracutVersion(r); v != "" && node.DracutMajor(v) < node.MinImageDracut {
		return "", &usage.Error{Option: "--fsimage", Value: flag, Why: fmt.Sprintf("the root's dracut %s cannot boot from an image file; leave out --fsimage (nodes boot the tree), or use a release with dracut %d or later", v, node.MinImageDracut)}
	}
	b, err := r.ReadFile(node.ImageCmdlineFile, 64<<10)
	if err != nil {
		return "", &usage.Error{Option: "--fsimage", Value: flag, Why: fmt.Sprintf("the root has no %s (%v); run nroot node on it again, which writes it", node.ImageCmdlineFile, err)}
	}
	line := strings.TrimSpace(string(b))
	if strings.Count(line, "IMAGEURL") != 1 || strings.ContainsAny(line, "\n\"'\\;&|<>`$") {
		return "", fmt.Errorf("%s: %q is not a boot line with one IMAGEURL; run nroot node on the root again", node.ImageCmdlineFile, line)
	}
	return line, nil
}

// writeImages writes the root in tmp/root as image files beside it and
// records them in g, with their boot line.
func writeImages(ctx context.Context, r *fsroot.Root, tmp string, g *Generation, o FSImageOptions) error {
	line, err := imageCmdline(r, o.Formats)
	if err != nil || line == "" {
		return err
	}
	g.ImageCmdline = line
	for _, f := range o.Formats {
		if _, err := fsimage.Write(ctx, filepath.Join(tmp, "root"), filepath.Join(tmp, imageFile(f)), fsimage.Options{Format: f, Group: o.Group, Log: o.Log}); err != nil {
			return fmt.Errorf("writing %s: %w", imageFile(f), err)
		}
		g.Images = append(g.Images, imageFile(f))
	}
	return nil
}
