// Package dracut knows what a dracut initramfs must hold to boot a
// diskless node: dracut's own pieces, the NFS and overlay modules and
// hooks, kernel modules consistent with modules.dep, and every
// executable's shared libraries. nroot initrd verify and nroot node check
// images with it.
package dracut

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"nroot/format/report"
	"nroot/internal/fsroot"
	"nroot/node/initrd"
)

// Options say what the image must be able to do.
type Options struct {
	NFS     bool   // mount an NFS root
	Overlay bool   // put a writable overlay over it
	Kver    string // the kernel version; default: the image's only one
	Rootfs  string // a root filesystem whose kernel the image must match
	// Image modes: the root is one image file (squashfs, or erofs with
	// ImageFormat "erofs") that dracut's livenet and dmsquash-live
	// loop-mount from an NFS export (ImageNFS) or fetch over HTTP into
	// RAM (ImageHTTP), with an overlay on tmpfs above it.
	ImageNFS    bool
	ImageHTTP   bool
	ImageFormat string
}

// Modes are the boot modes Verify knows, as nroot initrd verify --mode
// names them: the root as a tree over NFS, or an image file over NFS or
// over HTTP.
var Modes = []string{"tree", "nfs-image", "http-image"}

// SetMode turns on the checks a boot mode needs; "all" is every mode.
func (o *Options) SetMode(m string) error {
	switch m {
	case "tree":
		o.NFS, o.Overlay = true, true
	case "nfs-image":
		o.ImageNFS = true
	case "http-image":
		o.ImageHTTP = true
	case "all":
		o.NFS, o.Overlay, o.ImageNFS, o.ImageHTTP = true, true, true, true
	default:
		return fmt.Errorf("--mode %q: one of %s, or all", m, strings.Join(Modes, ", "))
	}
	return nil
}

func (o Options) image() bool { return o.ImageNFS || o.ImageHTTP }

// maxELF bounds the binaries read whole for their dynamic section.
const maxELF = 512 << 20

type scanned struct {
	info    *initrd.Info
	entries map[string]*initrd.Header // by clean name, last segment wins
	needed  map[string][]string
	runpath map[string][]string
	exec    map[string]bool // ELF files with a program interpreter
	libDirs []string
	modDep  map[string]string // K -> modules.dep
	builtin map[string]string // K -> modules.builtin
	heads   map[string][]byte // by clean name: an ELF file's magic, a script's #! line
}

// headSize is how much of each file scan reads ahead: enough for a #!
// line.
const headSize = 128

// elfMagic starts every ELF file.
var elfMagic = []byte("\x7fELF")

func scan(r io.Reader) (*scanned, error) {
	s := &scanned{needed: map[string][]string{}, runpath: map[string][]string{}, exec: map[string]bool{}, modDep: map[string]string{}, builtin: map[string]string{}, heads: map[string][]byte{}}
	img, err := initrd.Index(r, func(name string, h *initrd.Header, data io.Reader) error {
		if !h.IsRegular() {
			return nil
		}
		if kv := initrd.KernelVersion(name); kv != "" && (path.Base(name) == "modules.dep" || path.Base(name) == "modules.builtin") {
			b, err := io.ReadAll(io.LimitReader(data, 64<<20))
			if err != nil {
				return err
			}
			if path.Base(name) == "modules.dep" {
				s.modDep[kv] = string(b)
			} else {
				s.builtin[kv] = string(b)
			}
			return nil
		}
		br := &peekReader{r: data}
		head := br.peek(headSize)
		switch {
		case bytes.HasPrefix(head, elfMagic):
			s.heads[initrd.CleanName(name)] = elfMagic
		case bytes.HasPrefix(head, []byte("#!")):
			line, _, _ := bytes.Cut(head, []byte("\n"))
			s.heads[initrd.CleanName(name)] = bytes.Clone(line)
		}
		if !bytes.HasPrefix(head, elfMagic) || h.Size > maxELF {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(br, h.Size))
		if err != nil {
			return err
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil || f.Type == elf.ET_REL {
			return nil // kernel modules and broken files have no DT_NEEDED to check
		}
		defer f.Close()
		libs, _ := f.ImportedLibraries()
		if len(libs) > 0 {
			s.needed[name] = libs
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				s.exec[name] = true
			}
		}
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			if v, err := f.DynString(tag); err == nil {
				for _, x := range v {
					s.runpath[name] = append(s.runpath[name], strings.Split(x, ":")...)
				}
			}
		}
		return nil
	})
	s.entries, s.info = img.Entries, img.Info
	return s, err
}

// peekReader lets scan look at the first bytes of data and still hand
// all of it on.
type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) []byte {
	b := make([]byte, n)
	k, _ := io.ReadFull(p.r, b)
	p.buf = b[:k]
	return p.buf
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// resolve follows symlinks inside the image, as the booted initramfs
// would, and returns the final entry.
func (s *scanned) resolve(name string) (*initrd.Header, string) {
	real, ok := fsroot.ResolveLinks(initrd.CleanName(name), func(q string) (string, bool) {
		if h := s.entries[q]; h != nil && h.IsSymlink() {
			return h.Linkname, true
		}
		return "", false
	})
	if !ok {
		return nil, real
	}
	return s.entries[real], real
}

// Verify runs the named checks on an image.
func Verify(r io.Reader, o Options) ([]report.Check, *initrd.Info, error) {
	s, err := scan(r)
	if err != nil {
		return nil, s.info, err
	}
	var checks []report.Check
	add := func(name string, pass bool, format string, a ...any) {
		checks = append(checks, report.Result(name, pass, fmt.Sprintf(format, a...)))
	}

	// /init
	if h, real := s.resolve("init"); h == nil {
		add("init", false, "/init is missing: the kernel has nothing to run")
	} else if !h.IsRegular() || h.Mode&0o111 == 0 {
		add("init", false, "/init (%s) is not an executable file (mode %o)", real, h.Mode)
	} else {
		add("init", true, "/init resolves to %s, executable", real)
	}

	// Another generator's image (initramfs-tools, mkinitcpio): dracut's
	// checks are reported as not applying (SKIP), with one failure when a
	// boot mode that needs dracut was asked for.
	gen := s.info.Generator
	foreign := gen != "" && gen != initrd.Dracut
	dadd := add
	if foreign {
		dadd = func(name string, _ bool, _ string, _ ...any) {
			checks = append(checks, report.Check{Name: name, Status: report.Skip, Detail: "dracut's check: does not apply to an " + gen + " image"})
		}
	}
	mods := s.info.DracutModules
	has := func(m string) bool { return slices.Contains(mods, m) }
	switch {
	case foreign:
		checks = append(checks, report.Check{Name: "dracut-modules", Status: report.Skip,
			Detail: fmt.Sprintf("an %s image: dracut's checks do not apply", gen)})
		if o.NFS || o.image() || o.Overlay {
			add("generator", false, "an %s image: the boots nroot makes (tree, nfs-image, http-image) need dracut's network, nfs, overlay and live modules; build the image with dracut (nroot node does)", gen)
		}
	case len(mods) == 0:
		add("dracut-modules", false, "no usr/lib/dracut/modules.txt: not a dracut image, or built without it")
	default:
		dadd("dracut-base", has("base"), "dracut module base %s", presence(has("base")))
	}
	if !foreign && len(mods) > 0 {
		checks = append(checks, s.initChecks(has)...)
	}
	if o.NFS || o.image() {
		handlers := []string{"systemd-networkd", "network-manager", "network-legacy", "network-wicked", "connman"}
		var found []string
		for _, h := range handlers {
			if has(h) {
				found = append(found, h)
			}
		}
		dadd("dracut-network", has("network") && len(found) > 0, "dracut module network %s, handlers: %s", presence(has("network")), orNone(found))
	}
	if o.NFS || o.ImageNFS {
		dadd("dracut-nfs", has("nfs"), "dracut module nfs %s", presence(has("nfs")))
		mountNFS := s.findAny("usr/sbin/mount.nfs", "sbin/mount.nfs", "usr/bin/mount.nfs", "bin/mount.nfs")
		dadd("nfs-mount", mountNFS != "", "mount.nfs %s", foundAt(mountNFS))
		lib := s.findAny("lib/nfs-lib.sh", "usr/lib/nfs-lib.sh")
		dadd("nfs-lib", lib != "", "nfs-lib.sh %s", foundAt(lib))
		cmdHook := s.hook("cmdline", "parse-nfsroot.sh")
		dadd("nfs-cmdline-hook", cmdHook != "", "cmdline hook parse-nfsroot.sh %s", foundAt(cmdHook))
		udevHook := s.hook("pre-udev", "nfs-start-rpc.sh")
		dadd("nfs-pre-udev-hook", udevHook != "", "pre-udev hook nfs-start-rpc.sh %s", foundAt(udevHook))
	}
	if o.image() {
		// root=live:URL: livenet fetches (HTTP) or mounts (NFS) the
		// file, dmsquash-live loop-mounts it and puts the overlay on.
		dadd("dracut-live", has("dmsquash-live"), "dracut module dmsquash-live %s (Debian and Ubuntu: package dracut-live)", presence(has("dmsquash-live")))
		dadd("dracut-livenet", has("livenet"), "dracut module livenet %s", presence(has("livenet")))
		live := s.findAny("sbin/dmsquash-live-root", "usr/sbin/dmsquash-live-root")
		dadd("live-root", live != "", "dmsquash-live-root %s", foundAt(live))
		netroot := s.findAny("sbin/livenetroot", "usr/sbin/livenetroot")
		dadd("livenet-root", netroot != "", "livenetroot %s", foundAt(netroot))
		url := s.findAny("lib/url-lib.sh", "usr/lib/url-lib.sh")
		dadd("url-lib", url != "", "url-lib.sh %s", foundAt(url))
		losetup := s.findAny("usr/sbin/losetup", "sbin/losetup", "usr/bin/losetup", "bin/losetup")
		dadd("losetup", losetup != "", "losetup %s", foundAt(losetup))
		hook := s.hook("cmdline", "parse-livenet.sh")
		dadd("livenet-cmdline-hook", hook != "", "cmdline hook parse-livenet.sh %s", foundAt(hook))
	}
	if o.ImageHTTP {
		curl := s.findAny("usr/bin/curl", "bin/curl")
		dadd("http-fetch", curl != "", "curl (livenet's HTTP fetcher) %s", foundAt(curl))
	}
	if o.Overlay {
		switch {
		case has("overlay-root"):
			hook := s.hook("pre-pivot", "overlay-mount.sh")
			dadd("overlay-hook", hook != "", "Debian's overlay-root module (boot with rootovl): pre-pivot hook overlay-mount.sh %s", foundAt(hook))
		case has("overlayfs"):
			dadd("overlay-hook", true, "dracut-ng's overlayfs module (boot with rd.overlay or rd.live.overlay.overlayfs=1)")
		default:
			dadd("overlay-hook", false, "neither Debian's overlay-root nor dracut-ng's overlayfs module is in the image; add overlay-root (dracut 059) or overlayfs (dracut-ng) to add_dracutmodules")
		}
	}

	// Kernel modules.
	kvers := s.info.KernelVersions
	if o.Kver != "" {
		kvers = []string{o.Kver}
	}
	if len(kvers) == 0 {
		add("kernel-modules", false, "the image holds no lib/modules/VERSION: it cannot load drivers")
	}
	for _, k := range kvers {
		checks = append(checks, s.kernelChecks(k, o)...)
		if o.Rootfs != "" {
			ok := false
			if r, err := fsroot.Open(o.Rootfs); err == nil {
				ok = r.IsDir("lib/modules/" + k)
				r.Close()
			}
			add("rootfs-kernel", ok, "kernel %s %s in %s/lib/modules", k, presence(ok), o.Rootfs)
		}
	}

	// DT_NEEDED, followed from every executable as the dynamic loader
	// follows it: a library already loaded satisfies later needs by name.
	var missing []string
	var bins []string
	for b := range s.exec {
		bins = append(bins, b)
	}
	sort.Strings(bins)
	for _, b := range bins {
		missing = append(missing, s.loadClosure(b)...)
	}
	if len(missing) > 0 {
		add("elf-deps", false, "%d libraries not found in the image: %s", len(missing), strings.Join(firstN(missing, 10), "; "))
	} else {
		add("elf-deps", true, "every DT_NEEDED of %d dynamic executables resolves inside the image", len(bins))
	}
	return checks, s.info, nil
}

// hookUnits are dracut-systemd's units that run the hook stages nroot's
// boots use (parse-nfsroot and parse-livenet at cmdline, nfs-start-rpc at
// pre-udev, the overlay and the node's identity at pre-pivot).
var hookUnits = []string{"dracut-cmdline.service", "dracut-pre-udev.service", "dracut-pre-pivot.service"}

// initqueueUnit runs the root's handlers in the initqueue. dracut-systemd
// installs it up to dracut 107; from 108 the initqueue module does, which
// only what waits in the queue pulls in (the network, NFS, live images),
// so an image is asked for it when it has one of those.
const initqueueUnit = "dracut-initqueue.service"

// initqueueUsers are dracut modules whose boot waits in the initqueue.
var initqueueUsers = []string{"initqueue", "network", "network-legacy", "nfs", "livenet", "dmsquash-live"}

// unitDirs are where systemd in the initramfs reads units.
var unitDirs = []string{"usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system"}

// initChecks check that a dracut image's /init can run the boot: systemd
// with initrd.target and the units that run dracut's hooks (without
// initrd.target systemd boots to default.target and never mounts the
// root), or dracut's shell /init (base's init.sh, systemd left out) with
// its interpreter, switch_root, dracut-lib.sh and udevd, and not
// systemd-networkd, which runs under systemd alone.
func (s *scanned) initChecks(has func(string) bool) []report.Check {
	h, real := s.resolve("init")
	if h == nil || !h.IsRegular() {
		return nil // the init check has said so
	}
	head := s.heads[real]
	switch {
	case path.Base(real) == "systemd" && bytes.HasPrefix(head, elfMagic):
		units := append([]string{"initrd.target"}, hookUnits...)
		if slices.ContainsFunc(initqueueUsers, has) {
			units = append(units, initqueueUnit)
		}
		var missing []string
		for _, u := range units {
			if s.findAny(unitPaths(u)...) == "" {
				missing = append(missing, u)
			}
		}
		if len(missing) > 0 {
			return []report.Check{report.Result("init-systemd", false, fmt.Sprintf("/init is systemd (%s) but the image lacks %s: systemd would not reach initrd.target's root or run dracut's hooks; add dracut's systemd-initrd and dracut-systemd modules, or leave systemd out for dracut's shell /init (omit systemd, systemd-initrd, dracut-systemd)", real, strings.Join(missing, ", ")))}
		}
		return []report.Check{report.Result("init-systemd", true, fmt.Sprintf("/init is systemd (%s): %s present", real, strings.Join(units, ", ")))}
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		interp := ""
		if f := strings.Fields(string(line)); len(f) > 0 {
			interp = f[0]
		}
		var problems []string
		if ih, ireal := s.resolve(interp); interp == "" || ih == nil || !ih.IsRegular() || ih.Mode&0o111 == 0 {
			problems = append(problems, fmt.Sprintf("its interpreter %q is not an executable in the image", interp))
		} else {
			interp = interp + " (" + ireal + ")"
		}
		for _, want := range []struct {
			what  string
			paths []string
		}{
			{"switch_root", []string{"usr/sbin/switch_root", "sbin/switch_root", "usr/bin/switch_root", "bin/switch_root"}},
			{"dracut-lib.sh", []string{"usr/lib/dracut-lib.sh", "lib/dracut-lib.sh"}},
			{"udevd", []string{"usr/lib/systemd/systemd-udevd", "lib/systemd/systemd-udevd", "usr/lib/udev/udevd", "lib/udev/udevd", "sbin/udevd", "usr/sbin/udevd"}},
			{"udevadm", []string{"usr/bin/udevadm", "bin/udevadm", "usr/sbin/udevadm", "sbin/udevadm"}},
		} {
			if s.findAny(want.paths...) == "" {
				problems = append(problems, want.what+" is missing")
			}
		}
		if has("systemd-networkd") {
			problems = append(problems, "the network handler systemd-networkd needs systemd as /init")
		}
		if len(problems) > 0 {
			return []report.Check{report.Result("init-shell", false, fmt.Sprintf("/init is a shell script (dracut's init.sh, without systemd): %s; build with dracut's base, udev-rules and network-legacy modules", strings.Join(problems, "; ")))}
		}
		return []report.Check{report.Result("init-shell", true, fmt.Sprintf("/init is a shell script (dracut's init.sh, without systemd) run by %s, with switch_root, dracut-lib.sh, udevd and udevadm", interp))}
	}
	return nil
}

// unitPaths are the places a systemd unit may be in the image.
func unitPaths(unit string) []string {
	out := make([]string, len(unitDirs))
	for i, d := range unitDirs {
		out[i] = d + "/" + unit
	}
	return out
}

func (s *scanned) kernelChecks(k string, o Options) []report.Check {
	var out []report.Check
	base := "lib/modules/" + k
	if s.entries[base] == nil && s.entries["usr/"+base] != nil {
		base = "usr/" + base
	}
	dep, ok := s.modDep[k]
	if !ok {
		return []report.Check{report.Result("kernel-modules", false, fmt.Sprintf("no %s/modules.dep: modprobe cannot load anything for kernel %s", base, k))}
	}
	// modules.dep: "kernel/fs/nfs/nfs.ko.xz: kernel/net/sunrpc/sunrpc.ko.xz ..."
	depOf := map[string][]string{}
	byName := map[string]string{}
	for _, line := range strings.Split(dep, "\n") {
		m, deps, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		depOf[m] = strings.Fields(deps)
		byName[initrd.ModuleName(m)] = m
	}
	want := []string{}
	if o.NFS || o.ImageNFS {
		want = append(want, "sunrpc", "nfs", "nfsv4|nfsv3")
	}
	if o.Overlay || o.image() {
		want = append(want, "overlay")
	}
	if o.image() {
		fs := "squashfs"
		if o.ImageFormat == "erofs" {
			fs = "erofs"
		}
		want = append(want, "loop", fs)
	}
	var problems, good []string
	for _, w := range want {
		var okOne bool
		for _, alt := range strings.Split(w, "|") {
			if s.isBuiltin(k, alt) {
				good = append(good, alt+" (built in)")
				okOne = true
				break
			}
			m, listed := byName[alt]
			if !listed {
				continue
			}
			if s.entries[path.Join(base, m)] == nil {
				problems = append(problems, fmt.Sprintf("%s is listed in modules.dep but %s is not in the image", alt, m))
				okOne = true
				break
			}
			for _, d := range depOf[m] {
				if s.entries[path.Join(base, d)] == nil {
					problems = append(problems, fmt.Sprintf("%s needs %s, which is not in the image", alt, d))
				}
			}
			good = append(good, alt)
			okOne = true
			break
		}
		if !okOne {
			problems = append(problems, fmt.Sprintf("module %s is neither in the image's modules.dep nor built in", w))
		}
	}
	// Every module file in the image must be known to modules.dep.
	var unlisted []string
	for name, h := range s.entries {
		if h.IsRegular() && strings.HasPrefix(name, base+"/") && initrd.IsKernelModule(name) {
			if _, ok := depOf[strings.TrimPrefix(name, base+"/")]; !ok {
				unlisted = append(unlisted, strings.TrimPrefix(name, base+"/"))
			}
		}
	}
	sort.Strings(unlisted)
	if len(unlisted) > 0 {
		problems = append(problems, fmt.Sprintf("%d module files are not in modules.dep (run depmod): %s", len(unlisted), strings.Join(firstN(unlisted, 5), ", ")))
	}
	if len(problems) > 0 {
		out = append(out, report.Result("kernel-modules", false, fmt.Sprintf("kernel %s: %s", k, strings.Join(problems, "; "))))
	} else {
		out = append(out, report.Result("kernel-modules", true, fmt.Sprintf("kernel %s: modules.dep consistent; %s", k, orNone(good))))
	}
	return out
}

func (s *scanned) isBuiltin(k, mod string) bool {
	for _, line := range strings.Split(s.builtin[k], "\n") {
		if initrd.ModuleName(line) == mod {
			return true
		}
	}
	return false
}

func (s *scanned) findAny(names ...string) string {
	for _, n := range names {
		if h, real := s.resolve(n); h != nil && h.IsRegular() {
			return real
		}
	}
	return ""
}

// hook finds a hook script by its stage and base name suffix.
func (s *scanned) hook(stage, script string) string {
	for name, h := range s.entries {
		if !h.IsDir() && initrd.IsHook(name) && strings.Contains(name, "/hooks/"+stage+"/") && strings.HasSuffix(name, script) {
			return name
		}
	}
	return ""
}

// libDirs are where the dynamic loader looks by default.
var libDirs = []string{"lib", "lib64", "usr/lib", "usr/lib64"}

// loadClosure lists the libraries an executable needs, directly or
// through its libraries, that the image does not have.
func (s *scanned) loadClosure(bin string) []string {
	var missing []string
	loaded := map[string]bool{}
	type item struct{ from, lib string }
	queue := []item{}
	for _, l := range s.needed[bin] {
		queue = append(queue, item{bin, l})
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if loaded[it.lib] {
			continue
		}
		real := s.findLib(it.from, bin, it.lib)
		if real == "" {
			missing = append(missing, fmt.Sprintf("%s needs %s", it.from, it.lib))
			loaded[it.lib] = true
			continue
		}
		loaded[it.lib] = true
		for _, l := range s.needed[real] {
			queue = append(queue, item{real, l})
		}
	}
	return missing
}

// findLib searches a library as ld.so would for object from, loaded by
// the executable bin, and returns the path of the file it resolves to.
func (s *scanned) findLib(from, bin, lib string) string {
	if strings.Contains(lib, "/") {
		if h, real := s.resolve(lib); h != nil && h.IsRegular() {
			return real
		}
		return ""
	}
	var dirs []string
	for _, obj := range []string{from, bin} {
		for _, rp := range s.runpath[obj] {
			rp = strings.ReplaceAll(rp, "$ORIGIN", "/"+path.Dir(obj))
			dirs = append(dirs, initrd.CleanName(rp))
		}
	}
	dirs = append(dirs, s.defaultLibDirs()...)
	for _, d := range dirs {
		if h, real := s.resolve(path.Join(d, lib)); h != nil && h.IsRegular() {
			return real
		}
	}
	return ""
}

// defaultLibDirs are the loader's default directories, multiarch ones
// included.
func (s *scanned) defaultLibDirs() []string {
	if s.libDirs != nil {
		return s.libDirs
	}
	dirs := append([]string{}, libDirs...)
	for name, h := range s.entries {
		if h.IsDir() && (strings.HasPrefix(name, "usr/lib/") || strings.HasPrefix(name, "lib/")) && strings.Count(name, "/") <= 2 && strings.Contains(path.Base(name), "-linux-") {
			dirs = append(dirs, name)
		}
	}
	sort.Strings(dirs[len(libDirs):])
	s.libDirs = dirs
	return dirs
}

func presence(ok bool) string {
	if ok {
		return "present"
	}
	return "missing"
}

func foundAt(p string) string {
	if p == "" {
		return "missing"
	}
	return "at " + p
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}
