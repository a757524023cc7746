package pxe

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"nroot/internal/usage"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/testenv"
	"nroot/serve/identity"
)

// TestParseDHCPRange reads each value as nroot does and has dnsmasq
// itself say whether it takes it: the two must agree.
func TestParseDHCPRange(t *testing.T) {
	tests := []struct {
		value      string
		ok         bool
		start, end string
	}{
		{"10.0.0.100,10.0.0.200", true, "10.0.0.100", "10.0.0.200"},
		{"10.0.0.100,10.0.0.200,12h", true, "10.0.0.100", "10.0.0.200"},
		{"10.0.0.100,10.0.0.200,255.255.255.0,12h", true, "10.0.0.100", "10.0.0.200"},
		{"10.0.0.100,10.0.0.200,255.255.255.0,10.0.0.255,infinite", true, "10.0.0.100", "10.0.0.200"},
		{"set:lab,10.0.0.1,10.0.0.5", true, "10.0.0.1", "10.0.0.5"},
		{"tag:lab,10.0.0.1,10.0.0.5,3600", true, "10.0.0.1", "10.0.0.5"},
		{"an end before the start is swapped, as dnsmasq does: 10.0.0.9,10.0.0.1", true, "10.0.0.1", "10.0.0.9"},
		{"10.0.0.0,static", true, "10.0.0.0", ""},
		{"10.0.0.1,proxy", true, "10.0.0.1", ""},
		{"fd00::1,fd00::9,64,12h", true, "fd00::1", "fd00::9"},
		{"fd00::,static,64", true, "fd00::", ""},
		{"a start alone: 10.0.0.1", false, "", ""},
		{"10.0.0.1-10.0.0.9", false, "", ""},
		{"10.0.0.1,10.0.0.9,static", false, "", ""},
		{"10.0.0.1,10.0.0.9,bogus", false, "", ""},
		{"10.0.0.1,,10.0.0.9", false, "", ""},
		{"10.0.0.1,fd00::1", false, "", ""},
		{"10.0.0.1,10.0.0.9,12h,1h", false, "", ""},
		{"eth0", false, "", ""},
	}
	dnsmasq := testenv.Command(t, "dnsmasq")
	conf := filepath.Join(t.TempDir(), "dnsmasq.conf")
	for _, tt := range tests {
		value := tt.value
		if i := strings.LastIndex(value, ": "); i >= 0 {
			value = value[i+2:]
		}
		t.Run(value, func(t *testing.T) {
			r, err := ParseDHCPRange(value)
			if (err == nil) != tt.ok {
				t.Errorf("ParseDHCPRange(%q) = %v, want ok=%v", value, err, tt.ok)
			}
			if tt.ok && (r.Start.String() != tt.start || tt.end != "" && r.End.String() != tt.end) {
				t.Errorf("ParseDHCPRange(%q) = %v..%v, want %s..%s", value, r.Start, r.End, tt.start, tt.end)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
			os.WriteFile(conf, []byte("dhcp-range="+value+"\n"), 0o644)
			out, derr := exec.Command(dnsmasq, "--test", "--conf-file="+conf).CombinedOutput()
			if (derr == nil) != tt.ok {
				t.Errorf("dnsmasq takes %q: %v (%s); the test's want is wrong", value, derr == nil, strings.TrimSpace(string(out)))
			}
		})
	}
}

func FuzzParseDHCPRange(f *testing.F) {
	for _, s := range []string{"10.0.0.100,10.0.0.200,12h", "10.0.0.0,static", "fd00::1,fd00::9,64,12h", "set:a,10.0.0.1,10.0.0.5", "10.0.0.1-10.0.0.9", "fd00::,constructor:eth0,ra-only"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseDHCPRange(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
			return
		}
		if strings.ContainsAny(s, " \t\r\n#") || !r.Start.IsValid() || r.End.IsValid() && r.End.Less(r.Start) {
			t.Errorf("ParseDHCPRange(%q) = %+v", s, r)
		}
	})
}

// TestSegmentGroup: the segments are readable by the stock nginx
// worker's group by default, by the group given, or by root alone.
func TestSegmentGroup(t *testing.T) {
	testenv.Root(t)
	www, err := user.LookupGroup(DefaultSegmentGroup)
	if err != nil {
		testenv.Missing(t, "group %s (Debian's base-passwd has it): %v", DefaultSegmentGroup, err)
	}
	tests := []struct {
		group   string
		gid     string
		mode    os.FileMode
		refused bool
	}{
		{"", www.Gid, 0o640, false},
		{DefaultSegmentGroup, www.Gid, 0o640, false},
		{"root", "0", 0o600, false},
		{"no-such-group-nroot", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(map[string]string{"": "default"}[tt.group]+tt.group, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "generations"), 0o755)
			o := opts
			o.SegmentGroup = tt.group
			_, err := Write(dir, nodes(t, "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n"), identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, o)
			var ue *usage.Error
			if tt.refused {
				if !errors.As(err, &ue) || ue.Option != "--segment-group" {
					t.Fatalf("Write = %v, want a usage error naming --segment-group", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, "nodes", "n.img"))
			if err != nil {
				t.Fatal(err)
			}
			if gid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)); fi.Mode().Perm() != tt.mode || gid != tt.gid {
				t.Errorf("segment mode %v group %s, want %v group %s", fi.Mode().Perm(), gid, tt.mode, tt.gid)
			}
		})
	}
}

// TestMissingFirmware: the iPXE builds dnsmasq offers are named when the
// TFTP root lacks them.
func TestMissingFirmware(t *testing.T) {
	dir := t.TempDir()
	if got := missingFirmware(dir); strings.Join(got, " ") != "undionly.kpxe ipxe.efi" {
		t.Errorf("an empty TFTP root misses %v", got)
	}
	os.WriteFile(filepath.Join(dir, "undionly.kpxe"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(dir, "ipxe.efi"), 0o755)
	if got := missingFirmware(dir); strings.Join(got, " ") != "ipxe.efi" {
		t.Errorf("a TFTP root with undionly.kpxe and a directory ipxe.efi misses %v", got)
	}
}

// TestStockNginx runs Debian's own nginx.conf, its sites-enabled/default
// beside nroot's block, as Debian's www-data worker, and asks it for what
// a node asks, by the Host nodes send: the entry script, a segment
// readable through the default group, another node's segment (403), and a
// file outside what booting reads (404). The caching tier passes nginx -t
// with its cache directory's parent present and the directory not.
func TestStockNginx(t *testing.T) {
	testenv.Root(t)
	nginx := testenv.Command(t, "nginx")
	stock, err := os.ReadFile("/etc/nginx/nginx.conf")
	site, serr := os.ReadFile("/etc/nginx/sites-available/default")
	if err != nil || serr != nil {
		testenv.Missing(t, "Debian's nginx configuration: %v %v", err, serr)
	}
	if _, err := user.Lookup("www-data"); err != nil {
		testenv.Missing(t, "user www-data: %v", err)
	}
	port := freePort(t)
	// Where a real image lives: a path www-data may walk.
	top, err := os.MkdirTemp("/var/tmp", "nroot-stock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	dir := filepath.Join(top, "image")
	os.MkdirAll(filepath.Join(dir, "generations"), 0o755)
	o := opts
	o.Base = fmt.Sprintf("http://10.0.0.1:%d", port)
	res, err := Write(dir, nodes(t, "node01 mac=52:54:00:00:00:01 address=10.0.0.11/24\nnode02 mac=52:54:00:00:00:02\n"), identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, func() Options { o.DHCPRange = "10.0.0.100,10.0.0.200"; return o }())
	if err != nil {
		t.Fatal(err)
	}

	run := filepath.Join(top, "nginx")
	os.MkdirAll(filepath.Join(run, "sites-enabled"), 0o755)
	conf := string(stock)
	for old, new := range map[string]string{
		"pid /run/nginx.pid;":                        "pid " + run + "/pid;",
		"/etc/nginx/sites-enabled/*;":                run + "/sites-enabled/*;\n\tinclude " + res.Nginx + ";",
		"/var/log/nginx/access.log":                  run + "/access.log",
		"/var/log/nginx/error.log":                   run + "/error.log",
		"include /etc/nginx/modules-enabled/*.conf;": "include /etc/nginx/modules-enabled/*.conf;\ndaemon off;",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("Debian's nginx.conf has no %q", old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	// Debian's default site listens on 80; here on the test's port.
	def := strings.ReplaceAll(string(site), "listen 80 default_server", fmt.Sprintf("listen %d default_server", port))
	def = strings.ReplaceAll(def, "listen [::]:80 default_server", fmt.Sprintf("listen [::]:%d default_server", port))
	if def == string(site) {
		t.Fatal("Debian's default site does not listen on 80 default_server")
	}
	os.WriteFile(filepath.Join(run, "sites-enabled", "default"), []byte(def), 0o644)
	main := filepath.Join(run, "nginx.conf")
	os.WriteFile(main, []byte(conf), 0o644)
	if out, err := exec.Command(nginx, "-t", "-q", "-c", main).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("nginx -t with Debian's configuration and nroot's block: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, "-c", main)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	waitPort(t, port)

	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	host := fmt.Sprintf("10.0.0.1:%d", port)
	for _, tt := range []struct {
		host, path string
		code       int
		body       string
	}{
		{host, "/boot.ipxe", 200, "#!ipxe"},
		{host, "/nodes/52-54-00-00-00-01.ipxe", 200, "set nroot-node node01"},
		{host, "/nodes/node02.img", 200, "070701"},
		{host, "/nodes/node01.img", 403, ""},
		{host, "/dnsmasq.conf", 404, ""},
		// Any other name is Debian's default site's.
		{fmt.Sprintf("127.0.0.1:%d", port), "/boot.ipxe", 404, ""},
	} {
		code, body := get(tt.host, tt.path)
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("Host %s GET %s: %d %.40q, want %d %q", tt.host, tt.path, code, body, tt.code, tt.body)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(run, "error.log")); strings.Contains(string(b), "Permission denied") {
		t.Errorf("the www-data worker could not read a file:\n%s", b)
	}

	// The caching tier: its directory's parent exists everywhere, and
	// nginx makes the directory.
	if fi, err := os.Stat(filepath.Dir(CacheDir)); err != nil || !fi.IsDir() {
		t.Errorf("the cache directory's parent: %v", err)
	}
	b, err := os.ReadFile(res.Cache)
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(run, "cache-made-by-nginx")
	cache := filepath.Join(run, "cache.conf")
	os.WriteFile(cache, []byte(strings.ReplaceAll(string(b), CacheDir, cacheDir)), 0o644)
	os.WriteFile(main, []byte(strings.Replace(conf, "include "+res.Nginx+";", "include "+cache+";", 1)), 0o644)
	if out, err := exec.Command(nginx, "-t", "-q", "-c", main).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("nginx -t of the caching tier beside Debian's default site: %v\n%s", err, out)
	}
	if _, err := os.Stat(cacheDir); err != nil {
		t.Errorf("nginx did not make the cache directory: %v", err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, port int) {
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nginx does not answer on port %d", port)
}

// TestFailureKeepsSegments: a node whose overlays fail after a good one
// leaves the good one's segment readable by nginx's group, as before.
func TestFailureKeepsSegments(t *testing.T) {
	testenv.Root(t)
	www, err := user.LookupGroup(DefaultSegmentGroup)
	if err != nil {
		testenv.Missing(t, "group %s (Debian's base-passwd has it): %v", DefaultSegmentGroup, err)
	}
	good := "a mac=52:54:00:00:00:01 address=10.0.0.2/24 overlays=hosts\n"
	for _, c := range []struct{ name, bad string }{
		{"a missing variable", "b mac=52:54:00:00:00:02 address=10.0.0.3/24 overlays=site\n"},
		{"a certificate for a DHCP node", "b mac=52:54:00:00:00:02 overlays=ssh-host-cert\n"},
		{"an unknown overlay", "b mac=52:54:00:00:00:02 address=10.0.0.3/24 overlays=nosuch\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "generations", "1", "root"), 0o755)
			ovDir := filepath.Join(t.TempDir(), "overlays")
			os.MkdirAll(filepath.Join(ovDir, "site/etc"), 0o755)
			os.WriteFile(filepath.Join(ovDir, "site/etc/role.tmpl"), []byte("{{.Vars.role}}\n"), 0o644)
			st := identity.Store{Dir: filepath.Join(t.TempDir(), "state")}
			o := opts
			o.Overlays, o.DHCPRange = ovDir, "10.0.0.100,10.0.0.200"
			if _, err := Write(dir, nodes(t, good), st, o); err != nil {
				t.Fatal(err)
			}
			if _, err := Write(dir, nodes(t, good+c.bad), st, o); err == nil {
				t.Fatal("the bad node was not refused")
			}
			fi, err := os.Stat(filepath.Join(dir, "nodes", "a.img"))
			if err != nil {
				t.Fatal(err)
			}
			if gid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)); fi.Mode().Perm() != 0o640 || gid != www.Gid {
				t.Errorf("the good node's segment: mode %v group %s, want 0640 group %s", fi.Mode().Perm(), gid, www.Gid)
			}
		})
	}
}

// TestCacheTierFetchesOnce runs the caching tier (nginx-cache.conf) in
// front of the origin (nginx.conf), both as nroot writes them, and has
// several nodes fetch a generation's image file through it at once, as
// dracut's curl does (a plain GET): each gets the whole file, and the
// origin sends it once.
func TestCacheTierFetchesOnce(t *testing.T) {
	testenv.Root(t)
	nginx := testenv.Command(t, "nginx")
	top, err := os.MkdirTemp("/var/tmp", "nroot-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	origin, cachePort := freePort(t), freePort(t)
	dir := filepath.Join(top, "image")
	gen := filepath.Join(dir, "generations", "1")
	os.MkdirAll(gen, 0o755)
	file := make([]byte, 24<<20)
	rand.Read(file)
	if err := os.WriteFile(filepath.Join(gen, "root.squashfs"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.Base = fmt.Sprintf("http://127.0.0.1:%d", origin)
	o.Server = "127.0.0.1"
	o.AccessLog = filepath.Join(top, "origin-access.log")
	res, err := Write(dir, nodes(t, "n mac=52:54:00:00:00:01 address=127.0.0.2/8 root=http-squashfs\n"), identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(res.Cache)
	if err != nil {
		t.Fatal(err)
	}
	cache := strings.ReplaceAll(string(b), CacheDir, filepath.Join(top, "cache"))
	cache = strings.Replace(cache, "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", cachePort), 1)
	cacheConf := filepath.Join(top, "cache.conf")
	os.WriteFile(cacheConf, []byte(cache), 0o644)
	main := filepath.Join(top, "nginx.conf")
	os.WriteFile(main, []byte(fmt.Sprintf("user root;\ndaemon off;\npid %[1]s/pid;\nerror_log %[1]s/error.log;\nevents {}\nhttp {\naccess_log %[1]s/cache-access.log;\ninclude %[2]s;\ninclude %[3]s;\n}\n", top, res.Nginx, cacheConf)), 0o644)
	cmd := exec.Command(nginx, "-c", main)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out, err := exec.Command(nginx, "-t", "-c", main).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	waitPort(t, origin)
	waitPort(t, cachePort)

	client := &http.Client{Timeout: 60 * time.Second}
	get := func(path string) (int, []byte, error) {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", cachePort, path))
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		return resp.StatusCode, body, err
	}
	const nodes = 6
	for round := 0; round < 2; round++ {
		errs := make(chan error, nodes)
		for i := 0; i < nodes; i++ {
			go func() {
				code, body, err := get("/generations/1/root.squashfs")
				if err == nil && (code != 200 || !bytes.Equal(body, file)) {
					err = fmt.Errorf("status %d, %d bytes of %d, same %v", code, len(body), len(file), bytes.Equal(body, file))
				}
				errs <- err
			}()
		}
		for i := 0; i < nodes; i++ {
			if err := <-errs; err != nil {
				t.Errorf("round %d: a node's fetch through the cache: %v", round, err)
			}
		}
	}
	if code, _, err := get("/nodes/n.img"); err != nil || code != 404 {
		t.Errorf("the cache serves identity segments: %d %v", code, err)
	}
	// nginx writes a request's log line when it ends.
	var sent int
	for i := 0; i < 50; i++ {
		log, _ := os.ReadFile(o.AccessLog)
		if sent = strings.Count(string(log), "GET /generations/1/root.squashfs "); sent > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sent != 1 {
		log, _ := os.ReadFile(o.AccessLog)
		t.Errorf("the origin sent the image file %d times for %d fetches, want once:\n%s", sent, 2*nodes, log)
	}
}
