//go:build e2e

// Package e2e runs the whole mission: bootstrap a node image, make it a
// diskless node, verify its initramfs, export it with nfs-ganesha, check
// the export, and boot it in QEMU over NFSv4 until its probe reports.
package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"nroot/serve/export"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"nroot/build/apt"
	"nroot/build/nspawn"
	"nroot/build/rootfs"
	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/format/report"
	"nroot/internal/fetch"
	"nroot/node"
	"nroot/node/dracut"
	"nroot/node/initrd"
	"nroot/serve/identity"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
)

func suites() []string {
	if s := os.Getenv("NROOT_E2E_SUITES"); s != "" {
		return strings.Split(s, ",")
	}
	// bookworm boots as TestClusterNetwork's cluster; bookworm/minbase
	// and trixie/minbase too with make e2e-full: CI's make test and make
	// e2e stay under 45 minutes on 2 cores.
	return []string{"trixie", "noble"}
}

// spec splits SUITE[/VARIANT]; the variant defaults to bootstrap's.
func spec(s string) (suite, variant string) {
	suite, variant, _ = strings.Cut(s, "/")
	return suite, variant
}

// mirrors is what bootstrap gets for a suite: nothing for Debian (the
// mirror is found as a user's would be), the Ubuntu archive found at run
// time for Ubuntu.
func mirrors(t *testing.T, suite string) []string {
	if apt.SuiteDistribution(suite) == apt.Ubuntu {
		return []string{testenv.UbuntuMirror(t, "amd64")}
	}
	return nil
}

func TestNodeBootsOverNFS(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"systemd-nspawn", "ganesha.nfsd", "qemu-system-x86_64"} {
		testenv.Command(t, c)
	}
	all := map[string]map[string]float64{}
	for _, suite := range suites() {
		t.Run(suite, func(t *testing.T) {
			all[suite] = pipeline(t, suite)
		})
	}
	if p := os.Getenv("NROOT_E2E_TIMINGS"); p != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		os.WriteFile(p, b, 0o644)
	}
}

type stages struct {
	t     *testing.T
	times map[string]float64
	order []string
	log   string // serial log to show on failure
}

// run times one stage and names it when it fails.
func (s *stages) run(name string, fn func() error) {
	s.t.Helper()
	start := time.Now()
	err := fn()
	s.times[name] = time.Since(start).Seconds()
	s.order = append(s.order, name)
	s.t.Logf("stage %-14s %6.1fs", name, s.times[name])
	if err != nil {
		if s.log != "" {
			s.t.Logf("last 100 lines of the serial log:\n%s", lastLines(s.log, 100))
		}
		s.t.Fatalf("stage %s failed: %v", name, err)
	}
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	clean := regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`).ReplaceAll(b, nil)
	lines := strings.Split(strings.TrimRight(string(clean), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func cache() *fetch.Fetcher { return fetch.NewFetcher(os.Getenv("NROOT_TEST_CACHE")) }

func pipeline(t *testing.T, name string) map[string]float64 {
	suite, variant := spec(name)
	modes := suiteModes(t, name)
	ctx := context.Background()
	work := t.TempDir()
	os.Chmod(work, 0o755)
	root := filepath.Join(work, "root")
	st := &stages{t: t, times: map[string]float64{}}
	st.run("bootstrap", func() error {
		_, err := rootfs.Bootstrap(ctx, root, rootfs.Options{Config: apt.Config{Suite: suite, Variant: variant, Mirrors: mirrors(t, suite)}, Apt: apt.Options{Fetcher: cache(), NoCheckValidUntil: os.Getenv("NROOT_E2E_NO_CHECK_VALID_UNTIL") == "1"}})
		return err
	})
	var res *node.Result
	st.run("node", func() error {
		var err error
		res, err = node.Build(ctx, root, node.Options{E2EProbe: true, CacheDir: filepath.Join(cache().CacheDir, "apt-archives"), Initrd: initrdFor(suite)})
		return err
	})
	k := res.Kernels[0]
	if fi, err := os.Stat(filepath.Join(root, k.Initrd)); err == nil {
		t.Logf("initramfs (--initrd=%s): %d bytes", initrdFor(suite), fi.Size())
		st.times["initrd-mb"] = float64(fi.Size()) / 1e6
		// Issue 31's goal for a trixie node's small image.
		if suite == "trixie" && initrdFor(suite) == node.InitrdSmall && fi.Size() > smallGoal {
			t.Errorf("trixie's small initramfs is %d bytes, over the goal of %d", fi.Size(), smallGoal)
		}
	}
	verifyInitrd(t, ctx, st, root, k, initrdFor(suite), false)
	verifyImageFormats(st, modes, root, k)
	// The root also as image files, in a directory of their own.
	images := filepath.Join(work, "images")
	files := writeImages(ctx, t, st, modes, root, images)
	var srv *ganesha.Server
	var cfg *export.Config
	st.run("export", func() error {
		var err error
		cfg, err = export.Render(root, export.Options{Server: userNetHost, Path: "/node", Ganesha: true})
		if err != nil {
			return err
		}
		// NFSv4 on the standard port: the guest reaches the host's
		// loopback through QEMU's user network at 10.0.2.2.
		srv, err = ganesha.Start(ctx, []ganesha.Export{{ID: 1, Path: root, Pseudo: "/node"}, {ID: 2, Path: images, Pseudo: imagesPseudo}}, ganesha.Options{NFSPort: 2049})
		return err
	})
	t.Cleanup(srv.Stop)
	st.run("export-check", func() error { return exportCheck(ctx, t, srv, root, "/node") })
	var boots []suiteBoot
	st.run("http", func() error {
		var web *imageHTTP
		if needsHTTP(modes) {
			var err error
			if web, err = serveImages(t, work, images); err != nil {
				return err
			}
		}
		var err error
		boots, err = suiteBoots(root, modes, cfg, files, web)
		return err
	})
	// The tree (a machine-id made at boot, nothing written reaching the
	// export) powers off by itself; the image files boot beside it.
	bootAtOnce(ctx, t, st, work, root, k, boots)
	logTimings(t, suite, st)
	return st.times
}

// verifyInitrd checks the node's initramfs: nroot's verify, the listing
// against cpio, and with omit what verify names when modules are left out.
func verifyInitrd(t *testing.T, ctx context.Context, st *stages, root string, k node.Kernel, mode string, omit bool) {
	st.run("initrd-verify", func() error {
		f, err := os.Open(filepath.Join(root, k.Initrd))
		if err != nil {
			return err
		}
		defer f.Close()
		checks, info, err := dracut.Verify(f, dracut.Options{NFS: true, Overlay: true, ImageNFS: true, ImageHTTP: true, Kver: k.Version, Rootfs: root})
		if err != nil {
			return err
		}
		// nroot node asks dracut for zstd (xz for the small image);
		// dracut quietly falls back to gzip when the image lacks the
		// program.
		want := initrd.Zstd
		if mode == node.InitrdSmall {
			want = initrd.XZ
		}
		if segs := info.Segments; len(segs) == 0 || segs[len(segs)-1].Compression != want {
			return fmt.Errorf("main initramfs segment is not %s-compressed: %+v", want, segs)
		}
		return firstFailed(checks)
	})
	st.run("initrd-list", func() error {
		n, err := listAgreesWithCpio(filepath.Join(root, k.Initrd))
		t.Logf("initrd ls: %d entries, equal to cpio -t segment by segment", n)
		return err
	})
	if omit {
		st.run("initrd-omit", func() error {
			return verifyNamesWhatIsOmitted(ctx, root, k.Version)
		})
	}
}

// firstFailed is the first of verify's checks that failed, as an error.
func firstFailed(checks []report.Check) error {
	for _, c := range checks {
		if !c.Passed() {
			return fmt.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	return nil
}

// exportCheck runs nroot check against the export of root, over NFSv3
// (which mounts it by path) and over NFSv4.1 (by its pseudo path), and
// fails on any difference or failed check.
func exportCheck(ctx context.Context, t *testing.T, srv *ganesha.Server, root, pseudo string) error {
	for _, target := range []nfsclient.Target{
		{Host: srv.Addr(), NFSPort: srv.NFSPort, MountPort: srv.MountPort, Path: root},
		{Host: srv.Addr(), NFSPort: srv.NFSPort, Path: pseudo, Version: 4},
	} {
		rep, err := nfscheck.Run(ctx, nfscheck.Options{Target: target, Rootfs: root, Timeout: 5 * time.Minute})
		if err != nil {
			return err
		}
		if n := len(rep.Differences); n > 0 {
			return fmt.Errorf("NFS %s: %d differences between the export and the image, first %+v", rep.NFSVersion, n, rep.Differences[0])
		}
		for _, c := range rep.Checks {
			if c.Status == "FAIL" {
				return fmt.Errorf("NFS %s: check %s: %s", rep.NFSVersion, c.Name, c.Detail)
			}
		}
		t.Logf("export check over NFS %s: %d entries in %.2fs", rep.NFSVersion, rep.Stats.Entries, rep.WalkSeconds)
	}
	return nil
}

// logBoot logs what a boot's probe reported and records its times:
// running-N, until the boot ended, and poweroff-N, from the report to
// QEMU's own exit.
func logBoot(t *testing.T, st *stages, name string, p probe) {
	if p.running > 0 {
		st.times["running-"+name] = p.running.Seconds()
	}
	if p.poweroff > 0 {
		st.times["poweroff-"+name] = p.poweroff.Seconds()
	}
	t.Logf("boot %s probe: state=%s failed-units=%d kernel=%s root-fstype=%s write=%s machine-id=%s hostname=%s hostkey=%s package=%s root=%s; running after %.1fs, powered off %.1fs after the report",
		name, p.state, len(p.failedUnits), p.kernel, p.fstype, p.write, p.machineID, p.hostname, p.hostkey, p.pkg, p.rootSource, p.running.Seconds(), p.poweroff.Seconds())
}

func logTimings(t *testing.T, suite string, st *stages) {
	var b strings.Builder
	for _, s := range st.order {
		fmt.Fprintf(&b, "  %-14s %6.1fs\n", s, st.times[s])
	}
	t.Logf("%s timings:\n%s", suite, b.String())
}

// booted checks what every boot must show: the probe's report, a boot
// that ended "running" (nothing else passes: degraded, maintenance,
// systemctl's own error, a timeout), no failed unit, an overlay root that
// takes writes, a machine-id made at boot; and that neither the write nor
// the machine-id reached root, the tree served.
func (p probe) booted(root string) error {
	switch {
	case !p.done:
		return fmt.Errorf("the probe did not report")
	case p.state != "running":
		return fmt.Errorf("the boot ended %q, not running; failed units: %s; jobs left: %s", p.state, orNone(p.failedUnits), orNone(p.jobs))
	case len(p.failedUnits) > 0:
		return fmt.Errorf("%d failed units: %s", len(p.failedUnits), orNone(p.failedUnits))
	case p.kernel == "":
		return fmt.Errorf("the probe did not report the running kernel")
	case p.fstype != "overlay":
		return fmt.Errorf("/ is %q, not an overlay", p.fstype)
	case p.write != "ok":
		return fmt.Errorf("writing /etc/nroot-probe: %s", p.write)
	case p.machineID == "" || p.machineID == "uninitialized":
		return fmt.Errorf("machine-id %q was not generated", p.machineID)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/nroot-probe")); err == nil {
		return fmt.Errorf("the probe's write reached the export")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); strings.Contains(string(b), p.machineID) {
		return fmt.Errorf("the node's machine-id is in the export")
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

// probe is what the node's probe reported on its console.
type probe struct {
	state                                                                        string   // systemctl is-system-running --wait's word
	failedUnits, jobs                                                            []string // systemctl --failed, and list-jobs when not running
	kernel, fstype, write, machineID, hostname, hostkey, pkg, rootSource, nfsOps string
	extra                                                                        []string // what an overlay's /etc/nroot-probe.d reported
	uniqueID, address, nfsStateErrors                                            string
	rootLoop                                                                     string        // an image root's loop file and the MAJ:MIN of the device it is on
	nfsVolumes                                                                   []string      // the NFS client's volumes: NV SERVER PORT DEV FSID FSC
	done                                                                         bool          // the report is complete
	running                                                                      time.Duration // from QEMU's start to the boot's end (the state report)
	poweroff                                                                     time.Duration // from the report to QEMU's own exit, when asked to wait for it
}

var probeLine = regexp.MustCompile(`NROOT-PROBE (\S+?)=(.*)$`)

// parse reads one console line into p, at elapsed since QEMU started.
func (p *probe) parse(line string, elapsed time.Duration) {
	if strings.Contains(line, "NROOT-PROBE done") {
		p.done = true
		return
	}
	m := probeLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	v := strings.TrimSpace(m[2])
	switch m[1] {
	case "system-state":
		p.state, p.running = v, elapsed
	case "failed-unit":
		p.failedUnits = append(p.failedUnits, v)
	case "job":
		p.jobs = append(p.jobs, v)
	case "extra":
		p.extra = append(p.extra, v)
	case "kernel":
		p.kernel = v
	case "root-fstype":
		p.fstype = v
	case "write":
		p.write = v
	case "machine-id":
		p.machineID = v
	case "hostname":
		p.hostname = v
	case "hostkey":
		p.hostkey = v
	case "package":
		p.pkg = v
	case "root-source":
		p.rootSource = v
	case "root-loop":
		p.rootLoop = v
	case "nfs-volume":
		p.nfsVolumes = append(p.nfsVolumes, v)
	case "nfs-ops":
		p.nfsOps = v
	case "nfs-unique-id":
		p.uniqueID = v
	case "address":
		p.address = v
	case "nfs-state-errors":
		p.nfsStateErrors = v
	}
}

// vm is what QEMU boots: a kernel and an initramfs; the NIC's MAC (""
// for QEMU's default). With
// powerOff the node must power off by itself after its report, within
// powerOffBound; otherwise QEMU is killed once the report is complete.
//
// With tap, the NIC is that tap device of network namespace netns (QEMU
// runs inside it) and the node boots from the network it is on; uefi
// boots it by OVMF (vars is its own copy of the variable store).
type vm struct {
	kernel, initrd, mac string
	powerOff            bool
	// nic2 is a second NIC's MAC ("" for none), on tap2, a tap of netns
	// on a network of its own that boots nothing.
	nic2, tap2       string
	netns, tap, vars string
	uefi             bool
	timeout          time.Duration // 20 minutes when zero
	reported         func()        // called when the report is complete
}

// powerOffBound is how long a node may take from its probe's report to
// QEMU's exit (Ubuntu's shutdown, unmounting the NFS root, is the
// slowest measured; see the e2e's poweroff timings).
const powerOffBound = 120 * time.Second

// hostKeyDigest is the hex SHA-256 of the node's ed25519 host key: what
// ssh-keygen -l shows in base64, and what the probe reports.
func hostKeyDigest(keys []identity.HostKey) string {
	for _, k := range keys {
		if k.Type == "ed25519" {
			d, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(k.Fingerprint, "SHA256:"))
			if err == nil {
				return hex.EncodeToString(d)
			}
		}
	}
	return "no ed25519 key"
}

// accel uses KVM only when asked: on hosts where /dev/kvm exists but
// nested virtualisation is broken, a KVM guest hangs silently.
func accel() string {
	if os.Getenv("NROOT_KVM") == "1" {
		return "kvm"
	}
	return "tcg"
}

// boot runs the node in QEMU until its probe reports and, with
// m.powerOff, until the node powers off.
func boot(ctx context.Context, m vm, cmdline, log string) (probe, error) {
	var p probe
	limit := m.timeout
	if limit == 0 {
		limit = 20 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out, err := os.Create(log)
	if err != nil {
		return p, err
	}
	defer out.Close()
	// One vCPU: on a two-core host, TCG threads for two would starve
	// QEMU's network loop and nfs-ganesha, and the guest's NFS times out.
	// -no-reboot: a power-off (or a panic's reboot) ends QEMU.
	args := []string{"-accel", accel(), "-m", "1536", "-smp", "1", "-nographic", "-no-reboot"}
	netdev := "user,id=n0"
	dev := ""
	switch {
	case m.tap != "":
		netdev = "tap,id=n0,ifname=" + m.tap + ",script=no,downscript=no"
		dev = ",bootindex=1"
		if m.uefi {
			// No option ROM: OVMF's own network stack asks DHCP as
			// UEFI firmware does (client architecture 7), and gets
			// ipxe.efi by TFTP, not QEMU's built-in iPXE.
			dev += ",romfile="
			args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode, "-drive", "if=pflash,format=raw,unit=1,file="+m.vars)
		} else {
			args = append(args, "-boot", "n")
		}
	default:
		args = append(args, "-kernel", m.kernel, "-initrd", m.initrd, "-append", cmdline)
	}
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"+map[bool]string{true: ",mac=" + m.mac}[m.mac != ""]+dev)
	if m.nic2 != "" {
		args = append(args, "-netdev", "tap,id=n1,ifname="+m.tap2+",script=no,downscript=no", "-device", "virtio-net-pci,netdev=n1,romfile=,mac="+m.nic2)
	}
	name := "qemu-system-x86_64"
	if m.netns != "" {
		// ip execs QEMU in the namespace: the process killed is QEMU.
		name, args = "ip", append([]string{"netns", "exec", m.netns, name}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return p, err
	}
	pw.Close()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var reported time.Time
	var hung atomic.Bool
	poweredDown := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintln(out, line)
		if p.done {
			// The kernel's last word on a power-off, not a panic's
			// reboot.
			poweredDown = poweredDown || strings.Contains(line, "reboot: Power down")
			continue
		}
		p.parse(line, time.Since(start))
		if !p.done {
			continue
		}
		reported = time.Now()
		if m.reported != nil {
			m.reported()
		}
		if !m.powerOff {
			// Everything is known; the orderly shutdown is proven by
			// the boots that wait for it.
			cmd.Process.Kill()
			break
		}
		timer := time.AfterFunc(powerOffBound, func() {
			hung.Store(true)
			cmd.Process.Kill()
		})
		defer timer.Stop()
	}
	go io.Copy(io.Discard, pr)
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return p, fmt.Errorf("no probe report within %v", limit)
	case !p.done:
		return p, fmt.Errorf("the node stopped before its probe reported (%v)", err)
	case !m.powerOff:
		return p, nil
	case hung.Load():
		return p, fmt.Errorf("the node did not power off within %v of its probe's report (QEMU killed)", powerOffBound)
	}
	p.poweroff = time.Since(reported)
	if err != nil || !poweredDown {
		return p, fmt.Errorf("QEMU ended %.1fs after the probe's report (%v) without the kernel's \"reboot: Power down\"", p.poweroff.Seconds(), err)
	}
	return p, nil
}

// decompressors are the programs that undo each compression, for cpio -t.
var decompressors = map[initrd.Compression][]string{
	initrd.None: {"cat"}, initrd.Gzip: {"gzip", "-dc"}, initrd.Zstd: {"zstd", "-dcq"}, initrd.XZ: {"xz", "-dc"},
	initrd.LZMA: {"xz", "-dc", "--format=lzma"}, initrd.LZ4: {"lz4", "-dcq"}, initrd.LZ4Legacy: {"lz4", "-dcq"}, initrd.Bzip2: {"bzip2", "-dc"},
}

// listAgreesWithCpio lists a real image with initrd's reader and, segment
// by segment, with the compressor's own program and GNU cpio -t; the
// entry lists must be equal.
func listAgreesWithCpio(image string) (int, error) {
	f, err := os.Open(image)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	perSeg := map[int][]string{}
	segs, err := initrd.Scan(f, func(h *initrd.Header, _ io.Reader) error {
		perSeg[h.Segment] = append(perSeg[h.Segment], h.Name)
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, seg := range segs {
		argv := decompressors[seg.Compression]
		if argv == nil {
			return 0, fmt.Errorf("segment %d: no program for %s", seg.Index, seg.Compression)
		}
		dec := exec.Command(argv[0], argv[1:]...)
		dec.Stdin = io.NewSectionReader(f, seg.Offset, seg.CompressedSize)
		pipe, err := dec.StdoutPipe()
		if err != nil {
			return 0, err
		}
		list := exec.Command("cpio", "--quiet", "-t")
		list.Stdin = pipe
		var out, errs strings.Builder
		list.Stdout, list.Stderr, dec.Stderr = &out, &errs, &errs
		if err := dec.Start(); err != nil {
			return 0, err
		}
		if err := list.Run(); err != nil {
			return 0, fmt.Errorf("segment %d: cpio -t: %v: %s", seg.Index, err, errs.String())
		}
		if err := dec.Wait(); err != nil {
			return 0, fmt.Errorf("segment %d: %s: %v: %s", seg.Index, argv[0], err, errs.String())
		}
		want := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if got := perSeg[seg.Index]; !slices.Equal(got, want) {
			return 0, fmt.Errorf("segment %d (%s): initrd lists %d entries, cpio -t %d; first difference %s", seg.Index, seg.Compression, len(got), len(want), firstDifference(got, want))
		}
		total += len(want)
	}
	return total, nil
}

func firstDifference(a, b []string) string {
	for i := range max(len(a), len(b)) {
		x, y := "(end)", "(end)"
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("at %d: %q vs %q", i, x, y)
		}
	}
	return "none"
}

// verifyNamesWhatIsOmitted builds a second image in the node root with
// the image's own dracut, leaving out the nfs, overlay and live modules, and
// checks that verify --mode all fails on it, naming those checks.
func verifyNamesWhatIsOmitted(ctx context.Context, root, kver string) error {
	r, err := nspawn.New(root)
	if err != nil {
		return err
	}
	var out strings.Builder
	r.Stdout, r.Stderr = &out, &out
	const img = "/var/tmp/nroot-e2e-omit.img"
	defer os.Remove(filepath.Join(root, img))
	if err := r.Run(ctx, "dracut", "-q", "--force", "--omit", "nfs overlay-root overlayfs dmsquash-live livenet", img, kver); err != nil {
		return fmt.Errorf("dracut --omit: %v\n%s", err, out.String())
	}
	f, err := os.Open(filepath.Join(root, img))
	if err != nil {
		return err
	}
	defer f.Close()
	o := dracut.Options{Kver: kver, Rootfs: root}
	o.SetMode("all")
	checks, _, err := dracut.Verify(f, o)
	if err != nil {
		return err
	}
	status := map[string]bool{}
	for _, c := range checks {
		status[c.Name] = c.Passed()
	}
	for _, name := range []string{"dracut-nfs", "nfs-mount", "nfs-lib", "overlay-hook", "dracut-live", "dracut-livenet", "live-root", "livenet-root"} {
		if pass, ok := status[name]; !ok || pass {
			return fmt.Errorf("check %s did not fail on an image built without nfs and overlay: %+v", name, checks)
		}
	}
	for _, name := range []string{"init", "dracut-base", "elf-deps"} {
		if !status[name] {
			return fmt.Errorf("check %s failed on an image that has it: %+v", name, checks)
		}
	}
	return nil
}
