//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"nroot/serve/export"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nroot/build/fsimage"
	"nroot/e2e/ganesha"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/pxe"
	"nroot/serve/status"
)

// probePackage is the package the second generation adds; the nodes'
// inventory line asks the probe whether it is installed.
const probePackage = "hello"

// cluster runs the cluster walk-through on a node root: it becomes
// generation 1 of an image, exported by nfs-ganesha and served over HTTP
// by nginx with the configuration nroot pxe writes; node01 and node02 boot
// it through QEMU's own network boot (its iPXE ROM, its DHCP and TFTP
// giving the entry script); a second generation adds a package and is
// published, node01 boots it; a rollback publishes generation 1 again and
// node01 boots that. Every boot must end "running" with the node's own
// identity and the generation's kernel. Generation 1 is the release's
// alone; generation 2 is an upgrade (with the package added) across the
// -security suite's kernel ABI. NFS exports IMAGE/generations only, and
// nothing of a node's identity is reachable through it.
func cluster(t *testing.T, st *stages, work, root string, nroot func(v any, args ...string) error, abi kernelABI) {
	ctx := context.Background()
	im := image.Image{Dir: filepath.Join(work, "image")}
	var g1, g2 image.Generation
	st.run("image-create", func() error {
		if err := nroot(&g1, "image", "create", "--move", "--json", im.Dir, root); err != nil {
			return err
		}
		t.Logf("generation 1: %.1fs, %d bytes of files, %d on disk, kernel %s", g1.Seconds, g1.Bytes, g1.DiskBytes, g1.Kernel)
		if g1.Kernel != abi.release {
			return fmt.Errorf("generation 1 records kernel %s, not the release's %s", g1.Kernel, abi.release)
		}
		return nil
	})
	var srv *ganesha.Server
	st.run("export", func() error {
		// The image's generations at /nroot/generations, never the
		// image directory (its nodes/ holds every node's private host
		// keys); and generation 1's root alone, for nroot check (NFSv3
		// mounts by path).
		var err error
		srv, err = ganesha.Start(ctx, []ganesha.Export{{ID: 1, Path: filepath.Join(im.Dir, "generations"), Pseudo: "/nroot/generations"}, {ID: 2, Path: im.Root(1), Pseudo: "/check"}}, ganesha.Options{NFSPort: 2049})
		return err
	})
	t.Cleanup(srv.Stop)
	st.run("export-check", func() error { return exportCheck(ctx, t, srv, im.Root(1), "/check") })
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	tftp := filepath.Join(work, "tftp")
	ids := map[string]*identity.Identity{}
	var caPub string
	macs := map[string]string{}
	st.run("pxe", func() error {
		inv := filepath.Join(work, "nodes.txt")
		if err := writeClusterOverlays(work, inv); err != nil {
			return err
		}
		var res pxe.Result
		state := filepath.Join(work, "state")
		if err := nroot(&res, "pxe", "--http", fmt.Sprintf("http://10.0.2.2:%d", port), "--server", "10.0.2.2", "--export", "/nroot",
			"--dhcp-range", "10.0.2.15,10.0.2.31", "--state", state, "--secrets-to-any-address", "--access-log", filepath.Join(work, "nginx", "boot.log"), "--json", im.Dir, inv); err != nil {
			return err
		}
		caPub = filepath.Join(state, "ssh_ca_key.pub")
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
			ids[n.Name], macs[n.Name] = id, n.MAC
		}
		if out, err := exec.Command("dnsmasq", "--test", "--conf-file="+res.DNSMasq).CombinedOutput(); err != nil {
			return fmt.Errorf("dnsmasq --test %s: %v: %s", res.DNSMasq, err, out)
		}
		// QEMU's TFTP gives iPXE the entry script, as dnsmasq would.
		if err := os.MkdirAll(tftp, 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(res.Entry)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), b, 0o644); err != nil {
			return err
		}
		if err := startNginx(t, work, res.Nginx, port); err != nil {
			return err
		}
		return nroot(nil, "image", "publish", im.Dir, "1")
	})
	st.run("export-scope", func() error { return exportHoldsNoIdentity(ctx, t, srv, im, ids) })
	type want struct {
		name     string
		gen      int
		pkg      string
		publish  func() error
		powerOff bool
	}
	kernel := map[int]string{1: abi.release, 2: abi.newest}
	boots := []want{
		{"node01", 1, "absent", nil, false},
		{"node02", 1, "absent", nil, false},
		{"node01", 2, "installed", func() error {
			if err := nroot(&g2, "--cache-dir", cache().CacheDir, "image", "update", "--upgrade", "--install", probePackage, "--json", im.Dir); err != nil {
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
			var d image.Diff
			if err := differs(nroot(&d, "image", "diff", "--json", im.Dir, "1", "2")); err != nil {
				return err
			}
			added := map[string]bool{}
			for _, p := range d.Added {
				added[p.Name] = true
			}
			changed := map[string]bool{}
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
			t.Logf("diff 1 2: %d packages added, %d removed, %d changed; %d paths", len(d.Added), len(d.Removed), len(d.Upgraded), len(d.Files))
			return nroot(nil, "image", "publish", im.Dir, "2")
		}, false},
		// The rollback's boot also powers off by itself.
		{"node01", 1, "absent", func() error {
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
		}, true},
	}
	seen := map[string]probe{}
	// What nroot status reports after each boot (by boot number): both
	// nodes on generation 1; then, 2 published and node01 rebooted on
	// it, node02 stale.
	wantStatus := map[int]map[string]string{
		2: {"node01": "current 1", "node02": "current 1"},
		3: {"node01": "current 2", "node02": "stale 1"},
	}
	for n, b := range boots {
		n++
		if b.publish != nil {
			st.log = ""
			st.run(fmt.Sprintf("publish-%d", b.gen), b.publish)
		}
		st.log = filepath.Join(work, fmt.Sprintf("serial-%d.log", n))
		st.run(fmt.Sprintf("boot-%d", n), func() error {
			id := ids[b.name]
			p, err := boot(ctx, vm{mac: macs[b.name], tftp: tftp, powerOff: b.powerOff, nic2: nic2[b.name]}, "", st.log)
			t.Logf("boot %d: %s, generation %d", n, b.name, b.gen)
			logBoot(t, st, strconv.Itoa(n), p)
			if err != nil {
				return err
			}
			if err := p.booted(im.Root(b.gen)); err != nil {
				return err
			}
			switch {
			case p.kernel != kernel[b.gen]:
				return fmt.Errorf("generation %d: the node runs kernel %s, want %s", b.gen, p.kernel, kernel[b.gen])
			case p.hostname != id.Hostname || p.machineID != id.MachineID || p.hostkey != hostKeyDigest(id.Keys):
				return fmt.Errorf("%s booted as hostname %q, machine-id %s, host key %s; nroot keeps hostname %q, machine-id %s, host key %s",
					b.name, p.hostname, p.machineID, p.hostkey, id.Hostname, id.MachineID, hostKeyDigest(id.Keys))
			case p.pkg != probePackage+":"+b.pkg:
				return fmt.Errorf("generation %d: the probe reports %q, want %s:%s", b.gen, p.pkg, probePackage, b.pkg)
			case !strings.HasSuffix(p.rootSource, "/nroot/generations/"+strconv.Itoa(b.gen)+"/root"):
				return fmt.Errorf("the node's lower root is %q, not generation %d", p.rootSource, b.gen)
			}
			if prev, ok := seen[b.name]; ok && (prev.machineID != p.machineID || prev.hostkey != p.hostkey) {
				return fmt.Errorf("%s booted again with machine-id %s and host key %s, first %s and %s", b.name, p.machineID, p.hostkey, prev.machineID, prev.hostkey)
			}
			seen[b.name] = p
			if err := overlaysApplied(b.name, p, caPub); err != nil {
				return err
			}
			// What the node wrote stayed in its overlay, and no key
			// reached a generation.
			for _, g := range []int{1, 2} {
				r := im.Root(g)
				if _, err := os.Stat(filepath.Join(r, "etc/nroot-probe")); err == nil {
					return fmt.Errorf("the probe's write reached generation %d", g)
				}
				if _, err := os.Stat(filepath.Join(r, "etc/ssh/ssh_host_ed25519_key")); err == nil {
					return fmt.Errorf("a host key is in generation %d", g)
				}
			}
			if want := wantStatus[n]; want != nil {
				return statusShows(nroot, im.Dir, want)
			}
			return nil
		})
	}
	st.log = ""
	imageBoots(t, st, work, im, port, nroot)
}

// imageBoots writes generation 1 as a squashfs beside its root and boots
// a node from it twice, with the boot lines nroot export gives: loop-
// mounted from the NFS export, and fetched from nginx over HTTP.
func imageBoots(t *testing.T, st *stages, work string, im image.Image, port int, nroot func(v any, args ...string) error) {
	ctx := context.Background()
	gen := filepath.Dir(im.Root(1))
	file := filepath.Join(gen, "root.squashfs")
	st.run("fsimage", func() error {
		var info fsimage.Info
		if err := nroot(&info, "fsimage", "--json", im.Root(1), file); err != nil {
			return err
		}
		st.times["squashfs-mb"] = float64(info.Bytes) / 1e6
		t.Logf("generation 1 as squashfs: %d bytes, %d entries, in %.1fs", info.Bytes, info.Entries, info.Seconds)
		return nil
	})
	var cfg export.Config
	st.run("image-export", func() error {
		return nroot(&cfg, "export", "--json", "--server", "10.0.2.2", "--image", file, "--image-path", "/nroot/generations/1",
			"--http", fmt.Sprintf("http://10.0.2.2:%d/generations/1/root.squashfs", port), im.Root(1))
	})
	for _, b := range []struct{ mode, cmdline, want string }{
		{"nfs-image", cfg.CmdlineNFSImg, "root=live:nfs4:10.0.2.2:/nroot/generations/1/root.squashfs "},
		{"http-image", cfg.CmdlineHTTP, "root=live:http://"},
	} {
		st.log = filepath.Join(work, "serial-"+b.mode+".log")
		st.run("boot-"+b.mode, func() error {
			if !strings.HasPrefix(b.cmdline, b.want) {
				return fmt.Errorf("nroot export gives %q for %s, want it to start %q", b.cmdline, b.mode, b.want)
			}
			p, err := boot(ctx, vm{kernel: filepath.Join(gen, "vmlinuz"), initrd: filepath.Join(gen, "initrd.img")}, b.cmdline+" console=ttyS0", st.log)
			logBoot(t, st, b.mode, p)
			if err != nil {
				return err
			}
			return p.booted(im.Root(1))
		})
	}
	st.log = ""
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNginx runs nginx in the foreground with the server block nroot
// pxe wrote, until the test ends.
func startNginx(t *testing.T, work, block string, port int) error {
	dir := filepath.Join(work, "nginx")
	stop, err := runNginx(dir, block, port)
	if err != nil {
		return err
	}
	t.Cleanup(func() {
		stop()
		if b, err := os.ReadFile(filepath.Join(dir, "access.log")); err == nil && len(b) < 1<<20 {
			t.Logf("nginx served:\n%s", b)
		}
	})
	return nil
}

// runNginx runs nginx in the foreground in dir with the server block,
// waits until it answers on port, and returns what stops it.
func runNginx(dir, block string, port int) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	main := fmt.Sprintf(`user root;
daemon off;
worker_processes auto;
pid %[1]s/pid;
error_log %[1]s/error.log;
events { worker_connections 4096; }
http {
    access_log %[1]s/access.log;
    sendfile on;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, block)
	if err := os.WriteFile(conf, []byte(main), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-c", conf, "-p", dir)
	out, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: the workers go with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		// The workers go with the master; wait until the port is free.
		for i := 0; i < 100; i++ {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
			if err != nil {
				return
			}
			c.Close()
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Ready when it answers and has written its pid file.
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil {
				return stop, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	eb, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	return nil, fmt.Errorf("nginx does not answer on port %d: %s", port, eb)
}

// nic2 is each node's second NIC: eth1, on a network of its own, which
// the network overlay gives a static address.
var nic2 = map[string]string{"node01": "52:54:00:4e:53:01", "node02": "52:54:00:4e:53:02"}

// writeClusterOverlays writes the cluster's inventory, two nodes in two
// groups, and the overlays beside it: site (a template), alpha-secret (a
// secret of group alpha alone) and report (what the probe reports of
// them), with the built-ins hosts, network and ssh-host-cert. BOOTIF
// keeps the initramfs on the boot NIC; net.ifnames=0 names the second
// NIC eth1.
func writeClusterOverlays(work, inv string) error {
	args := "nroot.probe.package=" + probePackage + " console=ttyS0 net.ifnames=0"
	text := `@alpha overlays=hosts,network,ssh-host-cert,site,alpha-secret,report role=alpha domain=cluster.test
@beta  overlays=hosts,network,ssh-host-cert,site,report role=beta domain=cluster.test
node01 mac=52:54:00:4e:52:01 groups=alpha eth1.address=192.168.50.11/24 eth1.mtu=1400 args="BOOTIF=01-52-54-00-4e-52-01 ` + args + `"
node02 mac=52:54:00:4e:52:02 groups=beta eth1.address=192.168.50.12/24 eth1.mtu=1400 args="BOOTIF=01-52-54-00-4e-52-02 ` + args + `"
`
	if err := os.WriteFile(inv, []byte(text), 0o644); err != nil {
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
	} {
		full := filepath.Join(ov, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// overlaysApplied checks what the node's overlays gave it, as its probe
// reported: its group's rendered file, its static second address, the
// cluster's /etc/hosts, a host certificate ssh-keygen -L shows signed by
// the cluster CA for its hostname, and group alpha's secret on node01
// alone, 0600.
func overlaysApplied(name string, p probe, caPub string) error {
	got := map[string]string{}
	for _, l := range p.extra {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	role, addr := map[string]string{"node01": "alpha", "node02": "beta"}[name], map[string]string{"node01": "192.168.50.11/24", "node02": "192.168.50.12/24"}[name]
	secret := map[string]string{"node01": "600 0", "node02": "absent"}[name]
	for k, want := range map[string]string{
		"site":   name + " " + role + " 2 nodes, group " + role + " of " + name,
		"eth1":   addr + " mtu 1400",
		"hosts":  "192.168.50.11 node01,192.168.50.12 node02,",
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
