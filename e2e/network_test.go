//go:build e2e

package e2e

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nroot/e2e/ganesha"
	"nroot/serve/export"
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

// netNode is one node of the cluster's inventory: its boot NIC's MAC
// and reserved address, its group, and a second NIC (nic2's MAC, on the
// second bridge, with the static address2 its network overlay gives).
type netNode struct {
	name, mac, address string
	uefi               bool
	group              string
	nic2, address2     string
}

var netNodes = []netNode{
	{"node01", "52:54:00:4e:53:01", netPrefix + "11", false, "alpha", "52:54:00:4e:54:01", "192.168.50.11"},
	{"node02", "52:54:00:4e:53:02", netPrefix + "12", false, "beta", "52:54:00:4e:54:02", "192.168.50.12"},
	{"node03", "52:54:00:4e:53:03", netPrefix + "13", true, "", "", ""},
}

func tapName(n netNode) string  { return "tap-" + n.name }
func tap2Name(n netNode) string { return "tap2-" + n.name }

// inNetns runs fn on a thread in the namespace: the sockets fn opens
// are the namespace's (a Go client reaches the servers there as a node
// would). The thread returns to this namespace after, or ends with fn's
// goroutine when it cannot.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// nsRun runs a command inside the namespace and returns its output.
func nsRun(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// makeNetwork makes the namespace, its bridge with the server's address
// and one tap per node on it, and a second bridge (no address: nothing
// boots from it) with the taps of the nodes' second NICs; the test's end
// removes them.
func makeNetwork(t *testing.T, ns string) error {
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
		{"ip", "link", "add", "br1", "type", "bridge", "forward_delay", "0"},
		{"ip", "link", "set", "br1", "up"},
	}
	tap := func(name, bridge string) {
		cmds = append(cmds, []string{"ip", "tuntap", "add", "dev", name, "mode", "tap"},
			[]string{"ip", "link", "set", name, "master", bridge},
			[]string{"ip", "link", "set", name, "up"})
	}
	for _, n := range netNodes {
		tap(tapName(n), "br0")
		if n.nic2 != "" {
			tap(tap2Name(n), "br1")
		}
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
// address with the generations' export nroot pxe writes (and generation
// 1's root at /check, NFSv3 too, for nroot check), and an rpcbind of its
// own under a private /run (the host's rpcbind, if any, keeps its
// registrations). Its log records the NFSv4 clients (CLIENTID at full
// debug).
func startNetGanesha(t *testing.T, ns, work string, im image.Image) (*ganesha.Server, error) {
	dir := filepath.Join(work, "ganesha")
	if err := os.MkdirAll(filepath.Join(dir, "recovery"), 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(im.Dir)
	if err != nil {
		return nil, err
	}
	srv := &ganesha.Server{Host: netServer, Dir: dir, NFSPort: 2049, MountPort: 20048, Log: filepath.Join(dir, "ganesha.log")}
	exports := []ganesha.Export{export.Generations(abs, "/nroot"), {Path: im.Root(1), Pseudo: "/check"}}
	conf := ganesha.Config(dir, srv.NFSPort, srv.MountPort, 32803, 875, exports, false, true, false)
	conf = strings.Replace(conf, "Bind_addr = 127.0.0.1;", "Bind_addr = "+netServer+";", 1)
	conf = strings.Replace(conf, "LOG { Default_Log_Level = WARN; }", "LOG { Default_Log_Level = WARN; Components { CLIENTID = FULL_DEBUG; } }", 1)
	if !strings.Contains(conf, netServer) || !strings.Contains(conf, "CLIENTID") {
		return nil, fmt.Errorf("ganesha.Config changed: cannot set the bind address and the log level:\n%s", conf)
	}
	file := filepath.Join(dir, "ganesha.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	script := fmt.Sprintf("mount -t tmpfs nroot-run /run && mkdir -p /run/rpcbind && { rpcbind -f -w & } && sleep 1 && exec ganesha.nfsd -F -L %s -f %s -p %s/ganesha.pid", srv.Log, file, dir)
	if _, err := startInNS(t, ns, filepath.Join(dir, "stderr"), "sh", "-c", script); err != nil {
		return nil, err
	}
	return srv, waitListening(ns, netServer, srv.NFSPort, 60*time.Second, srv.Log)
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

// startStockNginx runs Debian's own nginx.conf in the namespace, in
// dir, with block included in the http block (beside Debian's default
// site with site); the workers run as Debian's www-data. Only the pid
// and log paths and the foreground run are changed. It waits for port.
func startStockNginx(t *testing.T, ns, dir, block string, port int, site bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile("/etc/nginx/nginx.conf")
	if err != nil {
		return err
	}
	include := "include " + block + ";"
	if site {
		include = "/etc/nginx/sites-available/default;\n\t" + include
	}
	conf := "daemon off;\n" + string(b)
	for old, new := range map[string]string{
		"pid /run/nginx.pid;":                 "pid " + dir + "/pid;",
		"/var/log/nginx/access.log":           dir + "/access.log",
		"/var/log/nginx/error.log":            dir + "/error.log",
		"include /etc/nginx/sites-enabled/*;": map[bool]string{true: "include " + include, false: include}[site],
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
	return waitListening(ns, netServer, port, 20*time.Second, filepath.Join(dir, "error.log"))
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
// client owner, and with noExpiry no client's state expired while a node
// booted: none before the first report, none of a node's own before its
// report (after its report a node powers off, and its lease may end).
// reported is where the log stood at each node's report.
func clientOwners(t *testing.T, log string, start int64, nodes []netNode, reported []int64, noExpiry bool) error {
	b := readFile(log)
	if int64(len(b)) < start {
		return fmt.Errorf("ganesha's log %s shrank", log)
	}
	seen := map[string]bool{}
	for _, m := range ownerInLog.FindAllString(b[start:], -1) {
		seen[m] = true
	}
	// An owner ganesha shows in hex.
	for _, n := range nodes {
		if strings.Contains(b[start:], hex.EncodeToString([]byte(uniquifier(n)))) {
			seen[uniquifier(n)] = true
		}
	}
	var missing []string
	for _, n := range nodes {
		if !seen[uniquifier(n)] {
			missing = append(missing, uniquifier(n))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ganesha's log names no client owner with %v (owners seen: %v); its last lines:\n%s", missing, seen, lastLines(log, 40))
	}
	if !noExpiry || len(reported) == 0 {
		t.Logf("ganesha's clients: %d owners, %v", len(seen), seen)
		return nil
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
		for i, n := range nodes {
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
// reserved address and sent the UEFI node ipxe.efi by TFTP; nginx (the
// access log of nroot's block) sent each node's segment to that node's
// address, with 200.
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
