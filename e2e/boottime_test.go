//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"nroot/build/lockfile"
	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/internal/fsroot"
	"nroot/node"
	"nroot/node/dracut"
	"nroot/node/initrd"
	"nroot/serve/export"
)

// boottimeMarker reports the end of the boot on the console, the same way
// in both trees: systemctl is-system-running --wait returns when the boot's
// jobs are done (multi-user reached), and the first line it prints is the
// mark the test times from QEMU's start. The guest's own clock and
// systemd-analyze's split follow, then the lines boot() needs to stop.
const boottimeMarker = `#!/bin/sh
# nroot boot time marker (e2e/boottime_test.go)
state=$(timeout 900 systemctl is-system-running --wait 2>&1 | tr '\n' ' ')
echo "NROOT-PROBE system-state=$state" > /dev/console
echo "NROOT-PROBE extra=uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console
echo "NROOT-PROBE extra=analyze=$(systemd-analyze time 2>&1 | head -n 1)" > /dev/console
systemd-analyze blame --no-pager 2>&1 | grep -v '\.device$' | head -n 8 | while read -r line; do
    echo "NROOT-PROBE extra=blame=$line"
done > /dev/console
systemctl --failed --no-legend --plain 2>&1 | while read -r line; do
    echo "NROOT-PROBE failed-unit=$line"
done > /dev/console
echo "NROOT-PROBE kernel=$(uname -r)" > /dev/console
echo "NROOT-PROBE root-fstype=$(findmnt -n -o FSTYPE /)" > /dev/console
echo "NROOT-PROBE root-source=$(awk '$3 ~ /^nfs/ { print $1 " " $3 " " $4; exit }' /proc/mounts)" > /dev/console
echo "NROOT-PROBE done" > /dev/console
`

// Type=exec, as nroot's probe: the boot's transaction can end while the
// script waits for it.
const boottimeUnit = `[Unit]
Description=nroot boot time marker
After=multi-user.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/nroot-boottime
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`

// seedModules is scripts/seed-node.sh's dracut module list, printed beside
// the result; the script's own default is what runs.
const seedModules = "base systemd-initrd dracut-systemd network nfs kernel-modules udev-rules"

// TestBootTimeSideBySide boots, in the same QEMU, one after the other,
// the seed's way (mmdebstrap important, scripts/seed-node.sh in nspawn,
// the NFS root mounted read-write from a read-write export) and nroot's
// image (nroot bootstrap, nroot node, its own command line: a read-only
// export under an overlay), both of bookworm from the same sources and
// served by one private nfs-ganesha, and compares the time from QEMU's
// start to the end of the boot (is-system-running --wait), marked the
// same way in both. NROOT_BOOTTIME_RUNS runs (default 1) alternate the
// order. NROOT_BOOTTIME_SETTLE (61s) is the pause after a sync before
// each boot, NROOT_BOOTTIME_DIR a directory to keep the trees in.
func TestBootTimeSideBySide(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"mmdebstrap", "systemd-nspawn", "ganesha.nfsd", "qemu-system-x86_64"} {
		testenv.Command(t, c)
	}
	runs := 1
	if s := os.Getenv("NROOT_BOOTTIME_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10 {
			t.Fatalf("NROOT_BOOTTIME_RUNS=%q: want 1 to 10", s)
		}
		runs = n
	}
	settle := 61 * time.Second
	if s := os.Getenv("NROOT_BOOTTIME_SETTLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 10*time.Minute {
			t.Fatalf("NROOT_BOOTTIME_SETTLE=%q: want a duration up to 10m", s)
		}
		settle = d
	}
	const suite, variant = "bookworm", "important"
	ctx := context.Background()
	// NROOT_BOOTTIME_DIR keeps the trees there and reuses those a run
	// finished building (to boot again without building again).
	work := os.Getenv("NROOT_BOOTTIME_DIR")
	if work == "" {
		work = t.TempDir()
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o755)
	nroot := nrootCLI(t, work)
	st := &stages{t: t, times: map[string]float64{}}
	seedRoot, nrootRoot := filepath.Join(work, "seed"), filepath.Join(work, "nroot-root")
	seedDone, nrootDone := seedRoot+".json", nrootRoot+".json"

	// The seed's way: mmdebstrap with exactly the sources nroot reads
	// (the release, -updates and -security), then its node stage.
	var seedKernel node.Kernel
	if !readJSON(seedDone, &seedKernel) {
		os.RemoveAll(seedRoot)
		var plan lockfile.Plan
		st.run("sources", func() error {
			return nroot(&plan, "resolve", "-q", "--json", "--variant="+variant, suite)
		})
		st.run("seed-mmdebstrap", func() error {
			args := []string{"--quiet", "--mode=root", "--format=directory", "--variant=" + variant,
				"--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", suite, seedRoot}
			for _, s := range plan.Sources {
				args = append(args, fmt.Sprintf("deb %s %s %s", s.URI, s.Suite, strings.Join(s.Components, " ")))
			}
			return runLogged(ctx, filepath.Join(work, "mmdebstrap.log"), "mmdebstrap", args...)
		})
		st.run("seed-node", func() error {
			return runLogged(ctx, filepath.Join(work, "seed-node.log"), "../scripts/seed-node.sh", seedRoot)
		})
		kver, err := newestKernel(seedRoot)
		if err != nil {
			t.Fatal(err)
		}
		seedKernel = node.Kernel{Version: kver, Vmlinuz: "/boot/vmlinuz-" + kver, Initrd: "/boot/initrd.img-" + kver}
		// The comparison is with a working NFS-root image.
		st.run("seed-initrd-verify", func() error { return verifyNFSRoot(seedRoot, seedKernel) })
		writeJSON(t, seedDone, seedKernel)
	}

	// nroot's: the same suite, variant and sources, with its own cache.
	var res node.Result
	if !readJSON(nrootDone, &res) {
		os.RemoveAll(nrootRoot)
		st.run("nroot-bootstrap", func() error {
			return nroot(nil, "--cache-dir", cache().CacheDir, "bootstrap", "-q", "--variant", variant, suite, nrootRoot)
		})
		st.run("nroot-node", func() error {
			return nroot(&res, "--cache-dir", cache().CacheDir, "node", "--json", nrootRoot)
		})
		if len(res.Kernels) != 1 {
			t.Fatalf("nroot node installed kernels %+v; want one", res.Kernels)
		}
		writeJSON(t, nrootDone, res)
	}
	for _, root := range []string{seedRoot, nrootRoot} {
		if err := installBoottimeMarker(root); err != nil {
			t.Fatal(err)
		}
	}
	nrootKernel := res.Kernels[0]

	seedImg, err := describeInitrd(filepath.Join(seedRoot, seedKernel.Initrd))
	if err != nil {
		t.Fatal(err)
	}
	nrootImg, err := describeInitrd(filepath.Join(nrootRoot, nrootKernel.Initrd))
	if err != nil {
		t.Fatal(err)
	}
	// The seed's way writes to its root: each of its boots gets a fresh
	// copy of the tree, so that every one is a first boot (as each of
	// nroot's is, under its overlay) and the tree built stays as built.
	var seedTrees []string
	for i := range runs {
		dst := fmt.Sprintf("%s-boot-%d", seedRoot, i+1)
		os.RemoveAll(dst)
		if out, err := exec.Command("cp", "-a", seedRoot, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp -a %s: %v\n%s", seedRoot, err, out)
		}
		seedTrees = append(seedTrees, dst)
	}

	exports := []ganesha.Export{{ID: 1, Path: nrootRoot, Pseudo: "/node"}}
	for i, tree := range seedTrees {
		exports = append(exports, ganesha.Export{ID: 2 + i, Path: tree, Pseudo: seedPseudo(i), ReadWrite: true})
	}
	var srv *ganesha.Server
	var cfg *export.Config
	st.run("export", func() error {
		// NFS's own port, or a free one while another test's server
		// holds it: both sides' command lines name the same port.
		port := 2049
		if l, err := net.Listen("tcp", "127.0.0.1:2049"); err != nil {
			port = 0
		} else {
			l.Close()
		}
		var err error
		if srv, err = ganesha.Start(ctx, exports, ganesha.Options{NFSPort: port}); err != nil {
			return err
		}
		t.Logf("nfs-ganesha on port %d", srv.NFSPort)
		cfg, err = export.Render(nrootRoot, export.Options{Server: "10.0.2.2", Path: "/node", Port: srv.NFSPort, Ganesha: true})
		return err
	})
	t.Cleanup(srv.Stop)

	type side struct {
		name, root, cmdline string
		k                   node.Kernel
		fstype              string
		times               []float64
		uptime              []float64
		last                probe
	}
	nrootSide := &side{name: "nroot", root: nrootRoot, k: nrootKernel, cmdline: cfg.Cmdline, fstype: "overlay"}
	seedSide := &side{name: "seed's way", k: seedKernel, fstype: "nfs4"}
	for i := range runs {
		order := []*side{nrootSide, seedSide}
		if i%2 == 1 {
			order = []*side{seedSide, nrootSide}
		}
		for _, s := range order {
			cmdline := s.cmdline
			if s == seedSide {
				s.root = seedTrees[i]
				// The seed's plain recipe: the export read-write, no overlay.
				cmdline = "root=nfs4:10.0.2.2:" + seedPseudo(i) + export.NFSOptions(srv.NFSPort) + " ip=dhcp rw"
			}
			exec.Command("sync").Run()
			time.Sleep(settle)
			name := fmt.Sprintf("boot-%s-%d", strings.ReplaceAll(strings.TrimSuffix(s.name, "'s way"), " ", "-"), i+1)
			st.log = filepath.Join(work, name+".log")
			st.run(name, func() error {
				p, err := boot(ctx, vm{kernel: filepath.Join(s.root, s.k.Vmlinuz), initrd: filepath.Join(s.root, s.k.Initrd), timeout: 40 * time.Minute}, cmdline+" console=ttyS0", st.log)
				t.Logf("%s: %s; state %q, failed units: %s; root %s (%s); %s", name, cmdline, p.state, orNone(p.failedUnits), p.fstype, p.rootSource, strings.Join(p.extra, "; "))
				if err != nil {
					return err
				}
				// degraded is the end of a boot too: its time counts, and
				// the failed units are named above.
				if state := strings.TrimSpace(p.state); state != "running" && state != "degraded" {
					return fmt.Errorf("the boot ended %q, not running", state)
				}
				if p.fstype != s.fstype {
					return fmt.Errorf("/ is %q, want %s", p.fstype, s.fstype)
				}
				s.times = append(s.times, p.running.Seconds())
				s.uptime = append(s.uptime, extraSeconds(p.extra, "uptime="))
				s.last = p
				return nil
			})
			st.log = ""
		}
	}
	logTimings(t, suite, st)

	n, sd := medianOf(nrootSide.times), medianOf(seedSide.times)
	nu, su := medianOf(nrootSide.uptime), medianOf(seedSide.uptime)
	for _, l := range []string{
		fmt.Sprintf("boot time details (%s %s, TCG, 1 vCPU, median of %d): from QEMU's start to is-system-running --wait; guest uptime at the mark nroot %.1f s, seed's way %.1f s", suite, variant, runs, nu, su),
		fmt.Sprintf("  nroot:      initramfs %s; %s; root read-only NFS under an overlay; %s", nrootImg, "cmdline "+strings.TrimSpace(cfg.Cmdline), analyzeOf(nrootSide.last)),
		fmt.Sprintf("  seed's way: initramfs %s (dracut -m %q); root read-write NFS; %s", seedImg, seedModules, analyzeOf(seedSide.last)),
	} {
		fmt.Println(l)
	}
	summary := fmt.Sprintf("boot time: nroot %.1f s, seed's way %.1f s (%.2fx; goal nroot faster than the seed's way)", n, sd, n/sd)
	fmt.Println(summary)
	benchSummary(t, summary)
	if n >= sd {
		t.Errorf("nroot's image took %.1f s to multi-user, the seed's way %.1f s: nroot's is not faster", n, sd)
	}
}

// benchSummary appends lines to make bench's summary (BENCH_SUMMARY),
// when it is set.
func benchSummary(t *testing.T, lines ...string) {
	p := os.Getenv("BENCH_SUMMARY")
	if p == "" {
		return
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
}

func seedPseudo(i int) string {
	if i == 0 {
		return "/seed"
	}
	return fmt.Sprintf("/seed%d", i+1)
}

// analyzeOf is systemd-analyze time's line and the slowest units.
func analyzeOf(p probe) string {
	var out []string
	for _, e := range p.extra {
		if v, ok := strings.CutPrefix(e, "analyze="); ok {
			out = append(out, v)
		}
	}
	var blame []string
	for _, e := range p.extra {
		if v, ok := strings.CutPrefix(e, "blame="); ok && len(blame) < 4 {
			blame = append(blame, strings.Join(strings.Fields(v), " "))
		}
	}
	if len(blame) > 0 {
		out = append(out, "slowest: "+strings.Join(blame, ", "))
	}
	return strings.Join(out, "; ")
}

func extraSeconds(extra []string, key string) float64 {
	for _, e := range extra {
		if v, ok := strings.CutPrefix(e, key); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// runLogged runs a command with its output in log, and its tail in the
// error when it fails.
func runLogged(ctx context.Context, log, name string, args ...string) error {
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v; its output ends:\n%s", name, err, lastLines(log, 30))
	}
	return nil
}

// newestKernel is the newest kernel version installed in root.
func newestKernel(root string) (string, error) {
	r, err := fsroot.Open(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	var kvers []string
	for _, p := range r.Glob("boot/vmlinuz-*") {
		kvers = append(kvers, strings.TrimPrefix(p, "boot/vmlinuz-"))
	}
	if len(kvers) == 0 {
		return "", fmt.Errorf("%s: no kernel in boot/", root)
	}
	slices.SortFunc(kvers, compareKver)
	return kvers[len(kvers)-1], nil
}

// compareKver orders kernel versions by their numbers, as sort -V.
func compareKver(a, b string) int {
	split := func(s string) []int {
		var out []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(split(a), split(b))
}

// verifyNFSRoot runs nroot's initramfs checks for an NFS root (dracut's
// nfs and network modules with a handler, mount.nfs, the NFS kernel
// modules, every library, and a systemd /init's initrd.target and hook
// units, which the seed's first module list lacked) on the seed's image.
func verifyNFSRoot(root string, k node.Kernel) error {
	f, err := os.Open(filepath.Join(root, k.Initrd))
	if err != nil {
		return err
	}
	defer f.Close()
	checks, _, err := dracut.Verify(f, dracut.Options{NFS: true, Kver: k.Version, Rootfs: root})
	if err != nil {
		return err
	}
	for _, c := range checks {
		if !c.Passed() {
			return fmt.Errorf("the seed's initramfs %s: %s: %s", k.Initrd, c.Name, c.Detail)
		}
	}
	return nil
}

// describeInitrd says what a boot loads: the image's bytes, its kernel
// modules and dracut's modules (the network handler among them).
func describeInitrd(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	kos, entries := 0, 0
	var modules string
	_, err = initrd.Scan(f, func(h *initrd.Header, r io.Reader) error {
		entries++
		n := strings.TrimSuffix(strings.TrimSuffix(h.Name, ".xz"), ".zst")
		if strings.HasSuffix(n, ".ko") {
			kos++
		}
		if strings.TrimPrefix(h.Name, "./") == "usr/lib/dracut/modules.txt" {
			b, err := io.ReadAll(io.LimitReader(r, 1<<16))
			if err != nil {
				return err
			}
			modules = strings.Join(strings.Fields(string(b)), " ")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	handler := "none"
	for _, h := range []string{"network-manager", "network-legacy", "systemd-networkd", "network-wicked", "connman"} {
		if slices.Contains(strings.Fields(modules), h) {
			handler = h
		}
	}
	init := "shell init"
	if slices.Contains(strings.Fields(modules), "systemd") {
		init = "systemd"
	}
	return fmt.Sprintf("%.1f MB, %d entries, %d kernel modules, %d dracut modules, %s in the initramfs, network handler %s",
		float64(fi.Size())/1e6, entries, kos, len(strings.Fields(modules)), init, handler), nil
}

func readJSON(p string, v any) bool {
	b, err := os.ReadFile(p)
	return err == nil && json.Unmarshal(b, v) == nil
}

func writeJSON(t *testing.T, p string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// installBoottimeMarker writes the marker script and unit into root,
// enabled for multi-user.target (again over a kept tree's).
func installBoottimeMarker(root string) error {
	r, err := fsroot.Open(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, f := range []struct {
		rel, content string
		mode         uint32
	}{
		{"usr/local/sbin/nroot-boottime", boottimeMarker, 0o755},
		{"etc/systemd/system/nroot-boottime.service", boottimeUnit, 0o644},
	} {
		if err := r.MkdirAll(filepath.Dir(f.rel), 0o755); err != nil {
			return err
		}
		if err := r.WriteFile(f.rel, strings.NewReader(f.content), int64(len(f.content)), fsroot.Meta{Mode: f.mode}); err != nil {
			return fmt.Errorf("%s: %s: %w", root, f.rel, err)
		}
	}
	if err := r.MkdirAll("etc/systemd/system/multi-user.target.wants", 0o755); err != nil {
		return err
	}
	if _, err := r.Lstat("etc/systemd/system/multi-user.target.wants/nroot-boottime.service"); err == nil {
		return nil // a kept tree has it already
	}
	return r.Symlink("/etc/systemd/system/nroot-boottime.service", "etc/systemd/system/multi-user.target.wants/nroot-boottime.service", fsroot.Meta{})
}
