package initrd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"

	"nroot/format/report"
)

// Entry is what Diff compares of one path.
type Entry = report.File

// TypeName is the type of a mode as nroot's JSON names it: file, dir,
// symlink, char, block, fifo, socket.
func TypeName(m uint32) string {
	switch m & TypeMask {
	case TypeDir:
		return "dir"
	case TypeLink:
		return "symlink"
	case TypeReg:
		return "file"
	case TypeChr:
		return "char"
	case TypeBlk:
		return "block"
	case TypeFifo:
		return "fifo"
	case TypeSock:
		return "socket"
	}
	return "unknown"
}

// hashIndex reads an image into a map of path to Entry, hashing file
// contents, plus its Info. Later segments override earlier ones, as the
// kernel unpacks them.
func hashIndex(r io.Reader) (map[string]Entry, *Info, error) {
	out := map[string]Entry{}
	img, err := Index(r, func(name string, h *Header, data io.Reader) error {
		e := Entry{Type: TypeName(h.Mode), Mode: report.Mode(h.Mode & 0o7777), UID: h.UID, GID: h.GID, Linkname: h.Linkname}
		if h.IsRegular() {
			hr := &hashingReader{r: data, h: sha256.New()}
			if _, err := io.Copy(io.Discard, hr); err != nil {
				return err
			}
			if prev, ok := out[name]; ok && hr.n == 0 && h.NLink > 1 && prev.Type == "file" {
				return nil // a later link without its data
			}
			e.Size = hr.n
			e.SHA256 = hex.EncodeToString(hr.h.Sum(nil))
		}
		if h.Mode&TypeMask == TypeChr || h.Mode&TypeMask == TypeBlk {
			e.RDev = fmt.Sprintf("%d:%d", h.RDevMajor, h.RDevMinor)
		}
		out[name] = e
		return nil
	})
	return out, img.Info, err
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// Change is one path that differs between two images.
type Change = report.Difference

// DiffResult is the comparison of two images.
type DiffResult struct {
	Changes              []Change            `json:"changes"`
	ByTopDir             map[string][]Change `json:"-"`
	KernelsAdded         []string            `json:"kernels_added,omitempty"`
	KernelsRemoved       []string            `json:"kernels_removed,omitempty"`
	KernelModulesAdded   []string            `json:"kernel_modules_added,omitempty"`
	KernelModulesRemoved []string            `json:"kernel_modules_removed,omitempty"`
	KernelModulesChanged []string            `json:"kernel_modules_changed,omitempty"`
	DracutModulesAdded   []string            `json:"dracut_modules_added,omitempty"`
	DracutModulesRemoved []string            `json:"dracut_modules_removed,omitempty"`
	Added                int                 `json:"added"`
	Removed              int                 `json:"removed"`
	Changed              int                 `json:"changed"`
}

// Diff compares two images.
func Diff(a, b io.Reader) (*DiffResult, error) {
	ea, ia, err := hashIndex(a)
	if err != nil {
		return nil, fmt.Errorf("first image: %w", err)
	}
	eb, ib, err := hashIndex(b)
	if err != nil {
		return nil, fmt.Errorf("second image: %w", err)
	}
	res := &DiffResult{ByTopDir: map[string][]Change{}}
	for _, p := range sortedKeys(ea, eb) {
		x, inA := ea[p]
		y, inB := eb[p]
		var c Change
		switch {
		case !inA:
			c = Change{Path: p, Kind: "added", New: &y}
			res.Added++
		case !inB:
			c = Change{Path: p, Kind: "removed", Old: &x}
			res.Removed++
		case x != y:
			c = Change{Path: p, Kind: "changed", Old: &x, New: &y, Fields: x.Changed(y)}
			res.Changed++
		default:
			continue
		}
		res.Changes = append(res.Changes, c)
		top, _, _ := strings.Cut(p, "/")
		res.ByTopDir[top] = append(res.ByTopDir[top], c)
	}
	res.KernelsAdded = minus(ib.KernelVersions, ia.KernelVersions)
	res.KernelsRemoved = minus(ia.KernelVersions, ib.KernelVersions)
	// Modules by name, as modprobe knows them, so that a kernel update
	// or a change of module compression is not every module twice.
	ma, mb := kernelModules(ea), kernelModules(eb)
	for _, name := range sortedKeys(ma, mb) {
		x, inA := ma[name]
		y, inB := mb[name]
		switch {
		case !inA:
			res.KernelModulesAdded = append(res.KernelModulesAdded, name)
		case !inB:
			res.KernelModulesRemoved = append(res.KernelModulesRemoved, name)
		case x != y && len(res.KernelsAdded) == 0 && len(res.KernelsRemoved) == 0:
			// Across kernel versions every module differs; only the
			// same kernel's modules are compared by content.
			res.KernelModulesChanged = append(res.KernelModulesChanged, name)
		}
	}
	res.DracutModulesAdded = minus(ib.DracutModules, ia.DracutModules)
	res.DracutModulesRemoved = minus(ia.DracutModules, ib.DracutModules)
	return res, nil
}

// IsKernelModule reports whether an entry is a kernel module, compressed
// or not, below lib/modules/K.
func IsKernelModule(p string) bool {
	return KernelVersion(p) != "" && (strings.HasSuffix(p, ".ko") || strings.Contains(path.Base(p), ".ko."))
}

// kernelModules maps each module name of an image to what identifies
// its files: their paths and hashes, in path order.
func kernelModules(entries map[string]Entry) map[string]string {
	out := map[string]string{}
	for _, p := range sortedKeys(entries) {
		e := entries[p]
		if e.Type == "file" && IsKernelModule(p) {
			out[ModuleName(p)] += p + ":" + e.SHA256 + ";"
		}
	}
	return out
}

// sortedKeys returns the keys of the maps, sorted, each once.
func sortedKeys[V any](maps ...map[string]V) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range maps {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// ModuleName turns "kernel/fs/nfs/nfs.ko.xz" into "nfs", with dashes as
// modprobe treats them.
func ModuleName(p string) string {
	b := path.Base(strings.TrimSpace(p))
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}
