package initrd

import (
	"bytes"
	"io"
	"path"
	"sort"
	"strings"
)

// Scan reads every entry of an image and calls fn with its header and
// data. Whatever fn leaves unread is skipped.
func Scan(r io.Reader, fn func(h *Header, data io.Reader) error) ([]Segment, error) {
	ir := NewReader(r)
	for {
		h, err := ir.Next()
		if err == io.EOF {
			return ir.Segments(), nil
		}
		if err != nil {
			return ir.Segments(), err
		}
		if err := fn(h, ir); err != nil {
			return ir.Segments(), err
		}
	}
}

// CleanName is an entry's path without a leading "./" or "/".
func CleanName(name string) string {
	n := strings.TrimLeft(strings.TrimPrefix(name, "./"), "/")
	if n == "" {
		return "."
	}
	return path.Clean(n)
}

// Info is what an image says about itself: dracut's metadata and the
// kernels it carries.
type Info struct {
	Segments        []Segment         `json:"segments"`
	Entries         int               `json:"entries"`
	EarlyCPIO       bool              `json:"early_cpio"`
	Microcode       []string          `json:"microcode,omitempty"`
	DracutVersion   string            `json:"dracut_version,omitempty"`
	DracutModules   []string          `json:"dracut_modules,omitempty"`
	BuildParameters string            `json:"build_parameters,omitempty"`
	KernelVersions  []string          `json:"kernel_versions,omitempty"`
	Cmdline         map[string]string `json:"cmdline,omitempty"` // etc/cmdline.d file -> content
	Hooks           []string          `json:"hooks,omitempty"`
	// Generator is what made the image, told by the files only it puts
	// there: Dracut, InitramfsTools or Mkinitcpio; empty when unknown.
	Generator string `json:"generator,omitempty"`
	marks     map[string]bool
}

// The generators Info tells apart.
const (
	Dracut         = "dracut"
	InitramfsTools = "initramfs-tools"
	Mkinitcpio     = "mkinitcpio"
)

// generatorMarks are a file each generator alone puts in its images:
// dracut's own directory, initramfs-tools' configuration and boot
// scripts, mkinitcpio's shell library and build configuration.
var generatorMarks = map[string]string{
	"usr/lib/dracut/modules.txt": Dracut, "lib/dracut/modules.txt": Dracut,
	"usr/lib/dracut/build-parameter.txt": Dracut, "lib/dracut/build-parameter.txt": Dracut,
	"conf/initramfs.conf": InitramfsTools, "scripts/functions": InitramfsTools,
	"init_functions": Mkinitcpio, "buildconfig": Mkinitcpio,
}

// small files whose content Info keeps.
const maxMeta = 1 << 20

// Collect records what one entry says about the image; call it for each
// entry, then Finish.
func (in *Info) Collect(h *Header, data io.Reader) {
	in.Entries++
	name := CleanName(h.Name)
	if g := generatorMarks[name]; g != "" && h.IsRegular() {
		if in.marks == nil {
			in.marks = map[string]bool{}
		}
		in.marks[g] = true
	}
	read := func() string {
		b, _ := io.ReadAll(io.LimitReader(data, maxMeta))
		return strings.TrimRight(string(b), "\n")
	}
	switch {
	case name == "early_cpio":
		in.EarlyCPIO = true
	case strings.HasPrefix(name, "kernel/x86/microcode/") && h.IsRegular():
		in.Microcode = append(in.Microcode, name)
	case (name == "usr/lib/dracut/modules.txt" || name == "lib/dracut/modules.txt") && h.IsRegular():
		in.DracutModules = strings.Fields(read())
	case (name == "usr/lib/dracut/build-parameter.txt" || name == "lib/dracut/build-parameter.txt") && h.IsRegular():
		in.BuildParameters = strings.TrimSpace(read())
	case strings.HasPrefix(path.Base(name), "dracut-") && (path.Dir(name) == "usr/lib/dracut" || path.Dir(name) == "lib/dracut") && h.IsRegular():
		in.DracutVersion = strings.TrimPrefix(path.Base(name), "dracut-")
	case strings.HasPrefix(name, "etc/cmdline.d/") && strings.HasSuffix(name, ".conf") && h.IsRegular():
		if in.Cmdline == nil {
			in.Cmdline = map[string]string{}
		}
		in.Cmdline[name] = read()
	case IsHook(name) && !h.IsDir():
		in.Hooks = append(in.Hooks, name)
	}
	if kv := KernelVersion(name); kv != "" && !contains(in.KernelVersions, kv) {
		in.KernelVersions = append(in.KernelVersions, kv)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

var hookDirs = []string{"usr/lib/dracut/hooks/", "lib/dracut/hooks/", "var/lib/dracut/hooks/"}

// IsHook reports whether an entry is one of dracut's hooks.
func IsHook(name string) bool {
	for _, d := range hookDirs {
		if strings.HasPrefix(name, d) {
			return true
		}
	}
	return false
}

// KernelVersion returns K for lib/modules/K/... and usr/lib/modules/K/...
func KernelVersion(name string) string {
	for _, p := range []string{"lib/modules/", "usr/lib/modules/"} {
		if strings.HasPrefix(name, p) {
			rest := strings.TrimPrefix(name, p)
			if i := strings.IndexByte(rest, '/'); i > 0 {
				return rest[:i]
			}
		}
	}
	return ""
}

// Image is an initramfs read whole: every entry as the kernel leaves it
// (the last entry of a name wins, and a hard link stored without its
// data keeps the size of the link that has it), and what the image says
// about itself.
type Image struct {
	Entries map[string]*Header // by clean name
	Info    *Info
}

// IndexFunc sees each entry, by clean name, with its data, once Info has
// read what it keeps of it.
type IndexFunc func(name string, h *Header, data io.Reader) error

// Index reads an image once and indexes it; fn, when not nil, gets each
// entry's data: the one indexer that listing headers, diff and verify
// share.
func Index(r io.Reader, fn IndexFunc) (*Image, error) {
	img := &Image{Entries: map[string]*Header{}, Info: &Info{}}
	segs, err := Scan(r, func(h *Header, data io.Reader) error {
		name := CleanName(h.Name)
		hc := *h
		if prev, ok := img.Entries[name]; ok && h.IsRegular() && h.Size == 0 && h.NLink > 1 {
			hc.Size = prev.Size
		}
		img.Entries[name] = &hc
		if isMeta(name) && h.IsRegular() {
			// Small files whose content Info keeps: read once, seen
			// by both.
			b, err := io.ReadAll(io.LimitReader(data, maxMeta))
			if err != nil {
				return err
			}
			img.Info.Collect(h, bytes.NewReader(b))
			data = io.MultiReader(bytes.NewReader(b), data)
		} else {
			img.Info.Collect(h, data)
		}
		if fn == nil {
			return nil
		}
		return fn(name, &hc, data)
	})
	img.Info.Finish(segs)
	return img, err
}

// isMeta reports whether Info keeps the content of the entry.
func isMeta(name string) bool {
	switch name {
	case "usr/lib/dracut/modules.txt", "lib/dracut/modules.txt", "usr/lib/dracut/build-parameter.txt", "lib/dracut/build-parameter.txt":
		return true
	}
	return strings.HasPrefix(name, "etc/cmdline.d/") && strings.HasSuffix(name, ".conf")
}

// Inspect reads an image and returns its Info.
func Inspect(r io.Reader) (*Info, error) {
	img, err := Index(r, nil)
	return img.Info, err
}

// Finish completes an Info after the last entry.
func (in *Info) Finish(segs []Segment) {
	in.Segments = segs
	// One generator's marks alone name it; dracut's own directory wins
	// over a copied-in file of another's.
	switch {
	case in.marks[Dracut]:
		in.Generator = Dracut
	case len(in.marks) == 1:
		for g := range in.marks {
			in.Generator = g
		}
	}
	sort.Strings(in.KernelVersions)
	sort.Strings(in.Hooks)
}
