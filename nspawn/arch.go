package nspawn

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// ImageMachine reads the ELF machine of the image's shell.
func ImageMachine(root string) (elf.Machine, error) {
	for _, p := range []string{"usr/bin/sh", "bin/sh", "usr/bin/dash", "usr/bin/bash", "bin/busybox"} {
		full := filepath.Join(root, p)
		// Resolve the symlink inside the image, not on the host.
		for i := 0; i < 8; i++ {
			t, err := os.Readlink(full)
			if err != nil {
				break
			}
			if strings.HasPrefix(t, "/") {
				full = filepath.Join(root, t)
			} else {
				full = filepath.Join(filepath.Dir(full), t)
			}
		}
		f, err := elf.Open(full)
		if err != nil {
			continue
		}
		defer f.Close()
		return f.Machine, nil
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
