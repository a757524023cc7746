package node

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"nroot/internal/decompress"
)

// nfsClientParams are kernel command line parameters the image's NFS
// client needs. Linux 6.19 and later ask NFSv4.1+ servers for directory
// delegations by default; nfs-ganesha before the fix for its issue 1385
// (Debian's 4.3 and 6.x among them) answers with NFS4ERR_OP_ILLEGAL,
// which aborts the whole request, and the node sees "Remote I/O error"
// reading directories of its root. Turning them off costs a read-only
// root little, so it is done whenever a kernel of the image has the
// parameter.
func nfsClientParams(root string, kernels []string) []string {
	for _, k := range kernels {
		if ok, _ := hasModuleParam(root, k, "nfsv4", "directory_delegations"); ok {
			return []string{"nfsv4.directory_delegations=0"}
		}
	}
	return nil
}

// moduleDirs are where an image keeps its kernels' modules, merged /usr
// first.
var moduleDirs = []string{"usr/lib/modules", "lib/modules"}

// hasModuleParam reports whether kernel k of the image declares the
// parameter for module mod, built in (modules.builtin.modinfo) or as a
// module file, compressed or not.
func hasModuleParam(root, k, mod, param string) (bool, error) {
	var dir string
	for _, d := range moduleDirs {
		if fi, err := os.Stat(filepath.Join(root, d, k)); err == nil && fi.IsDir() {
			dir = filepath.Join(root, d, k)
			break
		}
	}
	if dir == "" {
		return false, fmt.Errorf("node: no modules for kernel %s", k)
	}
	want := "parmtype=" + param + ":"
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin.modinfo")); err == nil {
		for _, f := range bytes.Split(b, []byte{0}) {
			if strings.HasPrefix(string(f), mod+"."+want) {
				return true, nil
			}
		}
	}
	file, err := findModule(dir, mod)
	if err != nil {
		return false, err
	}
	info, err := modinfo(file)
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

// findModule finds mod's file through modules.dep, as modprobe does.
func findModule(dir, mod string) (string, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return "", fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		path, _, _ := strings.Cut(sc.Text(), ":")
		base := filepath.Base(path)
		if name, _, ok := strings.Cut(base, ".ko"); ok && strings.ReplaceAll(name, "-", "_") == strings.ReplaceAll(mod, "-", "_") {
			return filepath.Join(dir, path), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("node: %s: %w", filepath.Join(dir, "modules.dep"), err)
	}
	return "", fmt.Errorf("node: module %s is not in %s/modules.dep", mod, dir)
}

// modinfo returns the fields of a module's .modinfo section
// ("parmtype=NAME:TYPE", "depends=...").
func modinfo(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if ext := filepath.Ext(file); ext != ".ko" {
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
	// Modules are a few MB at most; the limit keeps a damaged one from
	// taking more.
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("node: module %s: %w", file, err)
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
