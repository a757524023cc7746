//go:build e2e

package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/node"
	"nroot/serve/export"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/pxe"
	"nroot/serve/status"
)

// probePackage is the package the second generation adds; the nodes'
// inventory line asks the probe whether it is installed.
const probePackage = "hello"

// clusterSuite is the release the cluster is built from.
const clusterSuite = "bookworm"

// TestClusterNetwork boots a cluster the way one is deployed, through
// the README walk-through's commands, on a network of its own: a network
// namespace with a bridge and one tap per node, where dnsmasq with the
// dnsmasq.conf nroot pxe wrote is the only DHCP and TFTP server, Debian's
// own nginx.conf includes nroot's block and runs its workers as
// www-data, and nfs-ganesha exports the generations on the bridge's
// address. No node uses QEMU's user-mode network, and nothing is routed
// out of the namespace.
//
// Generation 1 is bookworm's release alone. Phase A: node01 (BIOS, group
// alpha), node02 (BIOS, group beta) and node03 (UEFI: OVMF, ipxe.efi by
// TFTP) boot it at the same moment, each with its identity, its reserved
// address, its own NFSv4 client owner (no client's state expired), and
// its overlays (a second NIC on a second bridge with a static address,
// /etc/hosts, a host certificate, group alpha's secret on node01 alone).
// Phase B: generation 2 upgrades across the security suite's kernel ABI
// and adds a package; node01 boots it alone. Phase C: a rollback
// publishes generation 1 again and node01 boots it (and powers off by
// itself) while node02 boots generation 1's squashfs over HTTP through
// the caching tier nroot pxe writes (nginx-cache.conf, a second stock
// nginx in front of the origin) and node03 loop-mounts it from the NFS
// export.
func TestClusterNetwork(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"systemd-nspawn", "ganesha.nfsd", "rpcbind", "qemu-system-x86_64", "ip", "dnsmasq", "nginx", "curl", "ssh-keygen", "mksquashfs", "cpio", "zstd"} {
		testenv.Command(t, c)
	}
	for _, f := range []string{ovmfCode, ovmfVars, "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi", "/etc/nginx/nginx.conf", "/etc/nginx/sites-available/default"} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, "%s (make deps installs ovmf, ipxe and nginx): %v", f, err)
		}
	}
	whole := time.Now()
	ctx := context.Background()
	// A path the www-data worker may walk to the image (t.TempDir's
	// parents are root's alone).
	work, err := os.MkdirTemp("/var/tmp", "nroot-e2e-net-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)
	st := &stages{t: t, times: map[string]float64{}}
	nroot := nrootCLI(t, work)
	root := filepath.Join(work, "root")
	abi := buildReleaseOnly(t, ctx, st, nroot, root)

	im := image.Image{Dir: filepath.Join(work, "image")}
	var g1 image.Generation
	st.run("image-create", func() error {
		// The tree, and the squashfs the image-mode nodes boot.
		if err := nroot(&g1, "image", "create", "--move", "--fsimage", "squashfs", "--json", im.Dir, root); err != nil {
			return err
		}
		t.Logf("generation 1: %.1fs, %d bytes of files, %d on disk, kernel %s, images %v", g1.Seconds, g1.Bytes, g1.DiskBytes, g1.Kernel, g1.Images)
		if g1.Kernel != abi.release {
			return fmt.Errorf("generation 1 records kernel %s, not the release's %s", g1.Kernel, abi.release)
		}
		if modes := g1.Modes(); !slices.Contains(modes, "nfs-squashfs") || !slices.Contains(modes, "http-squashfs") {
			return fmt.Errorf("generation 1 boots root modes %v; want nfs-squashfs and http-squashfs", modes)
		}
		return nil
	})

	ns := fmt.Sprintf("nroot-e2e-%d", os.Getpid())
	st.run("netns", func() error { return makeNetwork(t, ns) })

	var res pxe.Result
	ids := map[string]*identity.Identity{}
	state := filepath.Join(work, "state")
	accessLog := filepath.Join(work, "nginx", "nroot-access.log")
	inv := filepath.Join(work, "nodes.txt")
	// No --segment-group (the default must serve a stock nginx), no
	// --secrets-to-any-address (every node has its address, and its
	// segment is served to that address alone); nodes booting root=http-*
	// fetch the image file from the caching tier.
	pxeRun := func() error {
		return nroot(&res, "pxe", "--http", "http://"+netServer, "--image-http", cacheURL, "--server", netServer, "--export", "/nroot", "--state", state,
			"--access-log", accessLog, "--json", im.Dir, inv)
	}
	st.run("pxe", func() error {
		if err := writeClusterOverlays(work, inv, nil); err != nil {
			return err
		}
		if err := pxeRun(); err != nil {
			return err
		}
		if res.SegmentGroup != pxe.DefaultSegmentGroup || len(res.MissingFirmware) > 0 {
			return fmt.Errorf("nroot pxe: segments for group %q (want %s), firmware missing %v", res.SegmentGroup, pxe.DefaultSegmentGroup, res.MissingFirmware)
		}
		if !strings.HasPrefix(res.CertAuthority, "@cert-authority *.cluster.test,node01,node02 ssh-ed25519 ") {
			return fmt.Errorf("nroot pxe gives the known_hosts line %q", res.CertAuthority)
		}
		// What nroot keeps for each node, read back from its store.
		for _, n := range res.Nodes {
			id, err := identity.Store{Dir: state}.Ensure(n.Name, n.Hostname)
			if err != nil {
				return err
			}
			if id.Created {
				return fmt.Errorf("%s: nroot pxe did not keep an identity for it", n.Name)
			}
			ids[n.Name] = id
		}
		if len(ids) != len(netNodes) {
			return fmt.Errorf("nroot pxe wrote %d nodes, want %d: %+v", len(ids), len(netNodes), res.Nodes)
		}
		return nroot(nil, "image", "publish", im.Dir, "1")
	})

	var srv *ganesha.Server
	st.run("servers", func() error {
		var err error
		if srv, err = startNetGanesha(t, ns, work, im); err != nil {
			return err
		}
		if err := startNetDnsmasq(t, ns, work, res.DNSMasq); err != nil {
			return err
		}
		return startStockNginx(t, ns, filepath.Join(work, "nginx"), res.Nginx, 80, true)
	})
	// From inside the namespace, as a node would: the export against the
	// image (NFSv3 and NFSv4.1), and nothing of an identity reachable.
	st.run("export-check", func() error {
		return inNetns(ns, func() error { return exportCheck(ctx, t, srv, im.Root(1), "/check") })
	})
	st.run("export-scope", func() error {
		return inNetns(ns, func() error { return exportHoldsNoIdentity(ctx, t, srv, im, ids) })
	})
	// The per-address allow, both ways, from the nodes' addresses, before
	// the nodes themselves hold them.
	st.run("segment-access", func() error { return segmentAccess(ns, im) })

	c := &cluster{t: t, st: st, work: work, ns: ns, im: im, ids: ids, ganeshaLog: srv.Log, caPub: filepath.Join(state, "ssh_ca_key.pub"),
		kernel: map[int]string{1: abi.release, 2: abi.newest}, seen: map[string]probe{}, fresh: true}

	// Phase A: all at the same moment, on a server no client has used
	// yet.
	st.run("boot-together", func() error {
		return c.boot("together", []nodeBoot{{node: netNodes[0], gen: 1}, {node: netNodes[1], gen: 1}, {node: netNodes[2], gen: 1}})
	})
	st.run("server-logs", func() error { return serverLogs(filepath.Join(work, "dnsmasq.log"), accessLog) })
	st.run("status-1", func() error {
		return statusShows(nroot, im.Dir, map[string]string{"node01": "current 1", "node02": "current 1", "node03": "current 1"})
	})

	// Phase B: generation 2 across the kernel ABI; node01 boots it alone.
	var g2 image.Generation
	st.run("publish-2", func() error {
		if err := nroot(&g2, "--cache-dir", cache().CacheDir, "image", "update", "--upgrade", "--install", probePackage, "--fsimage", "none", "--json", im.Dir); err != nil {
			return err
		}
		t.Logf("generation 2 (update --upgrade --install %s): %.1fs, %d bytes of files, %d on disk, %d shared with generation 1, kernel %s",
			probePackage, g2.Seconds, g2.Bytes, g2.DiskBytes, g2.Shared, g2.Kernel)
		st.times["update-seconds"] = g2.Seconds
		st.times["generation-1-disk-mb"] = float64(g1.DiskBytes) / 1e6
		st.times["generation-2-bytes-mb"] = float64(g2.Bytes) / 1e6
		st.times["generation-2-disk-mb"] = float64(g2.DiskBytes) / 1e6
		st.times["generation-2-shared-mb"] = float64(g2.Shared) / 1e6
		if g2.Kernel != abi.newest {
			return fmt.Errorf("generation 2 records kernel %s; the newest by Debian version order is %s", g2.Kernel, abi.newest)
		}
		if err := verifyGenerationInitrd(im, g2); err != nil {
			return err
		}
		if err := diffCrossesABI(nroot, im, abi); err != nil {
			return err
		}
		return nroot(nil, "image", "publish", im.Dir, "2")
	})
	st.run("boot-alone", func() error { return c.boot("alone", []nodeBoot{{node: netNodes[0], gen: 2}}) })
	st.run("status-2", func() error {
		return statusShows(nroot, im.Dir, map[string]string{"node01": "current 2", "node02": "stale 1", "node03": "stale 1"})
	})

	// Phase C: rollback to 1; node01 boots its tree and powers off by
	// itself, node02 and node03 boot its squashfs image at the same time,
	// their root= changed in the inventory and nroot pxe run again.
	st.run("rollback", func() error {
		if err := nroot(nil, "image", "rollback", im.Dir); err != nil {
			return err
		}
		var list struct{ Generations []image.Generation }
		if err := nroot(&list, "image", "list", "--json", im.Dir); err != nil {
			return err
		}
		if len(list.Generations) != 2 || !list.Generations[0].Published || list.Generations[1].Published {
			return fmt.Errorf("after rollback, image list gives %+v; want generation 1 published of 2", list.Generations)
		}
		return nil
	})
	var cacheBlock string
	st.run("image-modes", func() error {
		if err := writeClusterOverlays(work, inv, map[string]string{"node02": "http-squashfs", "node03": "nfs-squashfs"}); err != nil {
			return err
		}
		if err := pxeRun(); err != nil {
			return err
		}
		for _, n := range res.Nodes {
			if want := map[string]string{"node01": "tree", "node02": "http-squashfs", "node03": "nfs-squashfs"}[n.Name]; n.Root != want {
				return fmt.Errorf("nroot pxe gives %s root mode %q, want %q", n.Name, n.Root, want)
			}
		}
		if err := exportImageLines(nroot, im, 1); err != nil {
			return err
		}
		var err error
		cacheBlock, err = cacheTier(res.Cache, filepath.Join(work, "nginx-cache"))
		return err
	})
	st.run("cache", func() error {
		return startStockNginx(t, ns, filepath.Join(work, "nginx-cache"), cacheBlock, cachePort, false)
	})
	originStart := fileSize(accessLog)
	st.run("boot-rollback", func() error {
		return c.boot("rollback", []nodeBoot{{node: netNodes[0], gen: 1, powerOff: true}, {node: netNodes[1], gen: 1, mode: "http-squashfs"}, {node: netNodes[2], gen: 1, mode: "nfs-squashfs"}})
	})
	st.run("cache-logs", func() error {
		return cacheFetchedOnce(accessLog, originStart, filepath.Join(work, "nginx-cache", "access.log"), netNodes[1], 1)
	})

	st.times["whole-test"] = time.Since(whole).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "time to multi-user (QEMU start to the probe's state report), TCG, one vCPU each:\n")
	for _, n := range netNodes {
		fw := map[bool]string{true: "UEFI", false: "BIOS"}[n.uefi]
		fmt.Fprintf(&b, "  %-8s %s together (generation 1) %6.1fs, rollback boot %6.1fs", n.name, fw, st.times["running-together-"+n.name], st.times["running-rollback-"+n.name])
		if v, ok := st.times["running-alone-"+n.name]; ok {
			fmt.Fprintf(&b, ", alone (generation 2) %6.1fs", v)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  whole test %.0fs\n", st.times["whole-test"])
	t.Log(b.String())
	logTimings(t, clusterSuite, st)
}

// buildReleaseOnly bootstraps the cluster's root from the release alone
// (generation 1; its update crosses to the -updates and -security
// suites' kernel ABI), makes it a node with the probe, verifies its
// initramfs and lists the -updates and -security suites in its APT
// sources, as an administrator does before updating such an image.
func buildReleaseOnly(t *testing.T, ctx context.Context, st *stages, nroot func(v any, args ...string) error, root string) kernelABI {
	var abi kernelABI
	st.run("kernel-abi", func() error {
		var err error
		abi, err = kernelABIs(ctx, clusterSuite, mirrors(t, clusterSuite))
		t.Logf("kernel ABI: %s in the release, %s with -updates and -security", abi.release, abi.newest)
		return err
	})
	st.run("bootstrap", func() error {
		args := []string{"--cache-dir", cache().CacheDir, "bootstrap", "--no-updates", "--no-security"}
		if os.Getenv("NROOT_E2E_NO_CHECK_VALID_UNTIL") == "1" {
			args = append(args, "--no-check-valid-until")
		}
		return nroot(nil, append(args, clusterSuite, root)...)
	})
	var res node.Result
	st.run("node", func() error {
		return nroot(&res, "--cache-dir", cache().CacheDir, "node", "--e2e-probe", "--json", root)
	})
	if len(res.Kernels) != 1 || res.Kernels[0].Version != abi.release {
		t.Fatalf("nroot node on a release-only image installed kernels %+v; want the release's %s alone (did node add the -updates or -security suites?)", res.Kernels, abi.release)
	}
	verifyInitrd(t, ctx, st, root, res.Kernels[0], node.InitrdFull, true)
	st.run("sources", func() error { return addSuites(root, abi.sources) })
	return abi
}

// diffCrossesABI checks image diff 1 2: the probe's package and the new
// kernel added, the kernel metapackage changed.
func diffCrossesABI(nroot func(v any, args ...string) error, im image.Image, abi kernelABI) error {
	var d image.Diff
	if err := differs(nroot(&d, "image", "diff", "--json", im.Dir, "1", "2")); err != nil {
		return err
	}
	added, changed := map[string]bool{}, map[string]bool{}
	for _, p := range d.Added {
		added[p.Name] = true
	}
	for _, p := range d.Upgraded {
		changed[p.Name] = true
	}
	switch {
	case !added[probePackage]:
		return fmt.Errorf("image diff 1 2 does not list %s as added: %+v", probePackage, d.Added)
	case !added[abi.newestPackage]:
		return fmt.Errorf("image diff 1 2 does not list the new kernel %s as added: %+v", abi.newestPackage, d.Added)
	case !changed[abi.meta]:
		return fmt.Errorf("image diff 1 2 does not list the kernel metapackage %s as changed: %+v", abi.meta, d.Upgraded)
	}
	return nil
}

// cluster is what the boots of TestClusterNetwork share.
type cluster struct {
	t          *testing.T
	st         *stages
	work, ns   string
	im         image.Image
	ids        map[string]*identity.Identity
	ganeshaLog string
	caPub      string
	kernel     map[int]string   // by generation
	seen       map[string]probe // each node's first boot
	fresh      bool             // no node has booted yet
	mu         sync.Mutex
}

// nodeBoot is one node's boot: the generation it must come up on, in
// tree mode (mode "") or from the generation's squashfs ("http-squashfs",
// "nfs-squashfs"); with powerOff it must power off by itself.
type nodeBoot struct {
	node     netNode
	gen      int
	mode     string
	powerOff bool
}

// boot starts the nodes' QEMUs at the same moment and checks each one's
// report; where ganesha's log stood at each node's report bounds what
// that node's boot could have suffered from another client.
func (c *cluster) boot(phase string, boots []nodeBoot) error {
	var (
		wg       sync.WaitGroup
		probes   = make([]probe, len(boots))
		errs     = make([]error, len(boots))
		reported = make([]int64, len(boots))
		logs     = make([]string, len(boots))
	)
	start := fileSize(c.ganeshaLog)
	for i, b := range boots {
		logs[i] = filepath.Join(c.work, "serial-"+phase+"-"+b.node.name+".log")
		m, err := c.vm(b)
		if err != nil {
			return err
		}
		m.reported = func() {
			c.mu.Lock()
			reported[i] = fileSize(c.ganeshaLog)
			c.mu.Unlock()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i], errs[i] = boot(context.Background(), m, "", logs[i])
		}()
	}
	wg.Wait()
	var all []error
	var owners []netNode
	var ownerReports []int64
	for i, b := range boots {
		logBoot(c.t, c.st, phase+"-"+b.node.name, probes[i])
		if errs[i] == nil {
			errs[i] = c.check(b, probes[i])
		}
		if errs[i] != nil {
			c.t.Logf("%s's serial log:\n%s", b.node.name, lastLines(logs[i], 80))
			all = append(all, fmt.Errorf("%s (%s): %w", b.node.name, phase, errs[i]))
		}
		if b.mode != "http-squashfs" {
			owners, ownerReports = append(owners, b.node), append(ownerReports, reported[i])
		}
	}
	if len(all) == 0 {
		// A node booting again ends its earlier client, which ganesha
		// may expire: only the first boots, on a server no client has
		// used, must see no expiry at all.
		all = append(all, clientOwners(c.t, c.ganeshaLog, start, owners, ownerReports, c.fresh))
		c.fresh = false
	}
	return errors.Join(all...)
}

// vm is the QEMU machine of a node: its tap on the boot network, its
// second NIC's tap on the second bridge, its own UEFI variable store.
func (c *cluster) vm(b nodeBoot) (vm, error) {
	n := b.node
	m := vm{mac: n.mac, netns: c.ns, tap: tapName(n), uefi: n.uefi, timeout: 40 * time.Minute, powerOff: b.powerOff}
	if n.nic2 != "" {
		m.nic2, m.tap2 = n.nic2, tap2Name(n)
	}
	if n.uefi {
		m.vars = filepath.Join(c.work, n.name+"-vars.fd")
		b, err := os.ReadFile(ovmfVars)
		if err != nil {
			return m, err
		}
		if err := os.WriteFile(m.vars, b, 0o644); err != nil {
			return m, err
		}
	}
	return m, nil
}

// check is what every node's report must show: a clean boot of the
// generation's tree or image with its kernel and package, the identity
// nroot keeps (the same at every boot), its reserved address, its own
// NFSv4 client owner and no state recovery, its overlays, and nothing
// it wrote nor any key in a generation.
func (c *cluster) check(b nodeBoot, p probe) error {
	n, id := b.node, c.ids[b.node.name]
	if err := p.booted(c.im.Root(b.gen)); err != nil {
		return err
	}
	wantPkg := map[int]string{1: "absent", 2: "installed"}[b.gen]
	switch {
	case p.kernel != c.kernel[b.gen]:
		return fmt.Errorf("generation %d: the node runs kernel %s, want %s", b.gen, p.kernel, c.kernel[b.gen])
	case p.hostname != id.Hostname || p.machineID != id.MachineID || p.hostkey != hostKeyDigest(id.Keys):
		return fmt.Errorf("booted as hostname %q, machine-id %s, host key %s; nroot keeps hostname %q, machine-id %s, host key %s",
			p.hostname, p.machineID, p.hostkey, id.Hostname, id.MachineID, hostKeyDigest(id.Keys))
	case !strings.Contains(" "+p.address+" ", " "+n.address+"/24 "):
		return fmt.Errorf("addresses %q, not its reservation %s", p.address, n.address)
	case p.pkg != probePackage+":"+wantPkg:
		return fmt.Errorf("generation %d: the probe reports %q, want %s:%s", b.gen, p.pkg, probePackage, wantPkg)
	case p.nfsStateErrors != "0":
		return fmt.Errorf("the kernel logged %s NFS state recoveries", p.nfsStateErrors)
	}
	if err := rootFrom(b, p); err != nil {
		return err
	}
	c.mu.Lock()
	prev, ok := c.seen[n.name]
	if !ok {
		c.seen[n.name] = p
	}
	c.mu.Unlock()
	if ok && (prev.machineID != p.machineID || prev.hostkey != p.hostkey) {
		return fmt.Errorf("booted again with machine-id %s and host key %s, first %s and %s", p.machineID, p.hostkey, prev.machineID, prev.hostkey)
	}
	if err := overlaysApplied(n.name, p, c.caPub); err != nil {
		return err
	}
	for _, g := range []int{1, 2} {
		r := c.im.Root(g)
		if _, err := os.Stat(r); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(r, "etc/nroot-probe")); err == nil {
			return fmt.Errorf("the probe's write reached generation %d", g)
		}
		if _, err := os.Stat(filepath.Join(r, "etc/ssh/ssh_host_ed25519_key")); err == nil {
			return fmt.Errorf("a host key is in generation %d", g)
		}
	}
	return nil
}

// rootFrom checks where the node's root came from: the generation's tree
// over NFS; its squashfs loop-mounted from the file on the NFS export;
// or its squashfs fetched over HTTP, no NFS volume at all.
func rootFrom(b nodeBoot, p probe) error {
	gen := "/nroot/generations/" + strconv.Itoa(b.gen)
	switch b.mode {
	case "":
		if !strings.HasSuffix(p.rootSource, gen+"/root") {
			return fmt.Errorf("the lower root is %q, not generation %d's tree", p.rootSource, b.gen)
		}
		if p.uniqueID != uniquifier(b.node) {
			return fmt.Errorf("nfs4_unique_id is %q, want %s", p.uniqueID, uniquifier(b.node))
		}
	case "nfs-squashfs":
		if err := imageRoot(p, "root.squashfs", netServer); err != nil {
			return err
		}
		if p.uniqueID != uniquifier(b.node) {
			return fmt.Errorf("nfs4_unique_id is %q, want %s", p.uniqueID, uniquifier(b.node))
		}
	case "http-squashfs":
		return imageRoot(p, "root.squashfs", "")
	default:
		return fmt.Errorf("no image mode %q", b.mode)
	}
	return nil
}

// loopFields splits losetup --raw's "BACK-FILE BACK-MAJ:MIN" line:
// raw mode writes the blanks inside a field as \x20, and a file the
// initramfs removed once attached (livenet's fetched copy) reads
// "FILE (deleted)".
func loopFields(line string) []string {
	f := strings.Fields(line)
	for i := range f {
		f[i] = strings.TrimSpace(strings.ReplaceAll(f[i], `\x20`, " "))
	}
	if len(f) > 0 {
		f[0] = strings.TrimSuffix(f[0], " (deleted)")
	}
	return f
}

// onNFSVolume says whether dev (MAJ:MIN) is an NFS volume of server,
// in /proc/fs/nfsfs/volumes's lines: NV SERVER PORT DEV FSID FSC, the
// server an IPv4 address in hex.
func onNFSVolume(volumes []string, dev, server string) bool {
	a, err := netip.ParseAddr(server)
	if err != nil || !a.Is4() {
		return false
	}
	b := a.As4()
	for _, v := range volumes {
		if f := strings.Fields(v); len(f) >= 4 && f[3] == dev && strings.EqualFold(f[1], hex.EncodeToString(b[:])) {
			return true
		}
	}
	return false
}

// cachePort is where the caching tier listens, beside the origin's 80.
const cachePort = 8080

// cacheURL is the caching tier as nodes reach it (nroot pxe --image-http).
var cacheURL = fmt.Sprintf("http://%s:%d", netServer, cachePort)

// exportImageLines checks the lines nroot export --image gives for the
// generation's squashfs, over NFS and over HTTP through the caching tier.
func exportImageLines(nroot func(v any, args ...string) error, im image.Image, gen int) error {
	genPath := "/generations/" + strconv.Itoa(gen)
	var cfg export.Config
	if err := nroot(&cfg, "export", "--json", "--server", netServer, "--image", filepath.Join(filepath.Dir(im.Root(gen)), "root.squashfs"), "--image-path", "/nroot"+genPath,
		"--http", cacheURL+genPath+"/root.squashfs", im.Root(gen)); err != nil {
		return err
	}
	for _, w := range []struct{ got, want string }{
		{cfg.CmdlineNFSImg, "root=live:nfs4:" + netServer + ":/nroot" + genPath + "/root.squashfs "},
		{cfg.CmdlineHTTP, "root=live:" + cacheURL + genPath + "/root.squashfs "},
	} {
		if !strings.HasPrefix(w.got, w.want) {
			return fmt.Errorf("nroot export gives %q, want it to start %q", w.got, w.want)
		}
	}
	return nil
}

// cacheTier writes, in dir, the caching tier's block as this network
// runs it: nroot pxe's nginx-cache.conf, listening on --image-http's
// port, with its cache directory moved into the test.
func cacheTier(conf, dir string) (string, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	block := string(b)
	// nroot pxe listens on --image-http's port.
	if listen := fmt.Sprintf("listen %d;", cachePort); !strings.Contains(block, listen) {
		return "", fmt.Errorf("%s has no %q for --image-http's port:\n%s", conf, listen, block)
	}
	for old, new := range map[string]string{
		"proxy_cache_path " + pxe.CacheDir + " ": "proxy_cache_path " + filepath.Join(dir, "cache") + " ",
	} {
		if !strings.Contains(block, old) {
			return "", fmt.Errorf("%s has no %q", conf, old)
		}
		block = strings.Replace(block, old, new, 1)
	}
	if !strings.Contains(block, "proxy_pass http://"+netServer+";") {
		return "", fmt.Errorf("%s does not proxy to the origin http://%s:\n%s", conf, netServer, block)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(dir, "nroot-cache.conf")
	return file, os.WriteFile(file, []byte(block), 0o644)
}

// cacheFetchedOnce checks the two access logs after the image boots:
// the caching tier served node n the generation's image file, which the
// origin sent to the cache (the bridge's own address) exactly once and
// never to the node; the origin sent the node the kernel and the
// initramfs once each.
func cacheFetchedOnce(originLog string, from int64, cacheLog string, n netNode, gen int) error {
	origin := readFile(originLog)
	if int64(len(origin)) < from {
		return fmt.Errorf("%s shrank", originLog)
	}
	origin = origin[from:]
	cached := readFile(cacheLog)
	sent := func(log, to, file string) int {
		req := regexp.QuoteMeta(fmt.Sprintf(`"GET /generations/%d/%s HTTP/1.`, gen, file))
		return len(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(to)+` .*`+req+`[01]" 200 `).FindAllString(log, -1))
	}
	switch {
	case sent(cached, n.address, "root.squashfs") != 1:
		return fmt.Errorf("the cache's log has %d 200s of root.squashfs to %s, want 1:\n%s", sent(cached, n.address, "root.squashfs"), n.address, lastN(cached, 3000))
	case sent(origin, netServer, "root.squashfs") != 1 || sent(origin, n.address, "root.squashfs") != 0:
		return fmt.Errorf("the origin sent root.squashfs %d times to the cache and %d to %s; want once to the cache alone:\n%s",
			sent(origin, netServer, "root.squashfs"), sent(origin, n.address, "root.squashfs"), n.address, lastN(origin, 3000))
	}
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if k := sent(origin, n.address, f) + sent(origin, netServer, f); k != 1 {
			return fmt.Errorf("the origin sent %s %d times for %s, want once:\n%s", f, k, n.address, lastN(origin, 3000))
		}
	}
	return nil
}

// nrootCLI builds nroot and returns a runner of its commands that
// decodes their --json output into v (when not nil).
func nrootCLI(t *testing.T, work string) func(v any, args ...string) error {
	bin := filepath.Join(work, "nroot")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/nroot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return func(v any, args ...string) error {
		cmd := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t.Logf("$ nroot %s", strings.Join(args, " "))
		err := cmd.Run()
		if v != nil && stdout.Len() > 0 {
			// A document is printed whatever the status (image diff
			// exits 1 when the generations differ).
			if jerr := json.Unmarshal([]byte(stdout.String()), v); jerr != nil {
				return fmt.Errorf("nroot %s --json: %v", strings.Join(args, " "), jerr)
			}
		}
		if err != nil {
			return &cliError{code: cmd.ProcessState.ExitCode(), msg: fmt.Sprintf("nroot %s: %v\n%s", strings.Join(args, " "), err, lastN(stderr.String(), 40))}
		}
		return nil
	}
}

// cliError is a command that exited non-zero, with its status.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// differs accepts image diff's status 1 (the generations differ) and
// nothing else.
func differs(err error) error {
	var ce *cliError
	if errors.As(err, &ce) && ce.code == 1 {
		return nil
	}
	if err == nil {
		return errors.New("image diff exits 0 for generations that differ")
	}
	return err
}

// writeClusterOverlays writes the cluster's inventory, node01 in group
// alpha, node02 in group beta, node03 in none, each with the root mode
// roots gives it (the tree when none), and the overlays beside it: site
// (a template), alpha-secret (a secret of group alpha alone), report
// (what the probe reports of them) and tcg, with the built-ins hosts,
// network and ssh-host-cert. net.ifnames=0 names the second NIC eth1
// (nroot pxe's BOOTIF keeps the initramfs on the boot NIC).
func writeClusterOverlays(work, inv string, roots map[string]string) error {
	args := "nroot.probe.package=" + probePackage + " console=ttyS0 net.ifnames=0"
	var b strings.Builder
	b.WriteString(`@alpha overlays=hosts,network,ssh-host-cert,site,alpha-secret,report,tcg role=alpha domain=cluster.test
@beta  overlays=hosts,network,ssh-host-cert,site,report,tcg role=beta domain=cluster.test
`)
	for _, n := range netNodes {
		fmt.Fprintf(&b, "%s mac=%s address=%s/24", n.name, n.mac, n.address)
		if n.group != "" {
			fmt.Fprintf(&b, " groups=%s", n.group)
		}
		if n.nic2 != "" {
			fmt.Fprintf(&b, " eth1.address=%s/24 eth1.mtu=1400", n.address2)
		}
		if r := roots[n.name]; r != "" {
			fmt.Fprintf(&b, " root=%s", r)
		}
		fmt.Fprintf(&b, " args=\"%s\"\n", args)
	}
	if err := os.WriteFile(inv, []byte(b.String()), 0o644); err != nil {
		return err
	}
	ov := filepath.Join(filepath.Dir(inv), "overlays")
	for p, c := range map[string]string{
		"site/etc/nroot-site.tmpl":                "{{.Node.Hostname}} {{.Vars.role}} {{len .Nodes}} nodes, group {{index .Node.Groups 0}} of {{join (index .Groups .Vars.role).Nodes \",\"}}\n",
		"alpha-secret/etc/nroot-alpha.key.secret": "alpha's secret\n",
		"report/etc/nroot-probe.d/overlays": `#!/bin/sh
echo "site=$(cat /etc/nroot-site)"
echo "eth1=$(ip -o addr show dev eth1 | awk '$3 == "inet" { print $4 }') mtu $(cat /sys/class/net/eth1/mtu)"
echo "hosts=$(awk '/cluster.test/ { printf "%s %s,", $1, $3 }' /etc/hosts)"
echo "cert=$(cat /etc/ssh/ssh_host_ed25519_key-cert.pub)"
echo "secret=$(stat -c '%a %u' /etc/nroot-alpha.key 2>/dev/null || echo absent)"
`,
		// A node with an interface for ifupdown waits at boot for udev
		// to settle (Debian's ifupdown-pre, 120 s): three TCG guests on
		// two shared cores were seen to take longer.
		"tcg/etc/systemd/system/ifupdown-pre.service.d/nroot-e2e-tcg.conf": "[Service]\nTimeoutSec=15min\nExecStart=\nExecStart=/bin/udevadm settle --timeout=840\n",
	} {
		full := filepath.Join(ov, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, "nroot-probe.d/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			return err
		}
	}
	return nil
}

// overlaysApplied checks what the node's overlays gave it, as its probe
// reported: its group's rendered file, its static second address on the
// second bridge, the cluster's /etc/hosts (the nodes with a domain), a
// host certificate ssh-keygen -L shows signed by the cluster CA for its
// hostname, and group alpha's secret on node01 alone, 0600. A node in no
// group has no overlay, and reports nothing.
func overlaysApplied(name string, p probe, caPub string) error {
	var n netNode
	for _, m := range netNodes {
		if m.name == name {
			n = m
		}
	}
	if n.group == "" {
		if len(p.extra) > 0 {
			return fmt.Errorf("%s is in no group, yet an overlay reported %q", name, p.extra)
		}
		return nil
	}
	got := map[string]string{}
	for _, l := range p.extra {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	secret := map[string]string{"alpha": "600 0", "beta": "absent"}[n.group]
	var hosts strings.Builder
	for _, m := range netNodes {
		if m.group != "" {
			fmt.Fprintf(&hosts, "%s %s,", m.address, m.name)
		}
	}
	for k, want := range map[string]string{
		"site":   name + " " + n.group + " " + strconv.Itoa(len(netNodes)) + " nodes, group " + n.group + " of " + name,
		"eth1":   n.address2 + "/24 mtu 1400",
		"hosts":  hosts.String(),
		"secret": secret,
	} {
		if got[k] != want {
			return fmt.Errorf("%s: the overlays give %s=%q, want %q (the probe reported %q)", name, k, got[k], want, p.extra)
		}
	}
	cert := filepath.Join(os.TempDir(), "nroot-e2e-"+name+"-cert.pub")
	defer os.Remove(cert)
	if err := os.WriteFile(cert, []byte(got["cert"]+"\n"), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("ssh-keygen", "-L", "-f", cert).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: ssh-keygen -L on its host certificate %q: %v: %s", name, got["cert"], err, out)
	}
	fp, err := exec.Command("ssh-keygen", "-l", "-f", caPub).Output()
	if err != nil || len(strings.Fields(string(fp))) < 2 {
		return fmt.Errorf("ssh-keygen -l %s: %v", caPub, err)
	}
	for _, w := range []string{"ssh-ed25519-cert-v01@openssh.com host certificate", "Signing CA: ED25519 " + strings.Fields(string(fp))[1], "\n                " + name + "\n", name + ".cluster.test"} {
		if !strings.Contains(string(out), w) {
			return fmt.Errorf("%s: ssh-keygen -L on its host certificate lacks %q:\n%s", name, w, out)
		}
	}
	return nil
}

// statusShows runs nroot status and compares each node's state and
// booted generation with want ("current 1").
func statusShows(nroot func(v any, args ...string) error, img string, want map[string]string) error {
	var rep status.Report
	if err := nroot(&rep, "status", "--json", img); err != nil {
		return err
	}
	got := map[string]string{}
	for _, n := range rep.Nodes {
		got[n.Name] = fmt.Sprintf("%s %d", n.State, n.BootedGeneration)
	}
	for name, w := range want {
		if got[name] != w {
			return fmt.Errorf("nroot status: %s is %q, want %q (published %d; %+v)", name, got[name], w, rep.PublishedGeneration, rep.Nodes)
		}
	}
	return nil
}
