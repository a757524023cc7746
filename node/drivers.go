package node

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"nroot/internal/fsroot"
)

// Initramfs modes (Options.Initrd): the full generic image, every driver
// dracut ships for any machine; or a small one with the drivers nodes
// need alone.
const (
	InitrdFull  = "full"
	InitrdSmall = "small"
)

// InitrdModes are the modes --initrd takes.
var InitrdModes = []string{InitrdFull, InitrdSmall}

// DefaultDrivers are the small image's drivers when none are named:
// QEMU's and KVM's virtio devices (network, disks, console, entropy).
// Those the kernel builds in are skipped.
var DefaultDrivers = []string{"virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_ring", "virtio", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "virtio_console", "virtio_rng"}

// nodeDrivers are in every small image, whatever the hardware: the NFS
// client, the overlay over the root, the root as a squashfs or erofs
// image loop-mounted (dmsquash-live's device-mapper snapshot too), and
// the packet socket dracut's DHCP client needs.
var nodeDrivers = []string{"nfs", "nfsv3", "nfsv4", "overlay", "squashfs", "erofs", "loop", "dm_mod", "dm_snapshot", "af_packet"}

// smallOmitDirs are the module directories whose modules a small image
// leaves out unless named (or needed by one named). With a drivers list
// dracut's kernel-modules installs nothing of its own (no block,
// input, USB, filesystem or crypto drivers), but other dracut modules
// still add theirs: kernel-network-modules every wired NIC driver under
// drivers/net, qemu the ATA and CD-ROM ones, dm every device-mapper
// and RAID target, nfs the RDMA transport and its InfiniBand core.
var smallOmitDirs = []string{
	"kernel/drivers/net/", "kernel/drivers/ata/", "kernel/drivers/scsi/", "kernel/drivers/cdrom/",
	"kernel/drivers/md/", "kernel/drivers/infiniband/", "kernel/net/sunrpc/xprtrdma/",
}

// smallOmitModules are dracut modules a small image leaves out. The
// first are in a trixie node's full image: udev's hardware database
// (13 MB raw, naming and quirks of hardware a node's virtio or named
// devices do not need), resuming from hibernation, a separate /usr
// mounted from the root's fstab, module signing keys, TPM PCR and
// battery checks, SCSI LUN masking, virtiofs roots, QEMU's drivers (the
// drivers list decides) and extra module directories. The rest come in
// only when the image has their programs (--packages): local disks,
// RAID, LVM and encryption, network block storage, consoles and splash,
// debugging and rescue tools, none of which a diskless node's boot uses.
// dmsquash-live needs dm and img-lib, livenet bash: they stay.
var smallOmitModules = []string{
	"hwdb", "nvdimm", "resume", "usrmount", "modsign", "systemd-pcrphase", "systemd-battery-check",
	"lunmask", "virtiofs", "virtfs", "qemu", "qemu-net", "kernel-modules-extra",
	"btrfs", "crypt", "crypt-gpg", "crypt-loop", "dmraid", "lvm", "lvmmerge", "lvmthinpool-monitor", "mdraid", "multipath",
	"systemd-cryptsetup", "systemd-veritysetup", "systemd-integritysetup", "fido2", "tpm2-tss", "pkcs11", "pcsc",
	"iscsi", "nbd", "fcoe", "fcoe-uefi", "nvmf", "cifs",
	"i18n", "plymouth", "drm", "console-setup", "bluetooth", "biosdevname", "rescue", "debug", "memstrack", "systemd-coredump",
}

// shellInitModules are systemd as the initramfs's init and the dracut
// modules that run under it. With the network-legacy handler (dhclient)
// a small image leaves them out and boots with dracut's own shell /init
// (base's init.sh), which runs the same hooks (cmdline, pre-udev,
// initqueue, pre-mount, pre-pivot) that dracut-systemd's units run under
// systemd, with udevd for the devices: on a trixie node they were 1.0 MB
// of the xz image (systemd and libsystemd-core, journald, tmpfiles,
// sysctl, modules-load, sysusers, their units and generators). The other
// handlers, systemd-networkd and NetworkManager, keep systemd.
var shellInitModules = []string{
	"systemd", "systemd-initrd", "dracut-systemd", "systemd-ask-password", "systemd-journald", "systemd-modules-load",
	"systemd-sysctl", "systemd-tmpfiles", "systemd-udevd", "systemd-sysusers", "systemd-emergency", "systemd-ac-power",
	"systemd-creds", "systemd-hostnamed", "systemd-ldconfig", "systemd-pstore", "systemd-repart", "systemd-resolved",
	"systemd-sysext", "systemd-timedated", "systemd-timesyncd", "systemd-portabled", "systemd-bsod",
	"systemd-network-management", "dbus", "dbus-broker", "dbus-daemon", "rngd",
}

// shellInit says whether a small image for dracut d boots with dracut's
// shell /init instead of systemd: with the network-legacy handler.
func shellInit(d Dracut) bool { return d.NetworkHandler == "network-legacy" }

// smallOmitDrivers are kernel modules outside smallOmitDirs that dracut
// modules add for what a node's boot does not do: kernel-network-modules
// the bridge (bridge=), dmsquash-live ISO 9660 (live CDs), nfs NFSv2, the
// pNFS layout drivers (an NFS server that hands out layouts is read
// through it without them until the root's own modules are there) and
// Kerberos for sec=krb5. 0.3 MB of a trixie node's image, as each is
// compressed on its own already.
var smallOmitDrivers = []string{"bridge", "isofs", "nfsv2", "blocklayoutdriver", "nfs_layout_flexfiles", "nfs_layout_nfsv41_files", "rpcsec_gss_krb5"}

// smallPackages are what the small image's compressor needs in the
// root: dracut runs the root's xz, and without it quietly falls back to
// another compressor.
var smallPackages = []string{"xz-utils"}

// smallSkipPackages are base packages a small image's root does without:
// zstd is there for the full image's compressor, and dracut's img-lib
// puts the root's zstd program (1.4 MB, 0.45 MB of the xz image) in
// every image that has livenet.
var smallSkipPackages = []string{"zstd"}

// smallCompress is the small image's compressor, with the x86 filter
// when x86 is set. On a trixie node's 54.7 MB cpio: dracut's zstd -15 gives 21.3 MB, zstd -19 19.1 MB and
// xz -9 17.2 MB, for 15, 48 and 55 s of CPU. The kernel unpacks xz
// (CONFIG_RD_XZ; dracut checks it and falls back otherwise) with CRC32
// checks alone, allocating xz's 64 MiB dictionary while it does. On
// amd64 and i386 xz's x86 branch filter goes first (CONFIG_XZ_DEC_X86,
// built in by Debian and Ubuntu): 4 % smaller again (16.29 to 15.64 MB
// on the shell-init image). nroot's own reader decodes it too
// (internal/decompress), when the host has no xz program.
func smallCompress(x86 bool) string {
	filter := ""
	if x86 {
		filter = " --x86"
	}
	return "xz --check=crc32" + filter + " --lzma2=preset=9 -T0"
}

// x86Arches are the Debian architectures whose code the x86 filter
// knows.
var x86Arches = []string{"amd64", "i386"}

// maxKernelConfig bounds a kernel's boot/config-K (about 300 KB).
const maxKernelConfig = 8 << 20

// decodesX86 says whether every kernel of kvers unpacks an initramfs
// compressed with xz's x86 filter: its boot/config-K has
// CONFIG_XZ_DEC_X86=y. dracut checks CONFIG_RD_XZ alone, so a kernel
// built without the filter (a custom one) would fail to unpack the image
// at boot. A kernel without its config is not trusted with it. Before a
// kernel is installed there is nothing to ask, and the configuration is
// written again once it is.
func decodesX86(img *fsroot.Root, kvers []string) bool {
	for _, k := range kvers {
		b, err := img.ReadFile("boot/config-"+k, maxKernelConfig)
		if err != nil || !slices.Contains(strings.Split(string(b), "\n"), "CONFIG_XZ_DEC_X86=y") {
			return false
		}
	}
	return true
}

// driversConf is the small image's dracut configuration, beside
// nroot's 90-nroot.conf; absent for the full image.
const driversConf = "etc/dracut.conf.d/91-nroot-small.conf"

var moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckDrivers checks kernel module names given for the small image
// (--drivers) before they reach dracut's configuration.
func CheckDrivers(names []string) error {
	for _, n := range names {
		if !moduleName.MatchString(n) {
			return fmt.Errorf("--drivers %q: not a kernel module name (letters, digits, _ and -, at most 64)", n)
		}
	}
	return nil
}

// CheckInitrd checks an --initrd mode.
func CheckInitrd(mode string) error {
	if mode != "" && !slices.Contains(InitrdModes, mode) {
		return fmt.Errorf("--initrd %q: one of %s", mode, strings.Join(InitrdModes, ", "))
	}
	return nil
}

// modName is a module's name as kmod compares it: the file's base name
// without .ko and compression suffix, - as _.
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// kernelModules is one kernel's modules.dep and modules.builtin: each
// loadable module's path and dependencies, by name; built-in names.
type kernelModules struct {
	path    map[string]string
	deps    map[string][]string
	builtin map[string]bool
}

// parseModules reads modules.dep and modules.builtin text.
func parseModules(dep, builtin []byte) (*kernelModules, error) {
	km := &kernelModules{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || mod == "" {
			continue
		}
		n := modName(mod)
		km.path[n] = mod
		for _, d := range strings.Fields(rest) {
			km.deps[n] = append(km.deps[n], modName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	for _, l := range strings.Split(string(builtin), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			km.builtin[modName(l)] = true
		}
	}
	return km, nil
}

func (km *kernelModules) has(n string) bool {
	_, ok := km.path[n]
	return ok || km.builtin[n]
}

// smallDrivers works out, for the kernels' modules, the dracut
// configuration of a small image: the drivers to include (named ones,
// virtio when none are named, and what a node always needs) and those
// under smallOmitDirs or in smallOmitDrivers to omit, which are all
// there but the included ones and their dependencies. A named driver no kernel has is an error.
func smallDrivers(kernels map[string]*kernelModules, named []string) (drivers, omit []string, err error) {
	want := named
	if len(want) == 0 {
		want = DefaultDrivers
	}
	keep := map[string]bool{}
	add := func(n string, mustExist bool) error {
		n = strings.ReplaceAll(n, "-", "_")
		found := false
		for _, km := range kernels {
			if !km.has(n) {
				continue
			}
			found = true
			keep[n] = true
			for _, d := range km.deps[n] {
				keep[d] = true
			}
		}
		if !found && mustExist {
			ks := make([]string, 0, len(kernels))
			for k := range kernels {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			return fmt.Errorf("node: --drivers %s: kernel %s has no such module (modules.dep, modules.builtin); name a module of that kernel", n, strings.Join(ks, ", "))
		}
		if found && !slices.Contains(drivers, n) {
			drivers = append(drivers, n)
		}
		return nil
	}
	for _, n := range want {
		if err := add(n, len(named) > 0); err != nil {
			return nil, nil, err
		}
	}
	for _, n := range nodeDrivers {
		if err := add(n, false); err != nil {
			return nil, nil, err
		}
	}
	seen := map[string]bool{}
	for _, km := range kernels {
		for n, p := range km.path {
			if keep[n] || seen[n] {
				continue
			}
			if slices.Contains(smallOmitDrivers, n) {
				seen[n] = true
				omit = append(omit, n)
				continue
			}
			for _, dir := range smallOmitDirs {
				if strings.HasPrefix(p, dir) {
					seen[n] = true
					omit = append(omit, n)
					break
				}
			}
		}
	}
	sort.Strings(omit)
	return drivers, omit, nil
}

// smallConfig is what the small image's dracut.conf.d file says.
type smallConfig struct {
	Drivers, Omit []string // kernel modules to include, to leave out
	ShellInit     bool     // leave systemd out: dracut's shell /init
	X86           bool     // xz's x86 filter before LZMA2
}

// driversConfText renders the small image's dracut.conf.d file.
func driversConfText(c smallConfig) string {
	var b strings.Builder
	b.WriteString(`# Written by nroot node --initrd=small: the drivers nodes need and no
# others. dracut's drivers list is exclusive (kernel-modules installs none
# of its own); the NIC drivers kernel-network-modules would add are omitted
# but for those named and their dependencies.
`)
	fmt.Fprintf(&b, "drivers+=\" %s \"\n", strings.Join(c.Drivers, " "))
	b.WriteString("# dracut modules a diskless node's boot does not use (nroot node --help).\n")
	writeList(&b, "omit_dracutmodules", smallOmitModules, 12)
	if c.ShellInit {
		b.WriteString("# The network-legacy handler needs no systemd: dracut's shell /init runs\n# the same hooks.\n")
		writeList(&b, "omit_dracutmodules", shellInitModules, 12)
	}
	b.WriteString(`# The root is NFS, an overlay or a loop-mounted image: nothing to fsck.
nofscks="yes"
`)
	fmt.Fprintf(&b, "compress=%q\n", smallCompress(c.X86))
	// One line per 16 names keeps the file readable.
	writeList(&b, "omit_drivers", c.Omit, 16)
	return b.String()
}

// writeList writes names as dracut.conf list lines of key, per names to
// a line.
func writeList(b *strings.Builder, key string, names []string, per int) {
	for i := 0; i < len(names); i += per {
		fmt.Fprintf(b, "%s+=\" %s \"\n", key, strings.Join(names[i:min(i+per, len(names))], " "))
	}
}

// readKernelModules reads the modules.dep and modules.builtin of each
// kernel installed in img.
func readKernelModules(img *fsroot.Root, kvers []string) (map[string]*kernelModules, error) {
	out := map[string]*kernelModules{}
	for _, k := range kvers {
		var dir string
		for _, d := range moduleDirs {
			if img.IsDir(d + "/" + k) {
				dir = d + "/" + k
				break
			}
		}
		if dir == "" {
			return nil, fmt.Errorf("node: no modules for kernel %s", k)
		}
		dep, err := img.ReadFile(dir+"/modules.dep", maxModuleIndex)
		if err != nil {
			return nil, fmt.Errorf("node: kernel %s: %w", k, err)
		}
		builtin, _ := img.ReadFile(dir+"/modules.builtin", maxModuleIndex)
		km, err := parseModules(dep, builtin)
		if err != nil {
			return nil, fmt.Errorf("node: kernel %s: %w", k, err)
		}
		out[k] = km
	}
	return out, nil
}

// writeDriversConf writes (small) or removes (full) the small image's
// dracut configuration for the kernels installed in img and the image's
// dracut d, and says whether the file changed. Before a kernel is
// installed the small configuration names the drivers alone; it is
// written again, with the omitted NIC drivers, once the kernel is there.
func writeDriversConf(img *fsroot.Root, o Options, d Dracut) (bool, error) {
	old, _ := img.ReadFile(driversConf, maxSmallFile)
	if o.Initrd != InitrdSmall {
		if !img.Exists(driversConf) {
			return false, nil
		}
		if err := img.Remove(driversConf); err != nil {
			return false, fmt.Errorf("node: %w", err)
		}
		return true, nil
	}
	kvers, err := kernels(img)
	if err != nil {
		kvers = nil
	}
	c := smallConfig{ShellInit: shellInit(d), X86: slices.Contains(x86Arches, imageArch(img)) && decodesX86(img, kvers)}
	if len(kvers) > 0 {
		km, err := readKernelModules(img, kvers)
		if err != nil {
			return false, err
		}
		if c.Drivers, c.Omit, err = smallDrivers(km, o.Drivers); err != nil {
			return false, err
		}
	} else {
		c.Drivers = append(slices.Clone(o.Drivers), nodeDrivers...)
		if len(o.Drivers) == 0 {
			c.Drivers = append(slices.Clone(DefaultDrivers), nodeDrivers...)
		}
	}
	text := driversConfText(c)
	if string(old) == text {
		return false, nil
	}
	return true, writeFile(img, driversConf, text, 0o644)
}

// nodePackages are the packages the node stage asks apt for beside the
// kernel: basePackages (but smallSkipPackages for a small image), the
// small image's own, and --packages.
func nodePackages(o Options) (base, extra []string) {
	if o.Initrd != InitrdSmall {
		return basePackages, o.Packages
	}
	for _, p := range basePackages {
		if !slices.Contains(smallSkipPackages, p) {
			base = append(base, p)
		}
	}
	return base, append(slices.Clone(o.Packages), smallPackages...)
}

// CheckInitrdOptions checks Options.Initrd and Options.Drivers, as the
// command line gives them.
func CheckInitrdOptions(o Options) error {
	if err := CheckInitrd(o.Initrd); err != nil {
		return err
	}
	if len(o.Drivers) > 0 && o.Initrd != InitrdSmall {
		return fmt.Errorf("--drivers %s: only the small initramfs takes a drivers list; add --initrd=small", strings.Join(o.Drivers, ","))
	}
	return CheckDrivers(o.Drivers)
}

// kernelInstall is the command that installs the kernel. The small
// image's configuration needs the installed kernel's modules.dep, so its
// postinst is told not to build an image (INITRD=No, which Debian's and
// Ubuntu's kernel hooks honour) that would be built again right after.
func kernelInstall(o Options, argv []string) []string {
	if o.Initrd != InitrdSmall {
		return argv
	}
	return append([]string{"env", "INITRD=No"}, argv...)
}
