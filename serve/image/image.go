// Package image keeps a node image as a directory of immutable
// generations, each a root filesystem with its kernel, initramfs,
// installed-package list and iPXE script, and one pointer to the
// generation nodes boot: published.ipxe, swapped atomically.
//
//	IMAGE/generations/N/root/          the root filesystem nodes mount
//	IMAGE/generations/N/vmlinuz        its kernel and initramfs
//	IMAGE/generations/N/initrd.img
//	IMAGE/generations/N/root.squashfs  its root as image files, when made
//	IMAGE/generations/N/root.erofs     with --fsimage (nroot fsimage)
//	IMAGE/generations/N/boot.ipxe      how iPXE boots it, in each root mode
//	IMAGE/generations/N/generation.json
//	IMAGE/published.ipxe -> generations/N/boot.ipxe
//	IMAGE/history                      one line per publish
//
// A generation is made under a temporary name and renamed into place
// when complete, and never changed after: a node keeps the lower layer
// of its overlay for as long as it runs, whatever is published since.
package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"nroot/format/control"
	"nroot/internal/atomicfile"
	"nroot/internal/fsroot"
	"nroot/node"
)

// Pointer is the file, relative to the image, that names the published
// generation: a symlink to its boot.ipxe.
const Pointer = "published.ipxe"

// ErrNotFound: no such generation.
var ErrNotFound = errors.New("no such generation")

// ErrInUse: the generation is published or pinned.
var ErrInUse = errors.New("generation in use")

// ErrNoImage: the directory is not an image.
var ErrNoImage = errors.New("not an nroot image")

// Generation describes one generation (generation.json).
type Generation struct {
	ID        int       `json:"generation"`
	Parent    int       `json:"parent,omitempty"`
	Created   int64     `json:"created"` // Unix seconds
	Source    string    `json:"source"`  // what it was made from
	Kernel    string    `json:"kernel"`
	Cmdline   string    `json:"cmdline"` // with SERVER and /PATH left for the export to fill
	Packages  []Package `json:"packages"`
	Seconds   float64   `json:"seconds"`    // time to make it
	Bytes     int64     `json:"bytes"`      // file content: root, image files
	DiskBytes int64     `json:"disk_bytes"` // blocks it allocated on disk
	Shared    int64     `json:"shared_bytes,omitempty"`
	Published bool      `json:"published"`
	// Node is what the node stage was asked for (nroot node's options),
	// replayed by image update; nil for a generation made before it was
	// recorded.
	Node *node.Choices `json:"node,omitempty"`
	// Images are the root's image files beside it (root.squashfs,
	// root.erofs), in fsimage.Formats order; ImageCmdline boots one,
	// with IMAGEURL left to fill (the root's boot/nroot-cmdline-image).
	// Both are empty for a generation made without --fsimage.
	Images       []string `json:"images,omitempty"`
	ImageCmdline string   `json:"image_cmdline,omitempty"`
	// Problem says why the generation cannot be booted (its root or boot
	// files are gone); empty when it can. Never stored, found by Get.
	Problem string `json:"problem,omitempty"`
}

// ErrBroken: the generation's root or boot files are missing.
var ErrBroken = errors.New("generation is broken")

// Package is one installed package.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
}

// Image is an image directory.
type Image struct {
	Dir string
}

// Dir paths.
func (im Image) genDir(id int) string { return filepath.Join(im.Dir, "generations", strconv.Itoa(id)) }

// Root is the root filesystem of a generation.
func (im Image) Root(id int) string { return filepath.Join(im.genDir(id), "root") }

// Open checks that dir is an image.
func Open(dir string) (Image, error) {
	// Lstat: the image's own bookkeeping, never followed through a symlink.
	fi, err := os.Lstat(filepath.Join(dir, "generations"))
	if err != nil || !fi.IsDir() {
		return Image{}, fmt.Errorf("%s: %w (no generations/); make one with nroot image create", dir, ErrNoImage)
	}
	return Image{Dir: dir}, nil
}

// lock serialises commands that change the image.
func (im Image) lock() (func(), error) {
	gens := filepath.Join(im.Dir, "generations")
	if err := os.MkdirAll(gens, 0o755); err != nil {
		return nil, err
	}
	// Generations are made and removed below it: never through a symlink.
	if fi, err := os.Lstat(gens); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w (generations/ is not a directory of its own)", im.Dir, ErrNoImage)
	}
	f, err := os.OpenFile(filepath.Join(im.Dir, ".lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s: another nroot is changing this image (%v)", im.Dir, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// IDs lists the generations, oldest first.
func (im Image) IDs() ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(im.Dir, "generations"))
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, e := range ents {
		if id, err := strconv.Atoi(e.Name()); err == nil && id > 0 && e.IsDir() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// maxMeta bounds generation.json.
const maxMeta = 64 << 20

// Get reads one generation's description.
func (im Image) Get(id int) (*Generation, error) {
	meta := filepath.Join(im.genDir(id), "generation.json")
	b, err := fsroot.ReadHostFile(meta, maxMeta)
	if errors.Is(err, os.ErrNotExist) {
		if fi, serr := os.Lstat(im.genDir(id)); serr == nil && fi.IsDir() {
			return nil, fmt.Errorf("%s: %w: it has no generation.json", im.genDir(id), ErrBroken)
		}
		return nil, fmt.Errorf("%s: generation %d: %w", im.Dir, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBroken, err)
	}
	g, err := decodeGeneration(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", meta, ErrBroken, err)
	}
	if g.ID != id {
		return nil, fmt.Errorf("%s: says generation %d: %w", filepath.Join(im.genDir(id), "generation.json"), g.ID, ErrBroken)
	}
	if g.Packages == nil {
		g.Packages = []Package{}
	}
	g.Problem = im.problem(id, g)
	pub, _ := im.Published()
	g.Published = pub == id
	return g, nil
}

// problem says what a generation lacks that a node boots from: a root
// directory of its own that is not empty, its kernel, initramfs, boot
// script and the image files it records (never through a symlink).
func (im Image) problem(id int, g *Generation) string {
	if fi, err := os.Lstat(im.Root(id)); err != nil || !fi.IsDir() {
		return "its root/ is missing"
	}
	if ents, err := os.ReadDir(im.Root(id)); err != nil || len(ents) == 0 {
		return "its root/ is empty"
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "boot.ipxe"} {
		if fi, err := os.Lstat(filepath.Join(im.genDir(id), f)); err != nil || !fi.Mode().IsRegular() {
			return "its " + f + " is missing"
		}
	}
	for _, f := range g.Images {
		if _, err := imageFormat(f); err != nil {
			return "its generation.json names " + strconv.Quote(f) + " as an image file"
		}
		if fi, err := os.Lstat(filepath.Join(im.genDir(id), f)); err != nil || !fi.Mode().IsRegular() {
			return "its " + f + " is missing"
		}
	}
	return ""
}

// List describes every generation, oldest first.
func (im Image) List() ([]*Generation, error) {
	ids, err := im.IDs()
	if err != nil {
		return nil, err
	}
	var out []*Generation
	pub, _ := im.Published()
	for _, id := range ids {
		g, err := im.Get(id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // removed while listed
		case errors.Is(err, ErrBroken):
			// Listed, so that it can be seen and removed.
			g = &Generation{ID: id, Packages: []Package{}, Problem: err.Error(), Published: pub == id}
		case err != nil:
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// Published is the published generation, 0 when none is.
func (im Image) Published() (int, error) {
	t, err := os.Readlink(filepath.Join(im.Dir, Pointer))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// generations/N/boot.ipxe
	parts := strings.Split(t, "/")
	if len(parts) != 3 || parts[0] != "generations" || parts[2] != "boot.ipxe" {
		return 0, fmt.Errorf("%s points at %q, not a generation's boot.ipxe", filepath.Join(im.Dir, Pointer), t)
	}
	id, err := strconv.Atoi(parts[1])
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s points at %q, not a generation's boot.ipxe", filepath.Join(im.Dir, Pointer), t)
	}
	return id, nil
}

// Publish points the boot configuration at generation id, atomically:
// a node that starts to boot reads either the old pointer or the new.
func (im Image) Publish(id int) error {
	unlock, err := im.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return im.publish(id, "publish")
}

func (im Image) publish(id int, why string) error {
	g, err := im.Get(id)
	if err != nil {
		return err
	}
	if g.Problem != "" {
		return fmt.Errorf("%s: generation %d: %w: %s; publish another", im.Dir, id, ErrBroken, g.Problem)
	}
	tmp := filepath.Join(im.Dir, fmt.Sprintf(".%s.tmp-%d", Pointer, os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("generations", strconv.Itoa(id), "boot.ipxe"), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(im.Dir, Pointer)); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(im.Dir); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(im.Dir, "history"), os.O_APPEND|os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %s %d\n", time.Now().UTC().Format(time.RFC3339), why, id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxHistory bounds the history read.
const maxHistory = 16 << 20

// Event is one line of the history: a publish or a rollback.
type Event struct {
	Time   string `json:"time"`
	Action string `json:"action"` // publish or rollback
	ID     int    `json:"generation"`
}

// History lists the publishes and rollbacks, oldest first.
func (im Image) History() ([]Event, error) {
	b, err := fsroot.ReadHostFile(filepath.Join(im.Dir, "history"), maxHistory)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseEvents(b, filepath.Join(im.Dir, "history"))
}

// parseHistory reads the generations of history lines, "TIME ACTION
// GENERATION".
func parseHistory(b []byte, name string) ([]int, error) {
	evs, err := parseEvents(b, name)
	var out []int
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out, err
}

func parseEvents(b []byte, name string) ([]Event, error) {
	var out []Event
	for n, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" && len(b) == 0 {
			break
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: want TIME ACTION GENERATION", name, n+1)
		}
		id, err := strconv.Atoi(f[2])
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%s line %d: generation %q", name, n+1, f[2])
		}
		out = append(out, Event{Time: f[0], Action: f[1], ID: id})
	}
	return out, nil
}

// stack replays the history as the generations published one over the
// other: a publish puts one on top, a rollback takes the top off and
// goes down to the one it published. The top is the published one.
func stack(evs []Event) []int {
	var st []int
	for _, e := range evs {
		switch e.Action {
		case "rollback":
			if len(st) > 0 {
				st = st[:len(st)-1]
			}
			for len(st) > 0 && st[len(st)-1] != e.ID {
				st = st[:len(st)-1]
			}
			if len(st) == 0 {
				st = append(st, e.ID)
			}
		default:
			if len(st) == 0 || st[len(st)-1] != e.ID {
				st = append(st, e.ID)
			}
		}
	}
	return st
}

// Rollback publishes the generation that was published before the
// current one, and returns it; run again, it steps further back, never
// to the one it rolled back from. Generations removed since, or broken,
// are passed over.
func (im Image) Rollback() (int, error) {
	unlock, err := im.lock()
	if err != nil {
		return 0, err
	}
	defer unlock()
	cur, err := im.Published()
	if err != nil {
		return 0, err
	}
	if cur == 0 {
		return 0, fmt.Errorf("%s: nothing is published; nroot image publish first", im.Dir)
	}
	hist, err := im.History()
	if err != nil {
		return 0, err
	}
	st := stack(hist)
	if len(st) == 0 || st[len(st)-1] != cur {
		st = append(st, cur) // the pointer was set by hand
	}
	for st = st[:len(st)-1]; len(st) > 0; st = st[:len(st)-1] {
		id := st[len(st)-1]
		if id == cur {
			continue
		}
		if g, err := im.Get(id); err == nil && g.Problem == "" {
			return id, im.publish(id, "rollback")
		}
	}
	return 0, fmt.Errorf("%s: no generation was published before %d that can still boot; %d stays published", im.Dir, cur, cur)
}

// hold keeps generation id from being removed until release is called
// (image update holds its parent while it copies it). It fails when the
// generation is gone.
func (im Image) hold(id int) (release func(), err error) {
	unlock, err := im.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := im.Get(id); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(im.holdFile(id), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

func (im Image) holdFile(id int) string { return filepath.Join(im.Dir, fmt.Sprintf(".hold-%d", id)) }

// Remove deletes a generation, refusing the published one and those in
// pinned (the inventory's generation= fields).
func (im Image) Remove(id int, pinned []int) error {
	unlock, err := im.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := im.Get(id); err != nil && !errors.Is(err, ErrBroken) {
		return err // a broken generation can be removed
	}
	if pub, _ := im.Published(); pub == id {
		return fmt.Errorf("generation %d is published: %w; publish another first", id, ErrInUse)
	}
	if slices.Contains(pinned, id) {
		return fmt.Errorf("generation %d is pinned by the inventory: %w", id, ErrInUse)
	}
	// Under the image lock no new hold can start; one taken before is
	// an update copying the generation.
	if f, err := os.OpenFile(im.holdFile(id), os.O_RDWR|unix.O_NOFOLLOW, 0); err == nil {
		defer f.Close()
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return fmt.Errorf("generation %d is being copied by nroot image update: %w; remove it when that ends", id, ErrInUse)
		}
		defer os.Remove(im.holdFile(id))
	}
	dead := filepath.Join(im.Dir, "generations", fmt.Sprintf(".removing-%d", id))
	if err := os.Rename(im.genDir(id), dead); err != nil {
		return err
	}
	// os.RemoveAll unlinks symlinks and never follows them.
	return os.RemoveAll(dead)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// packages lists what the root's dpkg status has installed.
func packages(r *fsroot.Root) ([]Package, error) {
	f, err := r.Open("var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	defer f.Close()
	ps, err := control.ReadAll(io.LimitReader(f, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: dpkg status: %w", r.Path, err)
	}
	var out []Package
	for _, p := range ps {
		if strings.HasSuffix(p.Get("Status"), " installed") {
			out = append(out, Package{Name: p.Get("Package"), Version: p.Get("Version"), Architecture: p.Get("Architecture")})
		}
	}
	slices.SortFunc(out, func(a, b Package) int { return strings.Compare(a.Name+":"+a.Architecture, b.Name+":"+b.Architecture) })
	return out, nil
}

func writeJSON(path string, data []byte) error { return atomicfile.WriteFile(path, data, 0o644) }
