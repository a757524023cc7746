package node

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"strings"

	"nroot/internal/decompress"
	"nroot/internal/fsroot"
)

// nfsClientParams are kernel command line parameters the image's NFS
// client needs. Linux 6.19 and later ask NFSv4.1+ servers for directory
// delegations by default; nfs-ganesha before the fix for its issue 1385
// (Debian's 4.3 and 6.x among them) answers with NFS4ERR_OP_ILLEGAL,
// which aborts the whole request, and the node sees "Remote I/O error"
// reading directories of its root. Turning them off costs a read-only
// root little, so it is done whenever a kernel of the image has the
// parameter.
func nfsClientParams(img *fsroot.Root, kernels []string) []string {
	for _, k := range kernels {
		if ok, _ := hasModuleParam(img, k, "nfsv4", "directory_delegations"); ok {
			return []string{"nfsv4.directory_delegations=0"}
		}
	}
	return nil
}

// moduleDirs are where an image keeps its kernels' modules, merged /usr
// first.
var moduleDirs = []string{"usr/lib/modules", "lib/modules"}

// Caps on the kernel files read from an image.
const (
	maxModuleIndex = 64 << 20  // modules.dep, modules.builtin.modinfo: a few MB
	maxModule      = 256 << 20 // one module, uncompressed: a few MB at most
)

// hasModuleParam reports whether kernel k of the image declares the
// parameter for module mod, built in (modules.builtin.modinfo) or as a
// module file, compressed or not.
func hasModuleParam(img *fsroot.Root, k, mod, param string) (bool, error) {
	var dir string
	for _, d := range moduleDirs {
		if img.IsDir(d + "/" + k) {
			dir = d + "/" + k
			break
		}
	}
	if dir == "" {
		return false, fmt.Errorf("node: no modules for kernel %s", k)
	}
	want := "parmtype=" + param + ":"
	if b, err := img.ReadFile(dir+"/modules.builtin.modinfo", maxModuleIndex); err == nil {
		for _, f := range bytes.Split(b, []byte{0}) {
			if strings.HasPrefix(string(f), mod+"."+want) {
				return true, nil
			}
		}
	}
	file, err := findModule(img, dir, mod)
	if err != nil {
		return false, err
	}
	info, err := modinfo(img, file)
	if err != nil {
		return false, err
	}
	for _, f := range info {
		if strings.HasPrefix(f, want) {
			return true, nil
		}
	}
	return false, nil
}

// findModule finds mod's file through modules.dep, as modprobe does, and
// returns its path relative to the image's root.
func findModule(img *fsroot.Root, dir, mod string) (string, error) {
	f, err := img.Open(dir + "/modules.dep")
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxModuleIndex))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p, _, _ := strings.Cut(sc.Text(), ":")
		base := path.Base(p)
		if name, _, ok := strings.Cut(base, ".ko"); ok && strings.ReplaceAll(name, "-", "_") == strings.ReplaceAll(mod, "-", "_") {
			rel, err := fsroot.Clean(dir + "/" + p)
			if err != nil {
				return "", fmt.Errorf("node: %s/modules.dep: %w", dir, err)
			}
			return rel, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("node: %s/modules.dep: %w", dir, err)
	}
	return "", fmt.Errorf("node: module %s is not in %s/modules.dep", mod, dir)
}

// modinfo returns the fields of a module's .modinfo section
// ("parmtype=NAME:TYPE", "depends=...").
func modinfo(img *fsroot.Root, file string) ([]string, error) {
	f, err := img.Open(file)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if ext := path.Ext(file); ext != ".ko" {
		format, err := decompress.ByExt(ext)
		if err != nil {
			return nil, fmt.Errorf("node: module %s: %w", file, err)
		}
		z, err := decompress.NewReader(format, f)
		if err != nil {
			return nil, fmt.Errorf("node: module %s: %w", file, err)
		}
		defer z.Close()
		r = z
	}
	b, err := io.ReadAll(io.LimitReader(r, maxModule+1))
	if err != nil {
		return nil, fmt.Errorf("node: module %s: %w", file, err)
	}
	if len(b) > maxModule {
		return nil, fmt.Errorf("node: module %s: %w: over %d bytes", file, fsroot.ErrTooLarge, maxModule)
	}
	e, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("node: module %s: %w", file, err)
	}
	s := e.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("node: module %s has no .modinfo section", file)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("node: module %s: %w", file, err)
	}
	var out []string
	for _, f := range bytes.Split(data, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out, nil
}
