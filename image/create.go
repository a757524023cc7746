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
	"strconv"
	"strings"
	"syscall"
	"time"

	"nroot/internal/fsroot"
	"nroot/node"
)

// ImportOptions control Import.
type ImportOptions struct {
	// Move renames ROOT into the generation instead of copying it (the
	// same filesystem only); ROOT is gone afterwards.
	Move bool
}

// UpdateOptions control Update.
type UpdateOptions struct {
	// Parent is the generation to start from: the published one when 0,
	// or the newest when none is.
	Parent  int
	Install []string // packages to add
	Upgrade bool     // apt-get upgrade
	// Node is passed to the node stage, which runs again on the copy
	// (its Packages and Upgrade are set from the fields above).
	Node node.Options
}

// maxBootFile bounds the kernel and initramfs copied out of a root.
const maxBootFile = 2 << 30

// Import makes a new generation from a node root (made by nroot
// bootstrap and nroot node), copying it (reflinks where the filesystem
// has them) unless Move.
func (im Image) Import(ctx context.Context, root string, o ImportOptions) (*Generation, error) {
	start := time.Now()
	src, err := fsroot.Open(root)
	if err != nil {
		return nil, fmt.Errorf("image create: %w", err)
	}
	defer src.Close()
	if !src.IsRegular("boot/nroot-cmdline") {
		return nil, fmt.Errorf("image create: %s has no boot/nroot-cmdline; run nroot node %s first", root, root)
	}
	id, tmp, err := im.reserve()
	if err != nil {
		return nil, err
	}
	g := &Generation{ID: id, Source: "import " + root}
	var shared int64
	if o.Move {
		if err := os.Rename(root, filepath.Join(tmp, "root")); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("image create --move: %w", err)
		}
	} else {
		st, err := src.CopyTree(filepath.Join(tmp, "root"))
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("image create: copying %s: %w", root, err)
		}
		shared = st.Reflinked
	}
	return im.seal(tmp, g, start, shared)
}

// Update makes a new generation from an existing one: a copy of its
// root (reflinks where the filesystem has them, never hard links), apt
// in the image to add packages or upgrade, then the node stage again,
// which rebuilds and verifies the initramfs.
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
	pg, err := im.Get(parent)
	if err != nil {
		return nil, err
	}
	src, err := fsroot.Open(im.Root(parent))
	if err != nil {
		return nil, err
	}
	defer src.Close()
	id, tmp, err := im.reserve()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Generation, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	st, err := src.CopyTree(filepath.Join(tmp, "root"))
	if err != nil {
		return fail(fmt.Errorf("image update: copying generation %d: %w", parent, err))
	}
	if d := o.Node.Progress; d != nil {
		fmt.Fprintf(d, "[image] generation %d copied from %d in %.1fs (%d bytes, %d shared)\n", id, parent, time.Since(start).Seconds(), st.Bytes, st.Reflinked)
	}
	no := o.Node
	no.Packages = append(append([]string(nil), no.Packages...), o.Install...)
	no.Upgrade = o.Upgrade
	if _, err := node.Build(ctx, filepath.Join(tmp, "root"), no); err != nil {
		return fail(fmt.Errorf("image update: generation %d: %w", id, err))
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
	return im.seal(tmp, g, start, st.Reflinked)
}

// reserve takes the next generation number by making its temporary
// directory, under the image lock.
func (im Image) reserve() (int, string, error) {
	unlock, err := im.lock()
	if err != nil {
		return 0, "", err
	}
	defer unlock()
	ents, err := os.ReadDir(filepath.Join(im.Dir, "generations"))
	if err != nil {
		return 0, "", err
	}
	next := 1
	for _, e := range ents {
		n := strings.TrimPrefix(e.Name(), ".new-")
		n, _, _ = strings.Cut(n, "-")
		if id, err := strconv.Atoi(n); err == nil && id >= next {
			next = id + 1
		}
	}
	tmp := filepath.Join(im.Dir, "generations", fmt.Sprintf(".new-%d-%d", next, os.Getpid()))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return 0, "", err
	}
	return next, tmp, nil
}

// seal completes the generation in tmp (kernel, initramfs, package list,
// boot script, description) and renames it into place.
func (im Image) seal(tmp string, g *Generation, start time.Time, shared int64) (*Generation, error) {
	fail := func(err error) (*Generation, error) {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("image: generation %d: %w", g.ID, err)
	}
	r, err := fsroot.Open(filepath.Join(tmp, "root"))
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	kvers, err := node.Kernels(r.Path)
	if err != nil || len(kvers) == 0 {
		return fail(fmt.Errorf("no kernel in the root (%v); run nroot node on it", err))
	}
	g.Kernel = kvers[len(kvers)-1]
	cl, err := r.ReadFile("boot/nroot-cmdline", 64<<10)
	if err != nil {
		return fail(err)
	}
	g.Cmdline = strings.TrimSpace(string(cl))
	for _, c := range [][2]string{{"boot/vmlinuz-" + g.Kernel, "vmlinuz"}, {"boot/initrd.img-" + g.Kernel, "initrd.img"}} {
		if err := copyOut(r, c[0], filepath.Join(tmp, c[1])); err != nil {
			return fail(err)
		}
	}
	if g.Packages, err = packages(r); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "boot.ipxe"), []byte(BootScript(g)), 0o644); err != nil {
		return fail(err)
	}
	g.Bytes, g.DiskBytes, err = usage(tmp)
	if err != nil {
		return fail(err)
	}
	g.Shared = shared
	g.Created = time.Now().Unix()
	g.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(tmp, "generation.json"), append(b, '\n')); err != nil {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, im.genDir(g.ID)); err != nil {
		return fail(err)
	}
	return g, syncDir(filepath.Join(im.Dir, "generations"))
}

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

// usage is the content and the allocated blocks below dir, each inode
// counted once.
func usage(dir string) (bytes, disk int64, err error) {
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

// BootScript is the generation's iPXE script. The node's own script sets
// nroot-base (the HTTP URL of the image directory), nroot-server and
// nroot-export (where NFS serves the image directory), nroot-node (its
// name, for its identity segment) and nroot-args, then chains to it.
func BootScript(g *Generation) string {
	gen := "generations/" + strconv.Itoa(g.ID)
	cmd := strings.NewReplacer("SERVER", "${nroot-server}", "/PATH", "${nroot-export}/"+gen+"/root").Replace(g.Cmdline)
	return fmt.Sprintf(`#!ipxe
# nroot image generation %[1]d, kernel %[2]s
kernel ${nroot-base}/%[3]s/vmlinuz initrd=initrd.img initrd=identity.img %[4]s ${nroot-args}
initrd --name initrd.img ${nroot-base}/%[3]s/initrd.img
initrd --name identity.img ${nroot-base}/nodes/${nroot-node}.img
boot
`, g.ID, g.Kernel, gen, cmd)
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
