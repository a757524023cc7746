// Package node turns a root filesystem into a diskless node image: a
// kernel, a dracut initramfs that mounts the root over NFS with a writable
// overlay, the kernel command line that boots it, and an identity that a
// hundred nodes can share.
package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nroot/build/nspawn"
	"nroot/format/control"
	"nroot/internal/fsroot"
	"nroot/internal/progress"
	"nroot/node/dracut"

	"pault.ag/go/debian/version"
)

// Options control Build.
type Options struct {
	Kernel       string   // kernel package; default linux-image-ARCH
	RootPassword string   // set root's password when not empty
	SSHKeys      []string // authorized_keys lines for root
	Packages     []string // extra packages to install
	Upgrade      bool     // apt-get upgrade before installing
	Kver         string   // build the initramfs for this kernel only
	Hostname     string   // write /etc/hostname (all nodes will share it)
	E2EProbe     bool     // install the end-to-end probe unit
	CacheDir     string   // apt package cache bound into the image
	// Initrd is the initramfs mode: InitrdFull (the default, every
	// driver) or InitrdSmall (Drivers, virtio when none, and what a
	// node needs: NFS, overlay, squashfs, erofs, loop).
	Initrd  string
	Drivers []string // the small image's NIC and storage drivers
	// Log receives the step lines and, one record per line, what apt
	// and dracut print in the image (progress.Output).
	Log *slog.Logger
}

// Result is what Build made.
type Result struct {
	Kernels []Kernel `json:"kernels"`
	Cmdline string   `json:"cmdline"`
	// ImageCmdline boots the root from an image file (nroot fsimage)
	// instead of the tree: IMAGEURL is root=live:'s nfs4:SERVER:/PATH/FILE or http://
	// URL, filled in by nroot export.
	ImageCmdline string  `json:"image_cmdline"`
	Dracut       Dracut  `json:"dracut"`
	Checks       []Check `json:"checks"`
}

// Kernel is one installed kernel and its initramfs.
type Kernel struct {
	Version string `json:"version"`
	Vmlinuz string `json:"vmlinuz"`
	Initrd  string `json:"initrd"`
}

// Dracut describes the image's dracut and the choices made for it.
type Dracut struct {
	Version        string `json:"version"`
	NetworkHandler string `json:"network_handler"`
	OverlayModule  string `json:"overlay_module"`
	OverlayParam   string `json:"overlay_param"`
}

// State records the node options that Check needs to judge the image,
// and the choices a later node stage on a copy of it (nroot image update)
// makes again.
type State struct {
	Hostname bool     `json:"hostname_requested"`
	Cmdline  string   `json:"cmdline"`
	Kernels  []string `json:"kernels"`
	Choices  Choices  `json:"choices"`
}

// Choices are the node stage's options that shape the image, as given:
// recorded in the image so that an update replays them. Secrets (the
// root password) and what is already written into the root (SSH keys)
// are not among them.
type Choices struct {
	Kernel   string   `json:"kernel,omitempty"`
	Kver     string   `json:"kver,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Packages []string `json:"packages"`
	E2EProbe bool     `json:"e2e_probe,omitempty"`
	Initrd   string   `json:"initrd,omitempty"`
	Drivers  []string `json:"drivers,omitempty"`
}

// Apply fills o's unset choices with c's (a flag given again wins) and
// adds c's packages to o's. A recorded --kver is not replayed with
// Upgrade: an upgrade that brings a new kernel ABI boots it, as it would
// without the pin; give Kver again to keep the old one.
func (c Choices) Apply(o Options) Options {
	if o.Kernel == "" {
		o.Kernel = c.Kernel
	}
	if o.Kver == "" && !o.Upgrade {
		o.Kver = c.Kver
	}
	if o.Hostname == "" {
		o.Hostname = c.Hostname
	}
	o.E2EProbe = o.E2EProbe || c.E2EProbe
	if o.Initrd == "" {
		o.Initrd = c.Initrd
	}
	if o.Drivers == nil && o.Initrd == c.Initrd {
		o.Drivers = c.Drivers
	}
	pkgs := slices.Clone(c.Packages)
	for _, p := range o.Packages {
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	o.Packages = pkgs
	return o
}

// ReadState reads what the node stage recorded in root.
func ReadState(root string) (*State, error) {
	img, err := fsroot.Open(root)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer img.Close()
	b, err := img.ReadFile(stateFile, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w; run nroot node on it", stateFile, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("node: %s/%s: %w", root, stateFile, err)
	}
	if st.Choices.Packages == nil {
		st.Choices.Packages = []string{}
	}
	return &st, nil
}

const (
	stateFile   = "etc/nroot/node.json"
	cmdlineFile = CmdlineFile
	liveCmdFile = ImageCmdlineFile
	dracutConf  = "etc/dracut.conf.d/90-nroot.conf"
)

// The boot lines the node stage writes into a root, SERVER and /PATH
// (and IMAGEURL) left for the server side to fill in.
const (
	CmdlineFile      = "boot/nroot-cmdline"       // the root over NFS
	ImageCmdlineFile = "boot/nroot-cmdline-image" // the root from an image file
)

// ErrNotBuilt: the root has no boot line; the node stage did not run.
var ErrNotBuilt = errors.New("the node stage did not run on it")

// Built is what the node stage left in a root for the server side.
type Built struct {
	Kernels      []string // installed, newest last
	Cmdline      string   // CmdlineFile's line
	ImageCmdline string   // ImageCmdlineFile's line; "" when there is none
}

// ReadBuilt reads what the node stage left in img; ErrNotBuilt when it
// has no boot line.
func ReadBuilt(img *fsroot.Root) (*Built, error) {
	b, err := img.ReadFile(CmdlineFile, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("%s has no %s: %w; run nroot node %s first", img.Path, CmdlineFile, ErrNotBuilt, img.Path)
	}
	kvers, err := kernels(img)
	if err != nil {
		return nil, err
	}
	out := &Built{Kernels: kvers, Cmdline: strings.TrimSpace(string(b))}
	if b, err := img.ReadFile(ImageCmdlineFile, maxSmallFile); err == nil {
		out.ImageCmdline = strings.TrimSpace(string(b))
	}
	return out, nil
}

// DracutVersion is the version of the root's dracut (or dracut-core),
// "" when its dpkg database does not say.
func DracutVersion(img *fsroot.Root) string {
	st, err := dpkgStatus(img)
	if err != nil {
		return ""
	}
	return dracutVersion(st)
}

func dracutVersion(st map[string]*control.Paragraph) string {
	for _, p := range []string{"dracut-core", "dracut"} {
		if pk, ok := st[p]; ok {
			return pk.Get("Version")
		}
	}
	return ""
}

// basePackages are what an NFS-root boot needs beside the kernel: dracut
// and its network modules, an init and udev (a minbase image has
// neither, and dracut's systemd-initrd needs them), the NFS client; dbus
// lets dracut's systemd-networkd module in, and without zstd dracut
// quietly ignores compress="zstd" and uses gzip.
// dracut-live (dmsquash-live, livenet) and curl boot the root from an
// image file instead: loop-mounted from NFS, or fetched over HTTP.
var basePackages = []string{"dracut", "dracut-network", "dracut-live", "curl", "systemd-sysv", "udev", "nfs-common", "dbus", "zstd"}

// legacyNetwork are what dracut's network-legacy module checks for (ip,
// dhclient, pgrep, arping): the handler that keeps the root's network up
// across switch-root (systemd-networkd in the initramfs was seen to drop
// it on trixie, EIO on /sbin/init, and never to finish on bookworm). A
// minbase image lacks procps, and without pgrep dracut silently falls
// back to systemd-networkd. Distributions that dropped isc-dhcp-client
// get another handler.
var legacyNetwork = []string{"isc-dhcp-client", "iproute2", "procps", "iputils-arping"}

// legacyBinaries are the programs network-legacy's check requires.
var legacyBinaries = [][]string{
	{"usr/sbin/dhclient", "sbin/dhclient"}, {"usr/bin/ip", "usr/sbin/ip", "bin/ip", "sbin/ip"},
	{"usr/bin/pgrep", "bin/pgrep"}, {"usr/bin/arping", "usr/sbin/arping", "bin/arping", "sbin/arping"},
}

// MissingPackagesError says apt cannot install what a node needs; the
// image was not changed.
type MissingPackagesError struct {
	Root     string
	Packages []string
	Apt      string // apt's own complaint
}

func (e *MissingPackagesError) Error() string {
	return fmt.Sprintf("node: %s cannot get what a node needs (%s); nothing was installed:\n%s\ncheck the image's APT sources (Ubuntu's dracut is in universe), or pass --kernel NAME for another kernel", e.Root, strings.Join(e.Packages, " "), e.Apt)
}

// plan asks apt, without changing anything, whether the node's packages
// and the kernel can be installed, with the DHCP client where the
// distribution still has it; it returns the packages to install before
// the kernel.
func plan(ctx context.Context, r *nspawn.Runner, kernel string, base, extra []string) ([]string, error) {
	pkgs := append(slices.Clone(base), extra...)
	simulate := func(list []string) error {
		return runTo(ctx, r, nil, append([]string{"apt-get", "-s", "-q", "--no-install-recommends", "install"}, list...)...)
	}
	with := append(append([]string{}, pkgs...), legacyNetwork...)
	if simulate(append(with, kernel)) == nil {
		return with, nil
	}
	err := simulate(append(pkgs, kernel))
	if err == nil {
		return pkgs, nil
	}
	var ee *nspawn.ExitError
	msg := err.Error()
	if errors.As(err, &ee) {
		var lines []string
		for _, l := range strings.Split(ee.Output, "\n") {
			if strings.HasPrefix(l, "E:") || strings.Contains(l, "Depends:") {
				lines = append(lines, "  "+strings.TrimSpace(l))
			}
		}
		if len(lines) > 0 {
			msg = strings.Join(lines, "\n")
		}
	}
	return nil, &MissingPackagesError{Root: r.Root, Packages: append(pkgs, kernel), Apt: msg}
}

// leftState says what a failed node stage left behind, from dpkg --audit,
// and how to go on.
func leftState(ctx context.Context, r *nspawn.Runner, root string) string {
	var out strings.Builder
	runTo(ctx, r, &out, "dpkg", "--audit")
	audit := strings.TrimSpace(out.String())
	if audit == "" {
		audit = "dpkg --audit finds nothing half-done"
	}
	return fmt.Sprintf("the image %s was changed and is not a node: %s\nrecover with: nroot run %s -- dpkg --configure -a, then nroot node %s again (or rebuild it with nroot bootstrap)", root, firstLines(audit, 6), root, root)
}

// runTo runs argv in the image with its output going to w alone (nil:
// only kept for the error), not to the stage's log.
func runTo(ctx context.Context, r *nspawn.Runner, w io.Writer, argv ...string) error {
	saveOut, saveErr := r.Stdout, r.Stderr
	r.Stdout, r.Stderr = w, w
	defer func() { r.Stdout, r.Stderr = saveOut, saveErr }()
	return r.Run(ctx, argv...)
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("(%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "; ")
}

// unwantedPackages do not belong on a diskless node: snapd mounts loop
// images and refreshes itself over the shared root, cloud-init would
// reconfigure every node from a datasource it does not have.
var unwantedPackages = []string{"snapd", "cloud-init"}

const noSnapPrefs = "etc/apt/preferences.d/nroot-node"

// noSnapPinning keeps them out of later installs too, as Ubuntu's own
// advice for blocking snapd does.
var noSnapPinning = "# Written by nroot node: a diskless node runs neither snaps nor cloud-init.\nPackage: " +
	strings.Join(unwantedPackages, " ") + "\nPin: release a=*\nPin-Priority: -1\n"

// installedOf lists which of names the image has installed.
func installedOf(img *fsroot.Root, names []string) []string {
	st, err := dpkgStatus(img)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if _, ok := st[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// Build installs the kernel and dracut inside root with systemd-nspawn,
// configures dracut for a generic NFS-root image with an overlay, builds
// the initramfs for each kernel and verifies it, writes the kernel command
// line to ROOT/boot/nroot-cmdline and fixes the node identity.
func Build(ctx context.Context, root string, o Options) (_ *Result, err error) {
	img, err := fsroot.Open(root)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer img.Close()
	if !img.IsRegular("var/lib/dpkg/status") {
		return nil, fmt.Errorf("node: %s is not a Debian or Ubuntu root filesystem (no var/lib/dpkg/status); make one with nroot bootstrap", root)
	}
	if err := CheckInitrdOptions(o); err != nil {
		return nil, err
	}
	r, err := nspawn.New(root)
	if err != nil {
		return nil, err
	}
	r.DNS = true
	// dpkg syncs every file it unpacks (the kernel's 4,000 modules) and
	// its database for every state it records, dracut its image: here
	// those syncs do nothing (NoSync), and the tree is written back once
	// when the stage ends, whatever the outcome, as bootstrap does.
	r.NoSync = true
	defer func() {
		if serr := img.Sync(); serr != nil && err == nil {
			err = fmt.Errorf("node: %w", serr)
		}
	}()
	out := progress.Output(o.Log, "node")
	defer out.Flush()
	r.Stdout, r.Stderr = out, out
	if o.CacheDir != "" {
		if err := r.BindPackageCache(o.CacheDir); err != nil {
			return nil, err
		}
	}
	kernel := o.Kernel
	if kernel == "" {
		kernel, err = defaultKernel(img)
		if err != nil {
			return nil, err
		}
	}
	b := &builder{img: img, r: r, o: o, root: root}
	run := func(step string, argv ...string) error { return b.run(ctx, step, argv...) }
	apt := []string{"apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "--no-install-recommends", "install"}
	// Without the descriptions' translations (Translation-en, 6 of a
	// bookworm update's 16 MB): nothing the node stage does reads them,
	// and its lists are removed when it ends.
	if err := run("apt-get update", "apt-get", "-q", "-o", "Acquire::Languages=none", "update"); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w\nnroot needs the image's APT sources to reach a mirror; check %s/etc/apt/sources.list.d", err, root)
	}
	// Everything is asked of apt first, without changing anything (but
	// apt's lists): an image that cannot become a node is refused as it is.
	base, extra := nodePackages(o)
	pkgs, err := plan(ctx, r, kernel, base, extra)
	if err != nil {
		return nil, err
	}
	// From here on the image changes; a failure says in what state.
	failed := func(err error) error { return fmt.Errorf("%w\n%s", err, leftState(ctx, r, root)) }
	if err := writeFile(img, noSnapPrefs, noSnapPinning, 0o644); err != nil {
		return nil, err
	}
	if unwanted := installedOf(img, unwantedPackages); len(unwanted) > 0 {
		if err := run("removing "+strings.Join(unwanted, " "), append([]string{"apt-get", "-y", "-q", "purge"}, unwanted...)...); err != nil {
			return nil, failed(err)
		}
	}
	if o.Upgrade {
		up := append(slices.Clone(apt[:len(apt)-1]), "upgrade")
		if err := run("apt-get upgrade", up...); err != nil {
			return nil, failed(err)
		}
	}
	if err := run("installing "+strings.Join(pkgs, " "), append(apt, pkgs...)...); err != nil {
		return nil, failed(err)
	}
	d, err := detectDracut(img)
	if err != nil {
		return nil, err
	}
	if err := writeDracutConf(img, d); err != nil {
		return nil, err
	}
	if _, err := writeDriversConf(img, o, d); err != nil {
		return nil, err
	}
	env, removeHelper, err := installLddHelper(img)
	if err != nil {
		return nil, failed(err)
	}
	defer removeHelper()
	r.Env = append(r.Env, env...)
	// With the configuration in place, the kernel's postinst builds the
	// initramfs through /etc/kernel/postinst.d/dracut.
	confTime := time.Now()
	if err := run("installing "+kernel, kernelInstall(o, append(apt, kernel))...); err != nil {
		// apt found the package (plan asked): its scripts failed.
		return nil, failed(fmt.Errorf("%w\nthe kernel %s installed but its scripts failed, most often building the initramfs (dracut's output is above)", err, kernel))
	}
	// The small image's omitted drivers come from the installed
	// kernels' modules: when they changed it, dracut runs again.
	if changed, err := writeDriversConf(img, o, d); err != nil {
		return nil, err
	} else if changed {
		confTime = time.Now()
	}
	kvers, err := b.bootKernels()
	if err != nil {
		return nil, err
	}
	res, err := b.initramfs(ctx, d, kvers, confTime)
	if err != nil {
		return nil, err
	}
	if err := b.finish(ctx, res, kvers); err != nil {
		if res.Checks != nil { // a node check failed: the result says which
			return res, err
		}
		return nil, err
	}
	return res, nil
}

// builder is one Build: the image, the runner inside it, the options.
type builder struct {
	img  *fsroot.Root
	r    *nspawn.Runner
	o    Options
	root string
}

// run runs one step inside the image, saying it first.
func (b *builder) run(ctx context.Context, step string, argv ...string) error {
	b.o.info(step)
	if err := b.r.Run(ctx, argv...); err != nil {
		return fmt.Errorf("node: %s: %w", step, err)
	}
	return nil
}

// bootKernels is the installed kernels to build initramfs images for,
// oldest first: all of them, or --kver's alone.
func (b *builder) bootKernels() ([]string, error) {
	kvers, err := kernels(b.img)
	if err != nil {
		return nil, err
	}
	if b.o.Kver == "" {
		return kvers, nil
	}
	if !contains(kvers, b.o.Kver) {
		return nil, fmt.Errorf("node: --kver %s is not installed in %s (installed: %s)", b.o.Kver, b.root, strings.Join(kvers, ", "))
	}
	if newest := kvers[len(kvers)-1]; newest != b.o.Kver {
		b.o.info(fmt.Sprintf("--kver %s: the initramfs is built for it alone, and the newer kernel %s, also installed, is not booted", b.o.Kver, newest))
	}
	return []string{b.o.Kver}, nil
}

// initramfs makes sure each kernel has an initramfs built with nroot's
// configuration (the kernel's postinst built it after confTime, or dracut
// runs now), verifies it, and writes the command lines that boot it.
func (b *builder) initramfs(ctx context.Context, d Dracut, kvers []string, confTime time.Time) (*Result, error) {
	res := &Result{Dracut: d}
	for _, k := range kvers {
		rel := "boot/initrd.img-" + k
		if st, err := b.img.Lstat(rel); err != nil || time.Unix(st.Mtim.Unix()).Before(confTime) {
			if err := b.run(ctx, "dracut for "+k, "dracut", "--force", "--kver", k, "/"+rel); err != nil {
				return nil, err
			}
		}
		if err := verifyInitrd(b.img, k); err != nil {
			return nil, err
		}
		res.Kernels = append(res.Kernels, Kernel{Version: k, Vmlinuz: "/boot/vmlinuz-" + k, Initrd: "/boot/initrd.img-" + k})
	}
	res.Cmdline = Cmdline(d, nfsClientParams(b.img, kvers)...)
	res.ImageCmdline = ImageCmdline(d, nfsClientParams(b.img, kvers)...)
	if err := writeFile(b.img, cmdlineFile, res.Cmdline+"\n", 0o644); err != nil {
		return nil, err
	}
	if err := writeFile(b.img, liveCmdFile, res.ImageCmdline+"\n", 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// finish sets root's password, leaves the root identity-neutral, installs
// the probe, cleans apt's lists, records the choices, and runs the node
// checks into res.
func (b *builder) finish(ctx context.Context, res *Result, kvers []string) error {
	img, r, o := b.img, b.r, b.o
	run := func(step string, argv ...string) error { return b.run(ctx, step, argv...) }
	if o.RootPassword != "" {
		r.Stdin = strings.NewReader("root:" + o.RootPassword + "\n")
		err := run("setting root's password", "chpasswd")
		r.Stdin = nil
		if err != nil {
			return err
		}
	}
	if err := writeIdentity(img, o); err != nil {
		return err
	}
	if o.E2EProbe {
		if err := installProbe(img); err != nil {
			return err
		}
	}
	if err := run("cleaning apt's lists", "sh", "-c", "apt-get clean && rm -rf /var/lib/apt/lists/*_*"); err != nil {
		return err
	}
	st := State{Hostname: o.Hostname != "", Cmdline: res.Cmdline, Kernels: kvers,
		Choices: Choices{Kernel: o.Kernel, Kver: o.Kver, Hostname: o.Hostname, Packages: append([]string{}, o.Packages...), E2EProbe: o.E2EProbe, Initrd: o.Initrd, Drivers: o.Drivers}}
	doc, _ := json.MarshalIndent(st, "", "  ")
	if err := writeFile(img, stateFile, string(doc)+"\n", 0o644); err != nil {
		return err
	}
	var verified []string
	for _, k := range res.Kernels {
		verified = append(verified, k.Version)
	}
	res.Checks = checks(img, verified...)
	for _, c := range res.Checks {
		if !c.Passed() {
			return fmt.Errorf("node: check %s failed: %s", c.Name, c.Detail)
		}
	}
	return nil
}

// info logs one of the node stage's own lines.
func (o Options) info(msg string) {
	if o.Log != nil {
		o.Log.Info(msg, "stage", "node")
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

// Caps on what is read of an image: its files are the image's word, and
// it may have left a device or a huge file where a small one belongs.
const (
	maxSmallFile  = 1 << 20   // arch, os-release, fstab, machine-id, hostname, cmdline, state
	maxDpkgStatus = 256 << 20 // the dpkg status file of a large image is a few MB
)

// imageArch is the image's Debian architecture: dpkg's arch file, else
// the dpkg package's; "" when neither says.
func imageArch(img *fsroot.Root) string {
	if b, err := img.ReadFile("var/lib/dpkg/arch", maxSmallFile); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			return f[0]
		}
	}
	if st, err := dpkgStatus(img); err == nil {
		if p := st["dpkg"]; p != nil {
			return p.Get("Architecture")
		}
	}
	return ""
}

// defaultKernel is the kernel metapackage for the image's architecture.
func defaultKernel(img *fsroot.Root) (string, error) {
	arch := imageArch(img)
	flavour := map[string]string{"amd64": "amd64", "arm64": "arm64", "i386": "686-pae", "armhf": "armmp", "ppc64el": "powerpc64le", "s390x": "s390x", "riscv64": "riscv64"}[arch]
	if flavour == "" {
		return "", fmt.Errorf("node: no default kernel for architecture %q; pass --kernel", arch)
	}
	if origin, _ := img.ReadFile("etc/os-release", maxSmallFile); bytes.Contains(origin, []byte("ID=ubuntu")) {
		// virtual: the generic kernel with linux-modules only (no
		// -extra), which has virtio-net, NFS and overlayfs.
		return "linux-image-virtual", nil
	}
	return "linux-image-" + flavour, nil
}

// dpkgStatus reads the image's installed packages.
func dpkgStatus(img *fsroot.Root) (map[string]*control.Paragraph, error) {
	f, err := img.Open("var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("node: dpkg status: %w", err)
	}
	defer f.Close()
	ps, err := control.ReadAll(io.LimitReader(f, maxDpkgStatus))
	if err != nil {
		return nil, fmt.Errorf("%s: dpkg status: %w", img.Path, err)
	}
	out := map[string]*control.Paragraph{}
	for _, p := range ps {
		if strings.HasSuffix(p.Get("Status"), " installed") {
			out[p.Get("Package")] = p
		}
	}
	return out, nil
}

// Kernels lists the kernel versions installed in root, from its
// /lib/modules and /boot, never from the host.
func Kernels(root string) ([]string, error) {
	img, err := fsroot.Open(root)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer img.Close()
	return kernels(img)
}

func kernels(img *fsroot.Root) ([]string, error) {
	var out []string
	for _, dir := range moduleDirs {
		names, err := img.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, k := range names {
			if img.IsRegular("boot/vmlinuz-"+k) && !contains(out, k) {
				out = append(out, k)
			}
		}
	}
	SortKernels(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("node: %s has no kernel (no /boot/vmlinuz-K with /lib/modules/K); install one with --kernel", img.Path)
	}
	return out, nil
}

// SortKernels orders kernel release names (6.1.0-9-amd64, 6.8.0-45-generic)
// oldest first, as Debian versions compare, so that 6.1.0-10 sorts after
// 6.1.0-9; the last is the newest. A name that is not a Debian version
// sorts before those that are, by its text.
func SortKernels(k []string) {
	slices.SortStableFunc(k, CompareKernels)
}

// CompareKernels compares two kernel release names as Debian versions.
func CompareKernels(a, b string) int {
	va, ea := version.Parse(a)
	vb, eb := version.Parse(b)
	switch {
	case ea == nil && eb == nil:
		if c := version.Compare(va, vb); c != 0 {
			return c
		}
	case ea == nil:
		return 1
	case eb == nil:
		return -1
	}
	return strings.Compare(a, b)
}

// detectDracut finds the image's dracut flavour and what it supports.
func detectDracut(img *fsroot.Root) (Dracut, error) {
	st, err := dpkgStatus(img)
	if err != nil {
		return Dracut{}, err
	}
	d := Dracut{Version: dracutVersion(st)}
	mods, err := dracutModules(img)
	if err != nil {
		return d, err
	}
	switch {
	case mods["network-legacy"] && hasAll(img, legacyBinaries):
		d.NetworkHandler = "network-legacy"
	case mods["systemd-networkd"] && exists(img, "usr/lib/systemd/systemd-networkd", "lib/systemd/systemd-networkd"):
		d.NetworkHandler = "systemd-networkd"
	case mods["network-manager"] && exists(img, "usr/sbin/NetworkManager"):
		d.NetworkHandler = "network-manager"
	default:
		return d, fmt.Errorf("node: dracut %s in %s has no usable network module (systemd-networkd, network-manager or network-legacy); install dracut-network and systemd or network-manager", d.Version, img.Path)
	}
	major := DracutMajor(d.Version)
	switch {
	case mods["overlay-root"]:
		// Debian's dracut 059 ignores rd.live.overlay.overlayfs on an
		// NFS root; its own overlay-root module is what works.
		d.OverlayModule, d.OverlayParam = "overlay-root", "rootovl"
	case mods["overlayfs"] && major >= 110:
		d.OverlayModule, d.OverlayParam = "overlayfs", "rd.overlay"
	case mods["overlayfs"]:
		d.OverlayModule, d.OverlayParam = "overlayfs", "rd.live.overlay.overlayfs=1"
	default:
		return d, fmt.Errorf("node: dracut %s in %s has neither the overlay-root nor the overlayfs module, so the root cannot be made writable", d.Version, img.Path)
	}
	if !mods["nfs"] {
		return d, fmt.Errorf("node: dracut %s in %s has no nfs module; install dracut-network", d.Version, img.Path)
	}
	return d, nil
}

// MinImageDracut is the oldest dracut whose image-mode boots were seen
// to work: proven from 059 on; jammy's 051 was seen to attach the image
// and then fail at switch-root.
const MinImageDracut = 59

// DracutMajor is the major number of a dracut version: 59 of 059-4.
func DracutMajor(v string) int {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// hasAll reports whether the image has one of each group of paths.
func hasAll(img *fsroot.Root, groups [][]string) bool {
	for _, g := range groups {
		if !exists(img, g...) {
			return false
		}
	}
	return true
}

// exists reports whether any of rels resolves, inside the image, to
// something.
func exists(img *fsroot.Root, rels ...string) bool {
	for _, r := range rels {
		if img.Exists(r) {
			return true
		}
	}
	return false
}

// dracutModules lists the image's dracut module names (modules.d/NNname).
func dracutModules(img *fsroot.Root) (map[string]bool, error) {
	out := map[string]bool{}
	for _, dir := range []string{"usr/lib/dracut/modules.d", "lib/dracut/modules.d"} {
		names, err := img.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, n := range names {
			if len(n) > 2 && n[0] >= '0' && n[0] <= '9' && n[1] >= '0' && n[1] <= '9' {
				out[n[2:]] = true
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node: %s has no dracut modules; is dracut installed?", img.Path)
	}
	return out, nil
}

// writeDracutConf makes the image's initramfs generic (any node, not the
// build host) and gives it what an NFS root with an overlay needs.
func writeDracutConf(img *fsroot.Root, d Dracut) error {
	if err := writeFile(img, identityModuleDir+"/module-setup.sh", identityModuleSetup, 0o755); err != nil {
		return err
	}
	if err := writeFile(img, identityModuleDir+"/nroot-identity.sh", identityHook, 0o755); err != nil {
		return err
	}
	return writeFile(img, dracutConf, dracutConfText(d), 0o644)
}

// dracutConfText is 90-nroot.conf for the image's dracut.
func dracutConfText(d Dracut) string {
	return fmt.Sprintf(`# Written by nroot node: a generic initramfs that mounts the root over NFS
# and puts a writable overlay over it.
hostonly="no"
hostonly_cmdline="no"
# zstd: Debian kernels unpack it, and it is several times faster to build
# than dracut's default gzip -9. Level 10 rather than dracut's 15: on a
# bookworm node's 201 MB cpio, 3.5 s against 19.8 s on two cores, for an
# image 0.8 %% larger (50.71 against 50.32 MB).
compress="zstd -10 -q -T0"
add_dracutmodules+=" base network %s nfs %s nroot-identity "
# The root as an image file: livenet fetches or mounts it (root=live:URL),
# dmsquash-live loop-mounts it with an overlay on tmpfs.
add_dracutmodules+=" dmsquash-live livenet "
%sadd_drivers+=" nfs nfsv3 nfsv4 overlay squashfs loop "
`, d.NetworkHandler, d.OverlayModule, omitOthers(d.NetworkHandler))
}

// identityModuleDir is the dracut module that gives a node its own
// identity: the files of the per-node initramfs segment (nroot identity)
// that the boot loader loads after the shared initramfs.
const identityModuleDir = "usr/lib/dracut/modules.d/95nroot-identity"

const identityModuleSetup = `#!/bin/bash
# Written by nroot node: places a node's identity (hostname, machine-id,
# SSH host keys) and overlays from its own initramfs segment in the root.
check() { return 255; }
depends() { return 0; }
install() {
    inst_multiple cp rm mv mkdir chmod chown find tr
    inst_multiple -o ip
    # After the overlay is mounted over the NFS root (overlay-root and
    # overlayfs mount it at pre-pivot 10), so the files land in the
    # node's writable layer and never in the shared image.
    inst_hook pre-pivot 50 "$moddir/nroot-identity.sh"
}
`

// identityHook places the segment's files in the root one by one: cp -a
// of the whole tree gave the root's existing directories (/etc, /root)
// the segment's modes and owners, and followed or died on a symlink
// where the segment has a directory. nroot_identity_dir and
// nroot_sys_net are there for the test that runs it (identity_test.go);
// on a node they are unset.
const identityHook = `#!/bin/sh
# nroot: the per-node initramfs segment unpacks to /nroot-identity; its
# files are placed in $NEWROOT one by one. dracut sources this file, so
# every name here starts with nri_.
nri_seg=${nroot_identity_dir:-/nroot-identity}
nri_net=${nroot_sys_net:-/sys/class/net}

# nri_lower prints its argument with hex letters in lower case and : as -,
# as a MAC in /sys and in BOOTIF (01-52-54-00-AB-CD-EF) may be written.
nri_lower() { printf '%s\n' "$1" | tr 'A-F:' 'a-f-'; }

# The node's identity proper: without these the node boots as another (a
# shared or fresh hostname, machine-id, host keys), so failing to place
# one stops the boot. Other files (overlays: hosts, network, service
# configuration) are warned about and the boot goes on, so the node stays
# reachable to be repaired.
nri_fail() {
    case "$1" in
    etc/hostname|etc/machine-id|etc/ssh/ssh_host_*) die "nroot-identity: /$1: $2; the node's identity cannot be placed" ;;
    *) warn "nroot-identity: /$1 not placed: $2"; nri_failed=$((nri_failed + 1)) ;;
    esac
}

# nri_dirs REL DIR: makes sure every directory of DIR (a path in the
# segment, "" for the top) is a directory in $NEWROOT, creating a missing
# one with the segment's mode and owner; an existing one is never changed.
# A symlink or a file on the way is refused: writing through it could
# land outside $NEWROOT or over something else.
nri_dirs() {
    nri_cur=""
    nri_ifs=$IFS
    IFS=/
    set -f
    for nri_c in $2; do
        case "$nri_c" in
        ""|.|..) IFS=$nri_ifs; set +f; nri_fail "$1" "bad path component '$nri_c'"; return 1 ;;
        esac
        nri_cur="$nri_cur/$nri_c"
        if [ -L "$NEWROOT$nri_cur" ]; then
            IFS=$nri_ifs; set +f; nri_fail "$1" "$nri_cur is a symlink in the root"; return 1
        elif [ -d "$NEWROOT$nri_cur" ]; then
            continue
        elif [ -e "$NEWROOT$nri_cur" ]; then
            IFS=$nri_ifs; set +f; nri_fail "$1" "$nri_cur is not a directory in the root"; return 1
        fi
        if ! { mkdir "$NEWROOT$nri_cur" && chown --reference="$nri_seg$nri_cur" "$NEWROOT$nri_cur" && chmod --reference="$nri_seg$nri_cur" "$NEWROOT$nri_cur"; }; then
            IFS=$nri_ifs; set +f; nri_fail "$1" "cannot create $nri_cur"; return 1
        fi
    done
    IFS=$nri_ifs
    set +f
    return 0
}

# nri_file REL: copies the segment's file (or symlink) REL, mode and owner
# kept, beside its place in $NEWROOT and renames it over the old one, so
# the file is never seen half-written; a symlink there is replaced, not
# followed.
nri_file() {
    case "$1" in
    */*) nri_d=${1%/*} ;;
    *) nri_d="" ;;
    esac
    nri_dirs "$1" "$nri_d" || return 1
    nri_dst="$NEWROOT/$1"
    if [ -d "$nri_dst" ] && [ ! -L "$nri_dst" ]; then
        nri_fail "$1" "it is a directory in the root"
        return 1
    fi
    nri_tmp="$NEWROOT/${nri_d:+$nri_d/}.nroot-identity.tmp"
    rm -rf "$nri_tmp"
    [ -L "$nri_dst" ] && rm -f "$nri_dst"
    if ! { cp -a "$nri_seg/$1" "$nri_tmp" && mv -f "$nri_tmp" "$nri_dst"; }; then
        rm -f "$nri_tmp"
        nri_fail "$1" "cannot copy it"
        return 1
    fi
}

if [ -d "$nri_seg" ]; then
    # Never configure the interface the root came over: drop nroot's
    # network files (overlay network) for the interface with the BOOTIF
    # MAC or holding an IPv4 address now.
    nri_bootif=$(nri_lower "$(getarg BOOTIF=)")
    for nri_d in "$nri_net"/*; do
        [ -e "$nri_d" ] || continue
        nri_i=${nri_d##*/}
        [ "$nri_i" = lo ] && continue
        nri_mac=""
        read -r nri_a 2>/dev/null < "$nri_d/address" && { nri_o=$IFS; IFS=:; for nri_x in $nri_a; do nri_mac="$nri_mac-$nri_x"; done; IFS=$nri_o; }
        nri_mac=$(nri_lower "01$nri_mac")
        case "$(ip -4 -o addr show dev "$nri_i" 2>/dev/null)" in
        *inet*) ;;
        *) [ -n "$nri_bootif" ] && [ "$nri_mac" = "$nri_bootif" ] || continue ;;
        esac
        rm -f "$nri_seg/etc/systemd/network/10-nroot-$nri_i.network" "$nri_seg/etc/network/interfaces.d/nroot-$nri_i" "$nri_seg/etc/nroot/network.d/$nri_i.sh"
    done
    nri_failed=0
    nri_list=$(cd "$nri_seg" && find . ! -type d -print) || die "nroot-identity: cannot list $nri_seg"
    nri_ifs0=$IFS
    IFS='
'
    set -f
    for nri_p in $nri_list; do
        IFS=$nri_ifs0
        nri_p=${nri_p#./}
        # A name with a newline arrives in pieces that are not in the
        # segment: refused, never guessed at.
        if [ -e "$nri_seg/$nri_p" ] || [ -L "$nri_seg/$nri_p" ]; then
            nri_file "$nri_p"
        else
            nri_fail "$nri_p" "not a file name the hook can place"
        fi
    done
    IFS=$nri_ifs0
    set +f
    [ "$nri_failed" -eq 0 ] || warn "nroot-identity: $nri_failed of the node's files were not placed"
    info "nroot-identity: $(cat "$nri_seg/etc/hostname" 2>/dev/null)"
fi
`

// omitOthers keeps dracut's network module from pulling in a second
// handler next to the chosen one.
func omitOthers(handler string) string {
	var omit []string
	for _, h := range []string{"systemd-networkd", "network-manager", "network-legacy"} {
		if h != handler {
			omit = append(omit, h)
		}
	}
	return fmt.Sprintf("omit_dracutmodules+=\" %s \"\n", strings.Join(omit, " "))
}

// ImageCmdline is the kernel command line that boots the root from an
// image file at IMAGEURL (nfs4:SERVER:/PATH/FILE or http://...):
// dracut's livenet mounts the NFS directory and dmsquash-live
// loop-mounts the file, or livenet fetches it into RAM; either way
// dmsquash-live puts an overlay on tmpfs above it. Debian's 059 has its
// own overlay-root for trees, but dmsquash-live takes dracut's overlayfs
// parameter.
func ImageCmdline(d Dracut, extra ...string) string {
	p := d.OverlayParam
	if d.OverlayModule == "overlay-root" {
		p = "rd.live.overlay.overlayfs=1"
	}
	return strings.Join(append([]string{"root=live:IMAGEURL ip=dhcp rd.neednet=1", p}, extra...), " ")
}

// Cmdline is the kernel command line for the image's dracut, with the
// extra parameters the image's kernels need; SERVER and /PATH are filled
// in by nroot export.
func Cmdline(d Dracut, extra ...string) string {
	return strings.Join(append([]string{"root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1", d.OverlayParam}, extra...), " ")
}

func verifyInitrd(img *fsroot.Root, k string) error {
	rel := "boot/initrd.img-" + k
	f, err := img.Open(rel)
	if err != nil {
		return fmt.Errorf("node: no initramfs for %s: %w", k, err)
	}
	defer f.Close()
	checks, _, err := dracut.Verify(f, dracut.Options{NFS: true, Overlay: true, ImageNFS: true, ImageHTTP: true, Kver: k, Rootfs: img.Path})
	if err != nil {
		return fmt.Errorf("node: %s: %w", f.Name(), err)
	}
	var failed []string
	for _, c := range checks {
		if !c.Passed() {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("node: %s fails verification:\n  %s", f.Name(), strings.Join(failed, "\n  "))
	}
	return nil
}

func writeFile(r *fsroot.Root, rel, content string, mode uint32) error {
	if err := r.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return err
	}
	return r.WriteFile(rel, strings.NewReader(content), int64(len(content)), fsroot.Meta{Mode: mode})
}
