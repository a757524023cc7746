//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"nroot/serve/export"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/serve/image"
	"nroot/serve/pxe"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
	"nroot/verify/storm"
)

// TestMain lets the test binary be a storm's worker process.
func TestMain(m *testing.M) {
	storm.RunWorker()
	os.Exit(m.Run())
}

// TestBootStorm is the boot-storm measurement (make bench: up to 100
// clients; make storm: up to 500). A bookworm node is built and its
// generation written as a squashfs; QEMU boots it once from the tree and
// once from the image file over NFS, each through the recorder, which
// writes the boot's working set. Then, for each client count, the
// working sets are replayed by NFSv4.1 clients in worker processes
// against nfs-ganesha (tree, nfs-image), each first fetching the
// generation's kernel and initramfs from nginx as iPXE does, and the image is fetched whole from
// nginx (http) and through a second nginx caching it (http-cache).
// Results go to NROOT_STORM_OUT: results.json, table.txt, storm.svg and
// the working sets.
func TestBootStorm(t *testing.T) {
	spec := os.Getenv("NROOT_STORM_CLIENTS")
	if spec == "" {
		t.Skip("the boot storm runs with make bench or make storm (NROOT_STORM_CLIENTS)")
	}
	var counts []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > storm.MaxClients {
			t.Fatalf("NROOT_STORM_CLIENTS=%q", spec)
		}
		counts = append(counts, n)
	}
	out := os.Getenv("NROOT_STORM_OUT")
	if out == "" {
		out = "docs/storm"
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// The node: bookworm's full initramfs unless NROOT_STORM_SUITE and
	// NROOT_STORM_INITRD say otherwise.
	suite, initrdKind := os.Getenv("NROOT_STORM_SUITE"), os.Getenv("NROOT_STORM_INITRD")
	if suite == "" {
		suite = "bookworm"
	}
	if initrdKind == "" {
		initrdKind = "full"
	}
	if initrdKind != "full" && initrdKind != "small" {
		t.Fatalf("NROOT_STORM_INITRD=%q: full or small", initrdKind)
	}
	testenv.Mirror(t)
	testenv.Root(t)
	for _, c := range []string{"systemd-nspawn", "ganesha.nfsd", "qemu-system-x86_64", "nginx", "mksquashfs", "mkfs.erofs"} {
		testenv.Command(t, c)
	}
	ctx := context.Background()
	work := t.TempDir()
	os.Chmod(work, 0o755)
	nroot := nrootCLI(t, work)
	st := &stages{t: t, times: map[string]float64{}}
	root := filepath.Join(work, "root")
	im := image.Image{Dir: filepath.Join(work, "image")}
	st.run("bootstrap", func() error {
		return nroot(nil, "--cache-dir", cache().CacheDir, "bootstrap", suite, root)
	})
	st.run("node", func() error {
		return nroot(nil, "--cache-dir", cache().CacheDir, "node", "--e2e-probe", "--initrd="+initrdKind, root)
	})
	st.run("image-create", func() error { return nroot(nil, "image", "create", "--move", im.Dir, root) })
	gen := filepath.Dir(im.Root(1))
	file := filepath.Join(gen, "root.squashfs")
	var info struct{ Bytes int64 }
	st.run("fsimage", func() error {
		args := []string{"fsimage", "--json"}
		if b := os.Getenv("NROOT_STORM_BLOCK"); b != "" {
			args = append(args, "--block-size", b)
		}
		return nroot(&info, append(args, im.Root(1), file)...)
	})
	// The erofs file, for what a node fetches over HTTP in that mode.
	var erofs struct{ Bytes int64 }
	st.run("fsimage-erofs", func() error {
		return nroot(&erofs, "fsimage", "--json", im.Root(1), filepath.Join(work, "root.erofs"))
	})
	// The image file alone in a directory, for the one-client baseline.
	stream := filepath.Join(work, "stream")
	os.MkdirAll(stream, 0o755)
	if err := os.Link(file, filepath.Join(stream, "root.squashfs")); err != nil {
		t.Fatal(err)
	}
	nfsPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ganesha.Start(ctx, []ganesha.Export{{ID: 1, Path: im.Dir, Pseudo: "/nroot"}, {ID: 2, Path: stream, Pseudo: "/stream"}}, ganesha.Options{NFSPort: nfsPort, AttrCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	// Record a boot of each NFS mode.
	var cfg export.Config
	if err := nroot(&cfg, "export", "--json", "--server", "10.0.2.2", "--path", "/nroot/generations/1/root", "--image", file, "--image-path", "/nroot/generations/1", im.Root(1)); err != nil {
		t.Fatal(err)
	}
	sets := map[string]*storm.WorkingSet{}
	for _, b := range []struct{ mode, cmdline string }{{"tree", cfg.Cmdline}, {"nfs-image", cfg.CmdlineNFSImg}} {
		st.log = filepath.Join(work, "serial-"+b.mode+".log")
		st.run("record-"+b.mode, func() error {
			ln, err := storm.Listen(ctx, "127.0.0.1:2049")
			if err != nil {
				return err
			}
			rec := storm.NewRecorder(ln, "127.0.0.1:"+strconv.Itoa(nfsPort), b.mode)
			p, err := boot(ctx, vm{kernel: filepath.Join(gen, "vmlinuz"), initrd: filepath.Join(gen, "initrd.img")}, b.cmdline+" console=ttyS0", st.log)
			ws := rec.Close()
			if err != nil {
				return err
			}
			if err := p.booted(im.Root(1)); err != nil {
				return err
			}
			sets[b.mode] = ws
			t.Logf("recorded %s (running after %.1fs; the node counted %s NFS RPCs on its root): %s", b.mode, p.running.Seconds(), p.nfsOps, ws.Summary())
			f, err := os.Create(filepath.Join(out, "workset-"+b.mode+".json"))
			if err != nil {
				return err
			}
			defer f.Close()
			return ws.Write(f)
		})
	}
	st.log = ""
	t.Logf("RPCs per boot: tree %d, nfs-image %d (%.1f times fewer)", sets["tree"].RPCs, sets["nfs-image"].RPCs, float64(sets["tree"].RPCs)/float64(max(sets["nfs-image"].RPCs, 1)))

	// Validate the model: real nodes booting at once against the replay
	// of one recorded boot by as many clients.
	var validations []storm.Validation
	if nodes := stormNodes(t); nodes > 0 {
		upstream := "127.0.0.1:" + strconv.Itoa(nfsPort)
		idle := ganeshaIdle(srv.PID())
		t.Logf("ganesha idle: %.4f CPU s per s", idle)
		for _, b := range []struct{ mode, cmdline string }{{"tree", cfg.Cmdline}, {"nfs-image", cfg.CmdlineNFSImg}} {
			st.run(fmt.Sprintf("real-%d-%s", nodes, b.mode), func() error {
				v, err := validate(ctx, work, b.mode, b.cmdline, nodes, sets[b.mode], srv.PID(), upstream, nfsPort, idle,
					vm{kernel: filepath.Join(gen, "vmlinuz"), initrd: filepath.Join(gen, "initrd.img")}, im.Root(1))
				if err != nil {
					return err
				}
				validations = append(validations, *v)
				return nil
			})
		}
	}

	// One client streaming the image file: what nroot check --deep reads.
	var baseline float64
	st.run("baseline", func() error {
		rep, err := nfscheck.Run(ctx, nfscheck.Options{Target: nfsclient.Target{Host: "127.0.0.1", NFSPort: nfsPort, Path: "/stream", Version: 4}, Deep: true, Timeout: 10 * time.Minute})
		if err != nil {
			return err
		}
		baseline = float64(rep.Stats.BytesRead) / rep.WalkSeconds
		t.Logf("one client streams the image over NFSv4.1 at %.0f MB/s", baseline/1e6)
		return nil
	})

	// nginx: an origin serving the image directory, and a cache in
	// front of it.
	originPort, _ := freePort()
	cachePort, _ := freePort()
	originLog := filepath.Join(work, "origin-bytes.log")
	origin := fmt.Sprintf(`log_format bytes '$body_bytes_sent';
server {
    listen 127.0.0.1:%d;
    root %s;
    access_log %s bytes;
    location / { }
}
`, originPort, im.Dir, originLog)
	originConf := filepath.Join(work, "origin.conf")
	os.WriteFile(originConf, []byte(origin), 0o644)
	stopOrigin, err := runNginx(filepath.Join(work, "origin", "nginx"), originConf, originPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopOrigin)
	originPIDs := nginxPIDs(filepath.Join(work, "origin", "nginx"))
	url := fmt.Sprintf("http://127.0.0.1:%d/generations/1/root.squashfs", originPort)
	bootURLs := []string{fmt.Sprintf("http://127.0.0.1:%d/generations/1/vmlinuz", originPort), fmt.Sprintf("http://127.0.0.1:%d/generations/1/initrd.img", originPort)}
	cacheURL := fmt.Sprintf("http://127.0.0.1:%d/generations/1/root.squashfs", cachePort)

	var results []storm.Result
	for _, n := range counts {
		for _, mode := range []string{"tree", "nfs-image", "http", "http-cache"} {
			o := storm.Options{Mode: mode, Clients: n, Timeout: 15 * time.Minute}
			var stop func()
			var before int64
			switch mode {
			case "tree", "nfs-image":
				// The boot server: ganesha, and nginx for the kernel and
				// initramfs.
				o.WorkingSet, o.NFS, o.ServerPIDs = sets[mode], nfsclient.Target{Host: "127.0.0.1", NFSPort: nfsPort, Version: 4}, append([]int{srv.PID()}, originPIDs...)
				o.BootURLs = bootURLs
			case "http":
				o.URL, o.ServerPIDs = url, originPIDs
			case "http-cache":
				// A cold cache for each run: the origin must send the
				// image once, however many clients ask at once.
				dir := filepath.Join(work, fmt.Sprintf("cache-%d", n))
				stop = startCache(t, dir, cachePort, originPort)
				o.URL, o.ServerPIDs = cacheURL, append(nginxPIDs(filepath.Join(dir, "nginx")), originPIDs...)
				before = logBytes(originLog)
			}
			exec.Command("sync").Run()
			res, err := storm.Run(ctx, o)
			if stop != nil {
				stop()
			}
			if err != nil {
				t.Fatalf("%s with %d clients: %v", mode, n, err)
			}
			if mode == "http-cache" {
				res.OriginBytes = logBytes(originLog) - before
			}
			if res.Errors > 0 {
				t.Errorf("%s with %d clients: %d failed, first: %s", mode, n, res.Errors, res.FirstError)
			}
			t.Logf("%-10s %4d clients: p50 %.2fs p99 %.2fs, per call p50 %.2fms p99 %.2fms, %.0f MB/s, %.0f RPCs/s, %d boot bytes each, server CPU %.0f%%, clients' %.0f%%", mode, n, res.P50, res.P99,
				res.CallP50*1e3, res.CallP99*1e3, res.BytesPerSec/1e6, res.RPCsPerSec, res.BootBytes, res.ServerLoad, res.ClientLoad)
			results = append(results, *res)
		}
	}
	var table strings.Builder
	storm.WriteTable(&table, results)
	fmt.Fprintf(&table, "\nRPCs per boot: tree %d, nfs-image %d; image file %d bytes; one client streams it over NFSv4.1 at %.0f MB/s\n", sets["tree"].RPCs, sets["nfs-image"].RPCs, info.Bytes, baseline/1e6)
	nb := perNode(filepath.Join(gen, "vmlinuz"), filepath.Join(gen, "initrd.img"), sets, info.Bytes, erofs.Bytes)
	fmt.Fprintf(&table, "node: %s, %s initramfs\n", suite, initrdKind)
	nb.write(&table)
	for _, r := range results {
		if r.Mode == "http-cache" {
			fmt.Fprintf(&table, "http-cache %d clients: the origin sent %d bytes (%.2f times the image)\n", r.Clients, r.OriginBytes, float64(r.OriginBytes)/float64(info.Bytes))
		}
	}
	if len(validations) > 0 {
		fmt.Fprintf(&table, "\nThe model against real nodes booting at once (one recorded boot replayed by as many clients):\n")
		storm.WriteValidation(&table, validations)
		for _, v := range validations {
			for _, p := range v.Replays {
				cpu, rpcs, bytes, p50, p99 := v.Ratios(p)
				benchSummary(t, fmt.Sprintf("boot storm: %s of %s over %d real nodes booting at once: server CPU %.2fx, RPCs %.2fx, bytes %.2fx, per-call p50 %.2fx, p99 %.2fx (goal: the model validated against real nodes)",
					p.Source, v.Mode, v.Real.Boots, cpu, rpcs, bytes, p50, p99))
			}
		}
	}
	for _, r := range results {
		if r.Clients == counts[len(counts)-1] && r.Calls > 0 {
			benchSummary(t, fmt.Sprintf("boot storm: %s, %d clients: per-boot p50 %.2f s, p99 %.2f s; per-call p50 %.2f ms, p99 %.2f ms; server CPU %.2f s per boot (goal: per-call p99 and per-boot completion)",
				r.Mode, r.Clients, r.P50, r.P99, r.CallP50*1e3, r.CallP99*1e3, r.ServerCPU/float64(r.Clients)))
		}
	}
	t.Logf("storm:\n%s", table.String())
	b, _ := json.MarshalIndent(map[string]any{"results": results, "validation": validations, "suite": suite, "initrd": initrdKind, "per_node": nb, "rpcs_per_boot": map[string]int{"tree": sets["tree"].RPCs, "nfs-image": sets["nfs-image"].RPCs},
		"image_bytes": info.Bytes, "baseline_bytes_per_second": baseline}, "", "  ")
	os.WriteFile(filepath.Join(out, "results.json"), b, 0o644)
	os.WriteFile(filepath.Join(out, "table.txt"), []byte(table.String()), 0o644)
	os.WriteFile(filepath.Join(out, "storm.svg"), storm.Plot(results, "boot storm on one server (2 cores, loopback)"), 0o644)
}

// nodeBytes is what each node fetches, per mode: the kernel and
// initramfs, and its root's working set: what its recorded boot read over
// NFS, or the whole image file over HTTP.
type nodeBytes struct {
	Kernel int64            `json:"kernel_bytes"`
	Initrd int64            `json:"initrd_bytes"`
	Root   map[string]int64 `json:"root_bytes"` // by mode
}

func perNode(kernel, initrd string, sets map[string]*storm.WorkingSet, squashfs, erofs int64) nodeBytes {
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	return nodeBytes{Kernel: size(kernel), Initrd: size(initrd),
		Root: map[string]int64{"tree": sets["tree"].Bytes, "nfs-image": sets["nfs-image"].Bytes, "http": squashfs, "http-erofs": erofs}}
}

func (nb nodeBytes) write(w io.Writer) {
	fmt.Fprintf(w, "per node: kernel %.1f MB + initramfs %.1f MB, then the root:\n", float64(nb.Kernel)/1e6, float64(nb.Initrd)/1e6)
	for _, m := range []struct{ mode, what string }{
		{"tree", "read over NFS by the recorded boot"}, {"nfs-image", "of the squashfs read over NFS by the recorded boot"},
		{"http", "the whole squashfs over HTTP"}, {"http-erofs", "the whole erofs over HTTP"},
	} {
		r := nb.Root[m.mode]
		fmt.Fprintf(w, "  %-10s root %7.1f MB (%s); in all %7.1f MB\n", m.mode, float64(r)/1e6, m.what, float64(nb.Kernel+nb.Initrd+r)/1e6)
	}
}

// stormNodes is how many real nodes boot at once to validate the model:
// NROOT_STORM_VALIDATE, 3 when unset, 0 for none.
func stormNodes(t *testing.T) int {
	v := os.Getenv("NROOT_STORM_VALIDATE")
	if v == "" {
		return 3
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 4 {
		t.Fatalf("NROOT_STORM_VALIDATE=%q: give how many real nodes boot at once, 0 to 4 (TCG guests beyond that starve a small host)", v)
	}
	return n
}

// ganeshaIdle is the NFS server's CPU time per second of wall time with
// no client: what a real boot's minutes add that a replay's seconds
// do not.
func ganeshaIdle(pid int) float64 {
	const d = 20 * time.Second
	c0 := storm.CPUSeconds([]int{pid})
	time.Sleep(d)
	return (storm.CPUSeconds([]int{pid}) - c0) / d.Seconds()
}

// validate boots nodes real nodes at once through a recorder in front of
// the NFS server, each with an NFSv4 client owner of its own, and then
// replays the one recorded boot ws with as many clients: the server's
// CPU (less its idle rate over the real boots' minutes), RPCs, bytes and
// per-call latency per boot, side by side.
func validate(ctx context.Context, work, mode, cmdline string, nodes int, ws *storm.WorkingSet, server int, upstream string, nfsPort int, idle float64, m vm, root string) (*storm.Validation, error) {
	ln, err := storm.Listen(ctx, "127.0.0.1:2049")
	if err != nil {
		return nil, err
	}
	rec := storm.NewRecorder(ln, upstream, mode)
	cpu0 := storm.CPUSeconds([]int{server})
	t0 := time.Now()
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := m
			one.mac = fmt.Sprintf("52:54:00:5a:00:%02x", i+1)
			p, err := boot(ctx, one, cmdline+" console=ttyS0 "+pxe.UniqueIDArg(one.mac), filepath.Join(work, fmt.Sprintf("serial-real-%s-%d.log", mode, i+1)))
			if err == nil {
				err = p.booted(root)
			}
			if err != nil {
				errs[i] = fmt.Errorf("node %d of %d: %w", i+1, nodes, err)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	real := rec.Close()
	cpu := storm.CPUSeconds([]int{server}) - cpu0 - idle*wall
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v := &storm.Validation{Mode: mode, Real: storm.RealPerBoot(real, nodes, max(cpu, 0), wall)}
	// Back to back, as the storm's table; then paced as recorded, the
	// guest's work between calls kept.
	for _, pace := range []float64{0, 1} {
		res, err := storm.Run(ctx, storm.Options{Mode: mode, Clients: nodes, WorkingSet: ws, NFS: nfsclient.Target{Host: "127.0.0.1", NFSPort: nfsPort, Version: 4},
			ServerPIDs: []int{server}, Timeout: 15 * time.Minute, Pace: pace})
		if err != nil {
			return nil, err
		}
		if res.Errors > 0 {
			return nil, fmt.Errorf("the replay of %d at pace %v: %d failed, first: %s", nodes, pace, res.Errors, res.FirstError)
		}
		// A paced replay's minutes add the server's idle time, as the
		// real boots' do.
		res.ServerCPU = max(res.ServerCPU-idle*res.Seconds, 0)
		v.Replays = append(v.Replays, storm.ReplayPerBoot(res))
	}
	return v, nil
}

// startCache runs an nginx that caches the origin, with its own cache
// directory; concurrent misses wait for one fetch (proxy_cache_lock).
func startCache(t *testing.T, dir string, port, origin int) func() {
	os.MkdirAll(filepath.Join(dir, "cache"), 0o755)
	conf := filepath.Join(dir, "cache.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`proxy_cache_path %s/cache levels=1:2 keys_zone=nroot:10m max_size=4g inactive=1h use_temp_path=off;
server {
    listen 127.0.0.1:%d;
    access_log off;
    location / {
        proxy_pass http://127.0.0.1:%d;
        proxy_cache nroot;
        proxy_cache_valid 200 1h;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 10m;
        proxy_cache_lock_age 10m;
    }
}
`, dir, port, origin)), 0o644)
	stop, err := runNginx(filepath.Join(dir, "nginx"), conf, port)
	if err != nil {
		t.Fatal(err)
	}
	return stop
}

// nginxPIDs is the master's pid, from its pid file.
func nginxPIDs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	return []int{n}
}

// logBytes sums an access log of $body_bytes_sent lines.
func logBytes(p string) int64 {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	var sum int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n, _ := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		sum += n
	}
	return sum
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
