package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nroot/build/apt"
	"nroot/build/fsimage"
	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
	"nroot/node"
	"nroot/serve/inventory"
)

// ImportOptions control Import.
type ImportOptions struct {
	// Move renames ROOT into the generation instead of copying it (the
	// same filesystem only); ROOT is gone afterwards.
	Move bool
	// FSImage are the image files of the root the generation gets.
	FSImage FSImageOptions
}

// UpdateOptions control Update.
type UpdateOptions struct {
	// Parent is the generation to start from: the published one when 0,
	// or the newest when none is.
	Parent  int
	Install []string // packages to add
	Upgrade bool     // apt-get upgrade
	// Node is passed to the node stage, which runs again on the copy
	// (its Packages and Upgrade are set from the fields above); its Log
	// gets Update's own lines too.
	Node node.Options
	// Apt fetches and verifies the parent's APT sources, to ask whether
	// Install names packages they have before anything is copied.
	Apt apt.Options
	// FSImage are the image files of the root the generation gets;
	// Formats nil replays the parent's (an empty list makes none).
	FSImage FSImageOptions
}

// maxBootFile bounds the kernel and initramfs copied out of a root.
const maxBootFile = 2 << 30

// ErrRootInImage: a root to import lies inside the image (or holds it).
var ErrRootInImage = errors.New("the root and the image overlap")

// Import makes a new generation from a node root (made by nroot
// bootstrap and nroot node), copying it (reflinks where the filesystem
// has them) unless Move. With Move, a failure (or a cancelled ctx) puts
// the root back where it was.
func (im Image) Import(ctx context.Context, root string, o ImportOptions) (*Generation, error) {
	start := time.Now()
	if err := im.checkSource(root, o.Move); err != nil {
		return nil, err
	}
	src, err := fsroot.Open(root)
	if err != nil {
		return nil, fmt.Errorf("image create: %w", err)
	}
	defer src.Close()
	if !src.IsRegular("boot/nroot-cmdline") {
		return nil, fmt.Errorf("image create: %s has no boot/nroot-cmdline; run nroot node %s first", root, root)
	}
	// Asked before the copy: a root that cannot boot image files must
	// not cost one.
	if _, err := imageCmdline(src, o.FSImage.Formats); err != nil {
		return nil, fmt.Errorf("image create: %s: %w", root, err)
	}
	id, tmp, err := im.reserve()
	if err != nil {
		return nil, err
	}
	g := &Generation{ID: id, Source: "import " + root}
	var shared int64
	restore := ""
	if o.Move {
		if err := os.Rename(root, filepath.Join(tmp, "root")); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("image create --move: %w", err)
		}
		restore = root
	} else {
		st, err := src.CopyTree(ctx, filepath.Join(tmp, "root"))
		if err != nil {
			return nil, im.abort(ctx, tmp, "", fmt.Errorf("image create: copying %s: %w", root, err))
		}
		shared = st.Reflinked
	}
	if err := im.seal(ctx, tmp, g, start, shared, o.FSImage); errors.Is(err, ErrNotSynced) {
		return nil, fmt.Errorf("image create: %s: %w", root, err)
	} else if err != nil {
		return nil, im.abort(ctx, tmp, restore, fmt.Errorf("image create: %s: generation %d not made: %w", root, id, err))
	}
	return g, nil
}

// checkSource refuses a root that is not a directory of its own (with
// move, a symlink would make the generation a link to a tree that stays
// writable outside the image), and one that overlaps the image: a
// generation's own root moved into a new one would empty it.
func (im Image) checkSource(root string, move bool) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("image create: %w", err)
	}
	if move && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("image create --move: %s is a symlink; give the directory it points at, or leave out --move to copy it", root)
	}
	rootReal, err := realPath(root)
	if err != nil {
		return fmt.Errorf("image create: %w", err)
	}
	imReal, err := realPath(im.Dir)
	if err != nil {
		return fmt.Errorf("image create: %w", err)
	}
	if within(rootReal, imReal) || within(imReal, rootReal) {
		return fmt.Errorf("image create: %s and image %s: %w; give a root outside the image (a published generation is changed with nroot image update)", root, im.Dir, ErrRootInImage)
	}
	return nil
}

// realPath is p absolute with every symlink resolved; of a path that does
// not exist yet, its nearest existing parent is resolved.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(abs)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || abs == filepath.Dir(abs) {
			return "", err
		}
		rest = filepath.Join(filepath.Base(abs), rest)
		abs = filepath.Dir(abs)
	}
}

// within says whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// abort undoes a generation that was not made: a moved root goes back
// where it was, then the temporary directory goes. A cancelled ctx is
// said as such, whatever step it broke.
func (im Image) abort(ctx context.Context, tmp, restore string, err error) error {
	if ctx.Err() != nil {
		err = fmt.Errorf("image: interrupted, no generation made: %w", ctx.Err())
	}
	if restore != "" {
		if rerr := os.Rename(filepath.Join(tmp, "root"), restore); rerr != nil {
			return fmt.Errorf("%w; moving the root back failed (%v): it is at %s", err, rerr, filepath.Join(tmp, "root"))
		}
		err = fmt.Errorf("%w; %s is back where it was", err, restore)
	}
	os.RemoveAll(tmp)
	return err
}

// Update makes a new generation from an existing one: a copy of its
// root (reflinks where the filesystem has them, never hard links), apt
// in the image to add packages or upgrade, then the node stage again,
// which rebuilds and verifies the initramfs, with the choices the
// parent's node stage recorded (o.Node's own win). The parent is held
// while it is copied: image remove refuses it until then.
func (im Image) Update(ctx context.Context, o UpdateOptions) (*Generation, error) {
	start := time.Now()
	parent := o.Parent
	if parent == 0 {
		var err error
		if parent, err = im.Published(); err != nil {
			return nil, err
		}
	}
	if parent == 0 {
		ids, err := im.IDs()
		if err != nil || len(ids) == 0 {
			return nil, fmt.Errorf("image update: %s has no generation to start from; nroot image create first", im.Dir)
		}
		parent = ids[len(ids)-1]
	}
	release, err := im.hold(parent)
	if err != nil {
		return nil, err
	}
	defer release()
	pg, err := im.Get(parent)
	if err != nil {
		return nil, err
	}
	src, err := fsroot.Open(im.Root(parent))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if len(o.Install) > 0 {
		// Asked first, as nroot node asks apt: a misspelt name must not
		// cost a copy of the whole root.
		missing, sources, ok := unavailable(ctx, src, o.Install, nativeArch(pg), o.Apt)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("image update: interrupted, no generation made: %w", ctx.Err())
		}
		if ok && len(missing) > 0 {
			return nil, &UnavailableError{Generation: parent, Packages: missing, Sources: sources}
		}
	}
	id, tmp, err := im.reserve()
	if err != nil {
		return nil, err
	}
	st, err := src.CopyTree(ctx, filepath.Join(tmp, "root"))
	if err != nil {
		return nil, im.abort(ctx, tmp, "", fmt.Errorf("image update: copying generation %d: %w", parent, err))
	}
	release()
	if l := o.Node.Log; l != nil {
		l.Info(fmt.Sprintf("generation %d copied from %d in %.1fs (%d bytes, %d shared)", id, parent, time.Since(start).Seconds(), st.Bytes, st.Reflinked), "stage", "image")
	}
	no := o.Node
	no.Packages = append(append([]string(nil), no.Packages...), o.Install...)
	no.Upgrade = o.Upgrade
	if pg.Node != nil {
		no = pg.Node.Apply(no)
	}
	if _, err := node.Build(ctx, filepath.Join(tmp, "root"), no); err != nil {
		return nil, im.abort(ctx, tmp, "", fmt.Errorf("image update: generation %d: %w", id, err))
	}
	var what []string
	if len(o.Install) > 0 {
		what = append(what, "install "+strings.Join(o.Install, " "))
	}
	if o.Upgrade {
		what = append(what, "upgrade")
	}
	if len(what) == 0 {
		what = append(what, "node stage again")
	}
	g := &Generation{ID: id, Parent: pg.ID, Source: fmt.Sprintf("update of %d: %s", pg.ID, strings.Join(what, ", "))}
	if err := im.seal(ctx, tmp, g, start, st.Reflinked, o.FSImage.replay(pg, o.Node.Log)); errors.Is(err, ErrNotSynced) {
		return nil, fmt.Errorf("image update: %w", err)
	} else if err != nil {
		return nil, im.abort(ctx, tmp, "", fmt.Errorf("image update: generation %d: %w", id, err))
	}
	return g, nil
}

// nativeArch is the generation's dpkg architecture.
func nativeArch(g *Generation) string {
	for _, p := range g.Packages {
		if p.Name == "dpkg" {
			return p.Architecture
		}
	}
	return apt.HostArch()
}

// counterFile holds the next generation number: numbers are never
// given twice, whatever was removed since, so a URL that a cache keeps
// names one generation's files for ever.
const counterFile = "next-generation"

// reserve takes the next generation number by making its temporary
// directory and moving the counter past it, under the image lock.
func (im Image) reserve() (int, string, error) {
	unlock, err := im.lock()
	if err != nil {
		return 0, "", err
	}
	defer unlock()
	next, err := im.nextID()
	if err != nil {
		return 0, "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(im.Dir, counterFile), []byte(strconv.Itoa(next+1)+"\n"), 0o644); err != nil {
		return 0, "", err
	}
	tmp := filepath.Join(im.Dir, "generations", fmt.Sprintf(".new-%d-%d", next, os.Getpid()))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return 0, "", err
	}
	return next, tmp, nil
}

// nextID is the counter, or past any number seen in generations/ or the
// history (an image made before the counter, or whose counter was lost).
func (im Image) nextID() (int, error) {
	next := 1
	b, err := fsroot.ReadHostFile(filepath.Join(im.Dir, counterFile), 64)
	switch {
	case err == nil:
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%s: %q is not a generation number; remove it to count again from the generations and the history", filepath.Join(im.Dir, counterFile), strings.TrimSpace(string(b)))
		}
		next = n
	case !errors.Is(err, fs.ErrNotExist):
		return 0, err
	}
	ents, err := os.ReadDir(filepath.Join(im.Dir, "generations"))
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		n := strings.TrimPrefix(strings.TrimPrefix(e.Name(), ".new-"), ".removing-")
		n, _, _ = strings.Cut(n, "-")
		if id, err := strconv.Atoi(n); err == nil && id >= next {
			next = id + 1
		}
	}
	hist, err := im.History()
	if err != nil {
		return 0, err
	}
	for _, h := range hist {
		if h.ID >= next {
			next = h.ID + 1
		}
	}
	return next, nil
}

// seal completes the generation in tmp (kernel, initramfs, package list,
// image files, boot script, description) and renames it into place. On
// an error the caller undoes tmp.
func (im Image) seal(ctx context.Context, tmp string, g *Generation, start time.Time, shared int64, fo FSImageOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := fsroot.Open(filepath.Join(tmp, "root"))
	if err != nil {
		return err
	}
	defer r.Close()
	kvers, err := node.Kernels(r.Path)
	if err != nil || len(kvers) == 0 {
		return errors.New("the root has no kernel (no /boot/vmlinuz-K with /lib/modules/K); run nroot node on it")
	}
	g.Kernel = kvers[len(kvers)-1]
	if st, err := node.ReadState(r.Path); err == nil {
		c := st.Choices
		g.Node = &c
		// nroot node --kver built the initramfs for that kernel alone.
		if c.Kver != "" && slices.Contains(kvers, c.Kver) {
			g.Kernel = c.Kver
		}
	}
	cl, err := r.ReadFile("boot/nroot-cmdline", 64<<10)
	if err != nil {
		return err
	}
	g.Cmdline = strings.TrimSpace(string(cl))
	for _, c := range [][2]string{{"boot/vmlinuz-" + g.Kernel, "vmlinuz"}, {"boot/initrd.img-" + g.Kernel, "initrd.img"}} {
		if err := copyOut(r, c[0], filepath.Join(tmp, c[1])); err != nil {
			return err
		}
	}
	if err := padInitrd(filepath.Join(tmp, "initrd.img")); err != nil {
		return err
	}
	if g.Packages, err = packages(r); err != nil {
		return err
	}
	if err := writeImages(ctx, r, tmp, g, fo); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "boot.ipxe"), []byte(BootScript(g)), 0o644); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g.Bytes, g.DiskBytes, err = spaceUsed(tmp)
	if err != nil {
		return err
	}
	g.Shared = shared
	g.Created = time.Now().Unix()
	g.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(tmp, "generation.json"), append(b, '\n')); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, im.genDir(g.ID)); err != nil {
		return err
	}
	// The generation is in place: nothing is undone past here.
	if err := syncDir(filepath.Join(im.Dir, "generations")); err != nil {
		return fmt.Errorf("generation %d: %w: %v", g.ID, ErrNotSynced, err)
	}
	return nil
}

// ErrNotSynced: a generation was made, but the directory that holds it
// could not be synced, so a crash may still lose it. It is not undone;
// nroot image list shows it.
var ErrNotSynced = errors.New("made, but not synced to disk")

// copyOut copies a regular file out of the root.
func copyOut(r *fsroot.Root, rel, dst string) error {
	f, err := r.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(f, maxBootFile+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxBootFile {
		err = fmt.Errorf("%s: larger than %d bytes", rel, maxBootFile)
	}
	return err
}

// spaceUsed is the content and the allocated blocks below dir, each inode
// counted once.
func spaceUsed(dir string) (bytes, disk int64, err error) {
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := [2]uint64{st.Dev, st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		if fi.Mode().IsRegular() {
			bytes += st.Size
		}
		disk += st.Blocks * 512
		return nil
	})
	return bytes, disk, err
}

// padInitrd pads the initramfs with zeros to a multiple of 4 bytes. The
// identity segment follows it: iPXE's BIOS loader aligns each initrd, but
// under UEFI the kernel's EFI stub loads the initrd= files end to end, and
// the newc segment after an unaligned one is not found. The kernel (and
// nroot's reader) skip zeros between segments.
func padInitrd(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size()%4 != 0 {
		_, err = f.WriteAt(make([]byte, 4-fi.Size()%4), fi.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image: padding %s: %w", path, err)
	}
	return nil
}

// BootScript is the generation's iPXE script. The node's own script sets
// nroot-base (the HTTP URL of the image directory), nroot-server and
// nroot-export (where NFS serves the image directory; nroot-nfs-opts,
// :port=N, when not on 2049), nroot-node (its
// name, for its identity segment), nroot-args and nroot-root (its root
// mode, inventory.RootModes; unset is the tree), and may set
// nroot-image-base (where HTTP serves the image files, a caching tier;
// unset is nroot-base), then chains to it. The script has one label per
// mode the generation boots; a mode it lacks ends the script with a
// line saying so and an error, never a silent boot of another mode.
//
// iPXE splits a command at blanks and expands ${...}; the script holds
// no quotes, backslashes, && or # past a line's start.
func BootScript(g *Generation) string {
	gen := "generations/" + strconv.Itoa(g.ID)
	modes := g.Modes()
	var b strings.Builder
	fmt.Fprintf(&b, `#!ipxe
# nroot image generation %[1]d, kernel %[2]s; root modes: %[3]s
isset ${nroot-root} || set nroot-root %[4]s
isset ${nroot-image-base} || set nroot-image-base ${nroot-base}
goto nroot-root-${nroot-root} || goto nroot-no-root
`, g.ID, g.Kernel, strings.Join(modes, " "), inventory.RootTree)
	for _, m := range modes {
		fmt.Fprintf(&b, ":nroot-root-%s\nkernel ${nroot-base}/%s/vmlinuz initrd=initrd.img initrd=identity.img %s ${nroot-args}\ngoto nroot-load\n", m, gen, modeCmdline(g, m))
	}
	fmt.Fprintf(&b, `:nroot-no-root
echo nroot: generation %[1]d has no ${nroot-root} image (root=${nroot-root}); it boots root=%[2]s. Make the image with nroot image create or update --fsimage %[3]s, or change root= of this node in the inventory and run nroot pxe again
exit 1
:nroot-load
initrd --name initrd.img ${nroot-base}/%[4]s/initrd.img
initrd --name identity.img ${nroot-base}/nodes/${nroot-node}.img
boot
`, g.ID, strings.Join(modes, ","), fsimageList(), gen)
	return b.String()
}

// modeCmdline is the generation's kernel command line in root mode m
// (one it boots): the tree over NFS with SERVER and /PATH filled in, as
// nroot export does, or the image file's line with IMAGEURL, dracut's
// nfs4:HOST:PATH[:port=N] form for NFS (its nfs:// form would mount
// NFSv3). An unset iPXE variable expands to nothing.
func modeCmdline(g *Generation, m string) string {
	gen := "generations/" + strconv.Itoa(g.ID)
	if m == inventory.RootTree {
		return strings.NewReplacer("SERVER", "${nroot-server}", "/PATH", "${nroot-export}/"+gen+"/root${nroot-nfs-opts}").Replace(g.Cmdline)
	}
	proto, f, _ := strings.Cut(m, "-")
	url := "${nroot-image-base}/" + gen + "/root." + f
	if proto == "nfs" {
		url = "nfs4:${nroot-server}:${nroot-export}/" + gen + "/root." + f + "${nroot-nfs-opts}"
	}
	return strings.Replace(g.ImageCmdline, "IMAGEURL", url, 1)
}

// fsimageList is --fsimage's value for every format.
func fsimageList() string {
	names := make([]string, len(fsimage.Formats))
	for i, f := range fsimage.Formats {
		names[i] = string(f)
	}
	return strings.Join(names, ",")
}

func decodeGeneration(b []byte) (*Generation, error) {
	var g Generation
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, err
	}
	if g.ID <= 0 {
		return nil, errors.New("no generation number")
	}
	return &g, nil
}
