package nspawn

import (
	"debug/elf"
	"fmt"
	"os"
	"runtime"
	"strings"

	"nroot/internal/fsroot"
)

// machines maps ELF machines to the architectures Go and qemu name them.
var machines = map[elf.Machine]struct{ goarch, qemu string }{
	elf.EM_X86_64:    {"amd64", "x86_64"},
	elf.EM_386:       {"386", "i386"},
	elf.EM_AARCH64:   {"arm64", "aarch64"},
	elf.EM_ARM:       {"arm", "arm"},
	elf.EM_PPC64:     {"ppc64le", "ppc64le"},
	elf.EM_S390:      {"s390x", "s390x"},
	elf.EM_RISCV:     {"riscv64", "riscv64"},
	elf.EM_MIPS:      {"mips64le", "mips64el"},
	elf.EM_LOONGARCH: {"loong64", "loongarch64"},
}

// ImageMachine reads the ELF machine of the image's shell, resolved inside
// the image and only if it is a regular file.
func ImageMachine(root string) (elf.Machine, error) {
	r, err := fsroot.Open(root)
	if err != nil {
		return 0, fmt.Errorf("nspawn: %w", err)
	}
	defer r.Close()
	for _, p := range []string{"usr/bin/sh", "bin/sh", "usr/bin/dash", "usr/bin/bash", "bin/busybox"} {
		f, err := r.Open(p)
		if err != nil {
			continue
		}
		e, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			continue
		}
		m := e.Machine
		f.Close()
		return m, nil
	}
	return 0, fmt.Errorf("nspawn: %s has no /bin/sh to run; is it an unpacked root filesystem?", root)
}

// CheckArch fails when the image's binaries cannot run on this host:
// neither native nor through a registered binfmt_misc handler.
func CheckArch(root string) error {
	m, err := ImageMachine(root)
	if err != nil {
		return err
	}
	a, ok := machines[m]
	if !ok {
		return fmt.Errorf("nspawn: %s: unknown ELF machine %v", root, m)
	}
	if a.goarch == runtime.GOARCH || (runtime.GOARCH == "amd64" && a.goarch == "386") || (runtime.GOARCH == "arm64" && a.goarch == "arm") {
		return nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-" + a.qemu); err == nil && strings.HasPrefix(string(b), "enabled") {
		return nil
	}
	return fmt.Errorf("nspawn: %s holds %s binaries and this %s host has no binfmt_misc handler qemu-%s; install qemu-user-binfmt (or run on a %s host)", root, a.qemu, runtime.GOARCH, a.qemu, a.qemu)
}
