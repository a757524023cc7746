package pxe

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nroot/identity"
	"nroot/internal/testenv"
	"nroot/inventory"
)

func nodes(t *testing.T, inv string) []inventory.Node {
	t.Helper()
	n, err := inventory.Read(strings.NewReader(inv), "nodes.txt")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var opts = Options{Base: "http://10.0.0.1:8080", Server: "10.0.0.1", Export: "/nroot", Inventory: "nodes.txt"}

func TestRender(t *testing.T) {
	f, out, err := Render(nodes(t, "node[1-2] mac=52:54:00:00:00:[01-02] address=10.0.0.[11-12]/24\nspare mac=52:54:00:00:00:03 address=10.0.0.13/24 generation=3 args=\"console=ttyS0,115200 quiet\"\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"boot.ipxe":                    {"set nroot-base http://10.0.0.1:8080\n", "set nroot-server 10.0.0.1\n", "set nroot-export /nroot\n", "chain ${nroot-base}/nodes/${mac:hexhyp}.ipxe || goto unknown\n"},
		"nodes/52-54-00-00-00-01.ipxe": {"set nroot-node node1\n", "chain ${nroot-base}/published.ipxe\n"},
		"nodes/52-54-00-00-00-02.ipxe": {"set nroot-node node2\n"},
		"nodes/52-54-00-00-00-03.ipxe": {"set nroot-node spare\n", "set nroot-args console=ttyS0,115200 quiet\n", "chain ${nroot-base}/generations/3/boot.ipxe\n"},
		"dnsmasq.conf": {"dhcp-range=10.0.0.0,static\n", "dhcp-host=52:54:00:00:00:01,set:nroot,10.0.0.11,node1\n", "dhcp-host=52:54:00:00:00:03,set:nroot,10.0.0.13,spare\n",
			"dhcp-boot=tag:nroot,tag:ipxe,http://10.0.0.1:8080/boot.ipxe\n", "dhcp-boot=tag:nroot,tag:!ipxe,tag:!efi64,undionly.kpxe\n"},
		"nginx.conf": {"listen 8080;", "location = /nodes/node2.img { allow 10.0.0.12; deny all; }\n", "location / { return 404; }"},
		"nginx-cache.conf": {"proxy_pass http://10.0.0.1:8080;", "proxy_cache_lock on;", "location / { return 404; }"},
	}
	if len(f) != len(want) {
		t.Errorf("%d files, want %d", len(f), len(want))
	}
	for name, parts := range want {
		for _, p := range parts {
			if !strings.Contains(f[name], p) {
				t.Errorf("%s lacks %q:\n%s", name, p, f[name])
			}
		}
	}
	if len(out) != 3 || out[2].Generation != "3" || out[0].Generation != "published" {
		t.Errorf("nodes %+v", out)
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name, inv string
		node      *inventory.Node // given as parsed, past the inventory's own checks
		o         func(Options) Options
		want      string
		is        error
	}{
		{"args iPXE would expand", "", &inventory.Node{Name: "n", MAC: "52:54:00:00:00:01", Address: "dhcp", Args: "x=${net0/ip}", Line: 1}, func(o Options) Options { o.DHCPRange = "10.0.0.100,10.0.0.200"; return o }, "nodes.txt:1: args", inventory.ErrSyntax},
		{"args chaining commands", "", &inventory.Node{Name: "n", MAC: "52:54:00:00:00:01", Address: "dhcp", Args: "a||shell", Line: 1}, func(o Options) Options { o.DHCPRange = "10.0.0.100,10.0.0.200"; return o }, "args", inventory.ErrSyntax},
		{"generation not a number", "n mac=52:54:00:00:00:01 generation=latest\n", nil, nil, "generation", inventory.ErrSyntax},
		{"DHCP node without a range", "n mac=52:54:00:00:00:01\n", nil, nil, "--dhcp-range", nil},
		{"base with a path", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Base = "http://10.0.0.1/nroot"; return o }, "--http", nil},
		{"base not HTTP", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Base = "tftp://10.0.0.1"; return o }, "--http", nil},
		{"export relative", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Export = "nroot"; return o }, "--export", nil},
		{"server with a variable", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Server = "${ip}"; return o }, "--server", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts
			if tt.o != nil {
				o = tt.o(o)
			}
			var in []inventory.Node
			if tt.node != nil {
				in = []inventory.Node{*tt.node}
			} else {
				in = nodes(t, tt.inv)
			}
			_, _, err := Render(in, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to name %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err %v is not %v", err, tt.is)
			}
			var oe *OptionError
			if tt.is == nil && !errors.As(err, &oe) {
				t.Errorf("err %T is not an *OptionError", err)
			}
		})
	}
}

// TestWrite writes an image's boot configuration and has dnsmasq and
// nginx themselves check what nroot wrote.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "generations"), 0o755); err != nil {
		t.Fatal(err)
	}
	inv := nodes(t, "node[01-02] mac=52:54:00:4e:52:[01-02] address=192.168.77.[11-12]/24\n")
	res, err := Write(dir, inv, identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Nodes {
		fi, err := os.Stat(filepath.Join(dir, n.Segment))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("segment %s: %v %v", n.Segment, fi, err)
		}
		if _, err := os.Stat(filepath.Join(dir, n.Script)); err != nil {
			t.Error(err)
		}
	}
	pinned := nodes(t, "n mac=52:54:00:00:00:01 address=10.0.0.2/24 generation=4\n")
	if _, err := Write(dir, pinned, identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, opts); !errors.Is(err, ErrPinned) {
		t.Errorf("a pin to a missing generation: %v", err)
	}

	dnsmasq := testenv.Command(t, "dnsmasq")
	if out, err := exec.Command(dnsmasq, "--test", "--conf-file="+res.DNSMasq).CombinedOutput(); err != nil {
		t.Errorf("dnsmasq --test: %v\n%s", err, out)
	}
	nginx := testenv.Command(t, "nginx")
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	os.WriteFile(conf, []byte("pid "+filepath.Join(filepath.Dir(conf), "pid")+";\nerror_log stderr;\nevents {}\nhttp {\naccess_log off;\ninclude "+res.Nginx+";\n}\n"), 0o644)
	if out, err := exec.Command(nginx, "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
	// The caching tier, its cache moved into the test's directory.
	b, err := os.ReadFile(res.Cache)
	if err != nil || !strings.Contains(string(b), "proxy_pass http://10.0.0.1:8080;") || !strings.Contains(string(b), "proxy_cache_lock on;") {
		t.Fatalf("cache configuration: %v\n%s", err, b)
	}
	cache := filepath.Join(t.TempDir(), "cache.conf")
	os.WriteFile(cache, []byte(strings.Replace(string(b), "/var/cache/nginx/nroot", filepath.Join(t.TempDir(), "cache"), 1)), 0o644)
	os.WriteFile(conf, []byte("pid "+filepath.Join(filepath.Dir(conf), "pid")+";\nerror_log stderr;\nevents {}\nhttp {\naccess_log off;\ninclude "+cache+";\n}\n"), 0o644)
	if out, err := exec.Command(nginx, "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
		t.Errorf("nginx -t of the cache tier: %v\n%s", err, out)
	}
}
