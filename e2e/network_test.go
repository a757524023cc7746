//go:build e2e

package e2e

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/serve/export"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/pxe"
)

// Debian's ovmf: the UEFI firmware and the variable store each UEFI node
// gets a copy of.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// The private network: a bridge in a namespace the test makes, nothing
// routed out of it.
const (
	netServer = "10.33.0.1"
	netPrefix = "10.33.0."
)

// netNode is one node of the network test's inventory.
type netNode struct {
	name, mac, address string
	uefi               bool
}

var netNodes = []netNode{
	{"node01", "52:54:00:4e:53:01", netPrefix + "11", false},
	{"node02", "52:54:00:4e:53:02", netPrefix + "12", false},
	{"node03", "52:54:00:4e:53:03", netPrefix + "13", true},
}

// TestClusterNetwork boots a cluster the way one is deployed: in a
// network namespace with a bridge and one tap per node, dnsmasq with the
// dnsmasq.conf nroot pxe wrote is the only DHCP and TFTP server, Debian's
// own nginx.conf includes nroot's block and runs its workers as www-data,
// and nfs-ganesha exports the generations on the bridge's address. Each
// node has a fixed address from the inventory. Node02 boots alone first;
// then the three boot at the same moment from the published generation,
// node03 by UEFI (Debian's OVMF, ipxe.efi by TFTP as dnsmasq picks it by
// client architecture), the others by BIOS (QEMU's iPXE ROM). All must
// reach multi-user with their own identity and address, each presenting
// its own NFSv4 client owner, and none of them expiring another's state.
// Before the boots, curl bound to each node's address asks nginx for the
// segments: a node's own is 200, another's 403.
func TestClusterNetwork(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"systemd-nspawn", "ganesha.nfsd", "rpcbind", "qemu-system-x86_64", "ip", "dnsmasq", "nginx", "curl"} {
		testenv.Command(t, c)
	}
	for _, f := range []string{ovmfCode, ovmfVars, "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi", "/etc/nginx/nginx.conf", "/etc/nginx/sites-available/default"} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, "%s (make deps installs ovmf, ipxe and nginx): %v", f, err)
		}
	}
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
	im := image.Image{Dir: filepath.Join(work, "image")}
	st.run("bootstrap", func() error {
		return nroot(nil, "--cache-dir", cache().CacheDir, "bootstrap", "bookworm", root)
	})
	st.run("node", func() error {
		return nroot(nil, "--cache-dir", cache().CacheDir, "node", "--e2e-probe", root)
	})
	st.run("image-create", func() error {
		return nroot(nil, "image", "create", "--move", im.Dir, root)
	})

	ns := fmt.Sprintf("nroot-e2e-%d", os.Getpid())
	st.run("netns", func() error { return makeNetwork(t, ns, len(netNodes)) })

	var res pxe.Result
	ids := map[string]*identity.Identity{}
	st.run("pxe", func() error {
		var inv strings.Builder
		for _, n := range netNodes {
			fmt.Fprintf(&inv, "%s mac=%s address=%s/24 args=\"console=ttyS0\"\n", n.name, n.mac, n.address)
		}
		file := filepath.Join(work, "nodes.txt")
		if err := os.WriteFile(file, []byte(inv.String()), 0o644); err != nil {
			return err
		}
		state := filepath.Join(work, "state")
		// No --segment-group: the default must serve a stock nginx.
		if err := nroot(&res, "pxe", "--http", "http://"+netServer, "--server", netServer, "--export", "/nroot", "--state", state, "--json", im.Dir, file); err != nil {
			return err
		}
		if res.SegmentGroup != pxe.DefaultSegmentGroup || len(res.MissingFirmware) > 0 {
			return fmt.Errorf("nroot pxe: segments for group %q (want %s), firmware missing %v", res.SegmentGroup, pxe.DefaultSegmentGroup, res.MissingFirmware)
		}
		for _, n := range res.Nodes {
			id, err := identity.Store{Dir: state}.Ensure(n.Name, n.Hostname)
			if err != nil {
				return err
			}
			ids[n.Name] = id
		}
		return nroot(nil, "image", "publish", im.Dir, "1")
	})

	var ganeshaLog string
	st.run("servers", func() error {
		var err error
		if ganeshaLog, err = startNetGanesha(t, ns, work, im); err != nil {
			return err
		}
		if err := startNetDnsmasq(t, ns, work, res.DNSMasq); err != nil {
			return err
		}
		return startStockNginx(t, ns, work, res.Nginx)
	})
	nginxLog := filepath.Join(work, "nginx", "access.log")
	dnsmasqLog := filepath.Join(work, "dnsmasq.log")

	// The per-address allow, both ways, from the nodes' addresses, before
	// the nodes themselves hold them.
	st.run("segment-access", func() error { return segmentAccess(ns, im) })

	boot1 := func(n netNode, log string, reported func(), limit time.Duration) (probe, error) {
		m := vm{mac: n.mac, netns: ns, tap: tapName(n), uefi: n.uefi, timeout: limit, reported: reported}
		if n.uefi {
			m.vars = filepath.Join(work, n.name+"-vars.fd")
			b, err := os.ReadFile(ovmfVars)
			if err != nil {
				return probe{}, err
			}
			if err := os.WriteFile(m.vars, b, 0o644); err != nil {
				return probe{}, err
			}
		}
		return boot(ctx, m, "", log)
	}
	check := func(n netNode, p probe) error {
		id := ids[n.name]
		if err := p.booted(im.Root(1)); err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		switch {
		case p.hostname != id.Hostname || p.machineID != id.MachineID || p.hostkey != hostKeyDigest(id.Keys):
			return fmt.Errorf("%s booted as hostname %q, machine-id %s; nroot keeps %q, %s", n.name, p.hostname, p.machineID, id.Hostname, id.MachineID)
		case !strings.Contains(" "+p.address+" ", " "+n.address+"/24 "):
			return fmt.Errorf("%s has addresses %q, not its reservation %s", n.name, p.address, n.address)
		case p.uniqueID != uniquifier(n):
			return fmt.Errorf("%s's nfs4_unique_id is %q, want %s", n.name, p.uniqueID, uniquifier(n))
		case p.nfsStateErrors != "0":
			return fmt.Errorf("%s's kernel logged %s NFS state recoveries", n.name, p.nfsStateErrors)
		case !strings.HasSuffix(p.rootSource, "/nroot/generations/1/root"):
			return fmt.Errorf("%s's lower root is %q, not generation 1", n.name, p.rootSource)
		}
		return nil
	}

	// All at the same moment, on a server no client has used yet. Where
	// ganesha's log stood at each node's report bounds what that node's
	// boot could have suffered.
	st.run("boot-together", func() error {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			probes   = make([]probe, len(netNodes))
			errs     = make([]error, len(netNodes))
			reported = make([]int64, len(netNodes))
		)
		start := fileSize(ganeshaLog)
		for i, n := range netNodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probes[i], errs[i] = boot1(n, filepath.Join(work, "serial-"+n.name+".log"), func() {
					mu.Lock()
					reported[i] = fileSize(ganeshaLog)
					mu.Unlock()
				}, 40*time.Minute)
			}()
		}
		wg.Wait()
		var all []error
		for i, n := range netNodes {
			logBoot(t, st, "together-"+n.name, probes[i])
			if errs[i] != nil {
				t.Logf("%s's serial log:\n%s", n.name, lastLines(filepath.Join(work, "serial-"+n.name+".log"), 60))
				all = append(all, fmt.Errorf("%s: %w", n.name, errs[i]))
				continue
			}
			if err := check(n, probes[i]); err != nil {
				all = append(all, err)
			}
		}
		if len(all) == 0 {
			all = append(all, clientOwners(t, ganeshaLog, start, reported))
		}
		return errors.Join(all...)
	})
	st.run("server-logs", func() error { return serverLogs(dnsmasqLog, nginxLog) })

	// One node alone: the time to multi-user to compare with.
	alone := netNodes[1]
	st.log = filepath.Join(work, "serial-alone.log")
	st.run("boot-alone", func() error {
		p, err := boot1(alone, st.log, nil, 0)
		logBoot(t, st, "alone-"+alone.name, p)
		if err != nil {
			return err
		}
		return check(alone, p)
	})
	st.log = ""

	var b strings.Builder
	fmt.Fprintf(&b, "time to multi-user (QEMU start to the probe's state report), TCG:\n  %-8s alone    %6.1fs\n", alone.name, st.times["running-alone-"+alone.name])
	for _, n := range netNodes {
		fw := "BIOS"
		if n.uefi {
			fw = "UEFI"
		}
		fmt.Fprintf(&b, "  %-8s together %6.1fs (%s)\n", n.name, st.times["running-together-"+n.name], fw)
	}
	t.Log(b.String())
	logTimings(t, "network", st)
}

func tapName(n netNode) string { return "tap-" + n.name }

// nsRun runs a command inside the namespace and returns its output.
func nsRun(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// makeNetwork makes the namespace, its bridge with the server's address
// and one tap per node on it; the test's end removes them.
func makeNetwork(t *testing.T, ns string, taps int) error {
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", ns, err, out)
	}
	// Registered first, so it runs after every process in it has ended.
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	cmds := [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0"},
		{"ip", "addr", "add", netServer + "/24", "dev", "br0"},
		{"ip", "link", "set", "br0", "up"},
	}
	for _, n := range netNodes[:taps] {
		cmds = append(cmds, []string{"ip", "tuntap", "add", "dev", tapName(n), "mode", "tap"},
			[]string{"ip", "link", "set", tapName(n), "master", "br0"},
			[]string{"ip", "link", "set", tapName(n), "up"})
	}
	for _, c := range cmds {
		if _, err := nsRun(ns, c...); err != nil {
			return err
		}
	}
	// Nothing leaves: the namespace has no route but the bridge's.
	out, err := nsRun(ns, "ip", "route", "show")
	if err != nil {
		return err
	}
	if strings.Contains(out, "default") {
		return fmt.Errorf("the namespace has a default route: %s", out)
	}
	return nil
}

// startInNS starts a long-running command in the namespace, in its own
// process group, ended (with all it forked) when the test ends.
func startInNS(t *testing.T, ns, logFile string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, err
	}
	t.Cleanup(func() {
		pg := -cmd.Process.Pid
		syscall.Kill(pg, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(pg, syscall.SIGKILL)
			<-done
		}
		out.Close()
	})
	return cmd, nil
}

// waitListening waits until addr:port accepts a connection inside the
// namespace.
func waitListening(ns, addr string, port int, within time.Duration, logFile string) error {
	deadline := time.Now().Add(within)
	for {
		if _, err := nsRun(ns, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, port)); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s:%d after %v; %s:\n%s", addr, port, within, logFile, lastLines(logFile, 30))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// startNetGanesha runs nfs-ganesha in the namespace on the bridge's
// address with the generations' export nroot pxe writes, and an rpcbind
// of its own under a private /run (the host's rpcbind, if any, keeps its
// registrations). Its log records the NFSv4 clients (CLIENTID at full
// debug); it returns the log's path.
func startNetGanesha(t *testing.T, ns, work string, im image.Image) (string, error) {
	dir := filepath.Join(work, "ganesha")
	if err := os.MkdirAll(filepath.Join(dir, "recovery"), 0o755); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(im.Dir)
	if err != nil {
		return "", err
	}
	conf := ganesha.Config(dir, 2049, 20048, 32803, 875, []ganesha.Export{export.Generations(abs, "/nroot")}, true, true, false)
	conf = strings.Replace(conf, "Bind_addr = 127.0.0.1;", "Bind_addr = "+netServer+";", 1)
	conf = strings.Replace(conf, "LOG { Default_Log_Level = WARN; }", "LOG { Default_Log_Level = WARN; Components { CLIENTID = FULL_DEBUG; } }", 1)
	if !strings.Contains(conf, netServer) || !strings.Contains(conf, "CLIENTID") {
		return "", fmt.Errorf("ganesha.Config changed: cannot set the bind address and the log level:\n%s", conf)
	}
	file := filepath.Join(dir, "ganesha.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return "", err
	}
	log := filepath.Join(dir, "ganesha.log")
	script := fmt.Sprintf("mount -t tmpfs nroot-run /run && mkdir -p /run/rpcbind && { rpcbind -f -w & } && sleep 1 && exec ganesha.nfsd -F -L %s -f %s -p %s/ganesha.pid", log, file, dir)
	if _, err := startInNS(t, ns, filepath.Join(dir, "stderr"), "sh", "-c", script); err != nil {
		return "", err
	}
	return log, waitListening(ns, netServer, 2049, 60*time.Second, log)
}

// startNetDnsmasq runs dnsmasq in the namespace with the configuration
// nroot pxe wrote, on the bridge alone, DHCP and TFTP only (no DNS), as
// Debian's service runs it (user dnsmasq).
func startNetDnsmasq(t *testing.T, ns, work, conf string) error {
	log := filepath.Join(work, "dnsmasq.log")
	_, err := startInNS(t, ns, filepath.Join(work, "dnsmasq.stderr"), "dnsmasq", "--keep-in-foreground", "--conf-file="+conf,
		"--interface=br0", "--bind-interfaces", "--port=0", "--user=dnsmasq", "--pid-file="+filepath.Join(work, "dnsmasq.pid"),
		"--dhcp-leasefile="+filepath.Join(work, "dnsmasq.leases"), "--log-facility="+log, "--log-dhcp")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFile(log), "TFTP root is") {
		if time.Now().After(deadline) {
			return fmt.Errorf("dnsmasq did not start: %s%s", readFile(filepath.Join(work, "dnsmasq.stderr")), readFile(log))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// startStockNginx runs Debian's own nginx.conf, its default site
// enabled, with nroot's block included in the http block beside it, in
// the namespace; the workers run as Debian's www-data. Only the pid and
// log paths and the foreground run are changed.
func startStockNginx(t *testing.T, ns, work, block string) error {
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile("/etc/nginx/nginx.conf")
	if err != nil {
		return err
	}
	conf := "daemon off;\n" + string(b)
	for old, new := range map[string]string{
		"pid /run/nginx.pid;":         "pid " + dir + "/pid;",
		"/var/log/nginx/access.log":   dir + "/access.log",
		"/var/log/nginx/error.log":    dir + "/error.log",
		"/etc/nginx/sites-enabled/*;": "/etc/nginx/sites-available/default;\n\tinclude " + block + ";",
	} {
		if !strings.Contains(conf, old) {
			return fmt.Errorf("Debian's nginx.conf has no %q", old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return err
	}
	if out, err := nsRun(ns, "nginx", "-t", "-q", "-c", file); err != nil || strings.TrimSpace(out) != "" {
		return fmt.Errorf("nginx -t: %v %s", err, out)
	}
	if _, err := startInNS(t, ns, filepath.Join(dir, "stderr"), "nginx", "-c", file); err != nil {
		return err
	}
	return waitListening(ns, netServer, 80, 20*time.Second, filepath.Join(dir, "error.log"))
}

// segmentAccess asks nginx for node02's segment with curl bound to
// node01's address (403) and to node02's (200, the bytes nroot wrote),
// and for node01's from node02 (403). The addresses are the server's for
// this alone, and gone before a node boots.
func segmentAccess(ns string, im image.Image) error {
	addrs := []string{netNodes[0].address, netNodes[1].address}
	for _, a := range addrs {
		if _, err := nsRun(ns, "ip", "addr", "add", a+"/32", "dev", "lo"); err != nil {
			return err
		}
	}
	defer func() {
		for _, a := range addrs {
			nsRun(ns, "ip", "addr", "del", a+"/32", "dev", "lo")
		}
	}()
	want, err := os.ReadFile(filepath.Join(im.Dir, "nodes", "node02.img"))
	if err != nil {
		return err
	}
	body := filepath.Join(im.Dir, "..", "curl-body")
	defer os.Remove(body)
	for _, c := range []struct {
		from, node, code string
	}{
		{netNodes[0].address, "node02", "403"},
		{netNodes[1].address, "node02", "200"},
		{netNodes[1].address, "node01", "403"},
		{netNodes[0].address, "node01", "200"},
	} {
		os.Remove(body)
		code, err := nsRun(ns, "curl", "-sS", "--max-time", "20", "-o", body, "-w", "%{http_code}", "--interface", c.from, "http://"+netServer+"/nodes/"+c.node+".img")
		if err != nil {
			return err
		}
		if code != c.code {
			return fmt.Errorf("GET /nodes/%s.img from %s: %s, want %s", c.node, c.from, code, c.code)
		}
		if c.code == "200" && c.node == "node02" && readFile(body) != string(want) {
			return fmt.Errorf("GET /nodes/node02.img from %s: the body is not the segment nroot wrote", c.from)
		}
	}
	return nil
}

var (
	// ganesha's record of a client names its owner: the uniquifier each
	// node's kernel took from nfs.nfs4_unique_id.
	ownerInLog = regexp.MustCompile(`nroot-(?:[0-9a-f]{2}-){5}[0-9a-f]{2}`)
	// ganesha's words when it expires a client's state (not "Expired
	// (skipped)", a client it found in use).
	expiryLine = regexp.MustCompile(`(Expiring|Lease expired|Expired State|CLIENT_ID_EXPIRED)[^\n]*`)
)

// uniquifier is the nfs4_unique_id nroot pxe gives the node.
func uniquifier(n netNode) string {
	return strings.TrimPrefix(pxe.UniqueIDArg(n.mac), "nfs.nfs4_unique_id=")
}

// clientOwners reads what ganesha logged from start on: every node's own
// client owner, and no client's state expired while a node booted: none
// before the first report, none of a node's own before its report (after
// its report a node powers off, and its lease may end).
func clientOwners(t *testing.T, log string, start int64, reported []int64) error {
	b := readFile(log)
	if int64(len(b)) < start {
		return fmt.Errorf("ganesha's log %s shrank", log)
	}
	seen := map[string]bool{}
	for _, m := range ownerInLog.FindAllString(b[start:], -1) {
		seen[m] = true
	}
	// An owner ganesha shows in hex.
	for _, n := range netNodes {
		if strings.Contains(b[start:], hex.EncodeToString([]byte(uniquifier(n)))) {
			seen[uniquifier(n)] = true
		}
	}
	var missing []string
	for _, n := range netNodes {
		if !seen[uniquifier(n)] {
			missing = append(missing, uniquifier(n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ganesha's log names no client owner with %v (owners seen: %v); its last lines:\n%s", missing, seen, lastLines(log, 40))
	}
	first := reported[0]
	for _, r := range reported {
		first = min(first, r)
	}
	var bad []string
	for _, loc := range expiryLine.FindAllStringIndex(b[start:], -1) {
		at := start + int64(loc[0])
		line := b[start+int64(loc[0]) : start+int64(loc[1])]
		t.Logf("ganesha: %s", line)
		if at < first {
			bad = append(bad, line)
			continue
		}
		for i, n := range netNodes {
			if at < reported[i] && strings.Contains(line, uniquifier(n)) {
				bad = append(bad, line)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("ganesha expired client state while the nodes booted: %q", firstN(bad, 5))
	}
	t.Logf("ganesha's clients: %d owners, %v", len(seen), seen)
	return nil
}

// serverLogs checks what the servers logged: dnsmasq gave each node its
// reserved address and sent the UEFI node ipxe.efi by TFTP; nginx sent
// each node's segment to that node's address, with 200.
func serverLogs(dnsmasqLog, nginxLog string) error {
	d, n := readFile(dnsmasqLog), readFile(nginxLog)
	for _, node := range netNodes {
		if !strings.Contains(d, fmt.Sprintf("DHCPACK(br0) %s %s", node.address, node.mac)) {
			return fmt.Errorf("dnsmasq's log has no DHCPACK of %s to %s:\n%s", node.address, node.mac, lastN(d, 3000))
		}
		if node.uefi && !strings.Contains(d, "ipxe.efi to "+node.address) {
			return fmt.Errorf("dnsmasq did not send ipxe.efi to the UEFI node %s:\n%s", node.address, lastN(d, 3000))
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node.address) + ` .*"GET /nodes/` + node.name + `\.img HTTP/1\.[01]" 200 `).MatchString(n) {
			return fmt.Errorf("nginx's log has no 200 for %s's segment to %s:\n%s", node.name, node.address, lastN(n, 3000))
		}
	}
	return nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
