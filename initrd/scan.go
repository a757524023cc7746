package initrd

import (
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
}

// small files whose content Info keeps.
const maxMeta = 1 << 20

// Collect records what one entry says about the image; call it for each
// entry, then Finish.
func (in *Info) Collect(h *Header, data io.Reader) {
	in.Entries++
	name := CleanName(h.Name)
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
	case isHook(name) && !h.IsDir():
		in.Hooks = append(in.Hooks, name)
	}
	if kv := kernelVersionOf(name); kv != "" && !contains(in.KernelVersions, kv) {
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

func isHook(name string) bool {
	for _, d := range hookDirs {
		if strings.HasPrefix(name, d) {
			return true
		}
	}
	return false
}

// kernelVersionOf returns K for lib/modules/K/... and usr/lib/modules/K/...
func kernelVersionOf(name string) string {
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

// Inspect reads an image and returns its Info.
func Inspect(r io.Reader) (*Info, error) {
	in := &Info{}
	segs, err := Scan(r, func(h *Header, data io.Reader) error {
		in.Collect(h, data)
		return nil
	})
	in.Finish(segs)
	return in, err
}

// Finish completes an Info after the last entry.
func (in *Info) Finish(segs []Segment) {
	in.Segments = segs
	sort.Strings(in.KernelVersions)
	sort.Strings(in.Hooks)
}
