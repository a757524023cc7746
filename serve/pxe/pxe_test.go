package pxe

import (
	"encoding/json"
	"errors"
	"nroot/internal/usage"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"nroot/e2e/testenv"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/serve/inventory"
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
	f, out, err := Render(nodes(t, "node[1-2] mac=52:54:00:00:00:[01-02] address=10.0.0.[11-12]/24\nspare mac=52:54:00:00:00:03 address=10.0.0.13/24 generation=3 args=\"console=ttyS0,115200 quiet BOOTIF=01-52-54-00-00-00-03\"\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"boot.ipxe":                     {"set nroot-base http://10.0.0.1:8080\n", "set nroot-image-base http://10.0.0.1:8080\n", "set nroot-server 10.0.0.1\n", "set nroot-export /nroot\n", "chain ${nroot-base}/nodes/${mac:hexhyp}.ipxe || goto unknown\n"},
		"nodes/52-54-00-00-00-01.ipxe":  {"set nroot-node node1\n", "set nroot-root tree\n", "chain ${nroot-base}/published.ipxe\n"},
		"nodes/52-54-00-00-00-02.ipxe":  {"set nroot-node node2\n"},
		"nodes/52-54-00-00-00-03.ipxe":  {"set nroot-node spare\n", "set nroot-args nfs.nfs4_unique_id=nroot-52-54-00-00-00-03 console=ttyS0,115200 quiet BOOTIF=01-52-54-00-00-00-03\n", "chain ${nroot-base}/generations/3/boot.ipxe\n"},
		"nodes/52-54-00-00-00-02.ipxe ": {"set nroot-args nfs.nfs4_unique_id=nroot-52-54-00-00-00-02 BOOTIF=01-52-54-00-00-00-02\n"},
		"dnsmasq.conf": {"dhcp-range=10.0.0.0,static\n", "dhcp-host=52:54:00:00:00:01,set:nroot,10.0.0.11,node1\n", "dhcp-host=52:54:00:00:00:03,set:nroot,10.0.0.13,spare\n",
			"dhcp-boot=tag:nroot,tag:ipxe,http://10.0.0.1:8080/boot.ipxe\n", "dhcp-boot=tag:nroot,tag:!ipxe,tag:!efi64,undionly.kpxe\n"},
		"nginx.conf":       {"listen 8080;", "location = /nodes/node2.img { allow 10.0.0.12; deny all; }\n", "location / { return 404; }"},
		"nginx-cache.conf": {"proxy_pass http://10.0.0.1:8080;", "proxy_cache_lock on;", "location / { return 404; }"},
	}
	if len(f) != len(want)-1 {
		t.Errorf("%d files, want %d", len(f), len(want))
	}
	for name, parts := range want {
		name = strings.TrimSpace(name)
		for _, p := range parts {
			if !strings.Contains(f[name], p) {
				t.Errorf("%s lacks %q:\n%s", name, p, f[name])
			}
		}
	}
	if len(out) != 3 || out[2].Generation != "3" || out[0].Generation != "published" {
		t.Errorf("nodes %+v", out)
	}
	if strings.Contains(f["boot.ipxe"], "nroot-nfs-opts") {
		t.Errorf("the standard NFS port set nroot-nfs-opts:\n%s", f["boot.ipxe"])
	}
}

// TestRenderServerSide: the entry script carries what the generations'
// scripts put into root=nfs4:HOST:PATH[:port=N]: an IPv6 server in
// brackets, the NFS port when not 2049, and the caching tier's URL.
func TestRenderServerSide(t *testing.T) {
	tests := []struct {
		name string
		o    func(Options) Options
		want []string
	}{
		{"defaults", func(o Options) Options { return o }, []string{"set nroot-server 10.0.0.1\n", "set nroot-image-base http://10.0.0.1:8080\n"}},
		{"an IPv6 server", func(o Options) Options { o.Server = "fd00::1"; return o }, []string{"set nroot-server [fd00::1]\n"}},
		{"another NFS port", func(o Options) Options { o.NFSPort = 20490; return o }, []string{"set nroot-nfs-opts :port=20490\n"}},
		{"a caching tier", func(o Options) Options { o.ImageBase = "http://10.0.0.2:81/"; return o }, []string{"set nroot-base http://10.0.0.1:8080\n", "set nroot-image-base http://10.0.0.2:81\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := Render(nodes(t, "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n"), tt.o(opts))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(f["boot.ipxe"], w) {
					t.Errorf("boot.ipxe lacks %q:\n%s", w, f["boot.ipxe"])
				}
			}
		})
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
		{"export with a space", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Export = "/srv/my image"; return o }, "--export", nil},
		{"export with a quote", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Export = `/srv/x";`; return o }, "--export", nil},
		{"server with a variable", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Server = "${ip}"; return o }, "--server", nil},
		{"server chaining iPXE commands", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Server = "a||shell"; return o }, "--server", nil},
		{"base over TLS, which the block does not serve", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Base = "https://10.0.0.1"; return o }, "--http", nil},
		{"base with a user", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Base = "http://me@10.0.0.1"; return o }, "--http", nil},
		{"base host nginx would not take", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.Base = "http://a;b"; return o }, "--http", nil},
		{"dhcp-range as START-END", "n mac=52:54:00:00:00:01\n", nil, func(o Options) Options { o.DHCPRange = "10.0.0.1-10.0.0.9"; return o }, "--dhcp-range", nil},
		{"dhcp-range of two families", "n mac=52:54:00:00:00:01\n", nil, func(o Options) Options { o.DHCPRange = "10.0.0.1,fd00::9"; return o }, "--dhcp-range", nil},
		{"a root mode nobody knows", "", &inventory.Node{Name: "n", MAC: "52:54:00:00:00:01", Address: "10.0.0.2/24", Root: "zip", Line: 3}, nil, "nodes.txt:3: root", inventory.ErrSyntax},
		{"an NFS port past 65535", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.NFSPort = 70000; return o }, "--nfs-port", nil},
		{"image-http not HTTP", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.ImageBase = "ftp://cache"; return o }, "--image-http", nil},
		{"image-http with a path", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n", nil, func(o Options) Options { o.ImageBase = "http://cache/nroot"; return o }, "--image-http", nil},
		{"node outside the server's network", "n mac=52:54:00:00:00:01 address=10.0.0.2/24\nm mac=52:54:00:00:00:02 address=192.168.1.2/24\n", nil, nil, "nodes.txt:2 address", nil},
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
			var oe *usage.Error
			if tt.is == nil && !errors.As(err, &oe) {
				t.Errorf("err %T is not an *usage.Error", err)
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
	inv := nodes(t, "node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24\n")
	res, err := Write(dir, inv, identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantMode := os.FileMode(0o640)
	if res.SegmentGroup == "" {
		wantMode = 0o600
	}
	for _, n := range res.Nodes {
		fi, err := os.Stat(filepath.Join(dir, n.Segment))
		if err != nil || fi.Mode().Perm() != wantMode {
			t.Errorf("segment %s: %v %v, want mode %v", n.Segment, fi, err, wantMode)
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
	os.WriteFile(cache, []byte(strings.ReplaceAll(string(b), CacheDir, filepath.Join(t.TempDir(), "cache"))), 0o644)
	os.WriteFile(conf, []byte("pid "+filepath.Join(filepath.Dir(conf), "pid")+";\nerror_log stderr;\nevents {}\nhttp {\naccess_log off;\ninclude "+cache+";\n}\n"), 0o644)
	if out, err := exec.Command(nginx, "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
		t.Errorf("nginx -t of the cache tier: %v\n%s", err, out)
	}
}

// writeGeneration makes generation id of the image at dir as image
// create leaves it, with the image files named (their content does not
// matter here).
func writeGeneration(t *testing.T, dir string, id int, images ...string) {
	t.Helper()
	g := &image.Generation{ID: id, Kernel: "6.1.0-9-amd64", Cmdline: "root=nfs4:SERVER:/PATH ip=dhcp", Images: images}
	if len(images) > 0 {
		g.ImageCmdline = "root=live:IMAGEURL ip=dhcp"
	}
	gd := filepath.Join(dir, "generations", strconv.Itoa(id))
	files := map[string]string{"root/etc/motd": "x", "vmlinuz": "k", "initrd.img": "i", "boot.ipxe": image.BootScript(g)}
	for _, f := range images {
		files[f] = "image"
	}
	b, _ := json.Marshal(g)
	files["generation.json"] = string(b)
	for name, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(gd, name)), 0o755)
		if err := os.WriteFile(filepath.Join(gd, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteRootModes: a node's root= goes into its script, and a node
// whose generation cannot boot that mode (the pinned one, or the
// published one it follows) is refused, naming the node and the field.
func TestWriteRootModes(t *testing.T) {
	tests := []struct {
		name      string
		published int
		inv       string
		says      string // "" when it is written
	}{
		{"a pin to a generation with the file", 1, "n mac=52:54:00:00:00:01 address=10.0.0.2/24 generation=2 root=http-squashfs\n", ""},
		{"the tree from a generation without files", 1, "n mac=52:54:00:00:00:01 address=10.0.0.2/24 root=tree\n", ""},
		{"nothing published: the node's mode is checked when it boots", 0, "n mac=52:54:00:00:00:01 address=10.0.0.2/24 root=nfs-erofs\n", ""},
		{"a pin to a generation without the file", 2, "m mac=52:54:00:00:00:02 address=10.0.0.3/24\nn mac=52:54:00:00:00:01 address=10.0.0.2/24 generation=1 root=nfs-squashfs\n", `nodes.txt:2 root "nfs-squashfs": node n is pinned to generation 1, which has no nfs-squashfs image and boots root=tree only; make one with nroot image update --fsimage squashfs`},
		{"following a published generation without the file", 1, "@img root=nfs-squashfs\nn mac=52:54:00:00:00:01 address=10.0.0.2/24 groups=img\n", `nodes.txt:2 root "nfs-squashfs": node n follows the published generation 1, which has no nfs-squashfs image`},
		{"following a published generation with another format", 2, "n mac=52:54:00:00:00:01 address=10.0.0.2/24 root=http-erofs\n", "boots root=tree,nfs-squashfs,http-squashfs only; make one with nroot image update --fsimage erofs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeGeneration(t, dir, 1)
			writeGeneration(t, dir, 2, "root.squashfs")
			if tt.published != 0 {
				if err := (image.Image{Dir: dir}).Publish(tt.published); err != nil {
					t.Fatal(err)
				}
			}
			in := nodes(t, tt.inv)
			res, err := Write(dir, in, identity.Store{Dir: filepath.Join(t.TempDir(), "state")}, opts)
			if tt.says != "" {
				if err == nil || !usage.Is(err) || !strings.Contains(err.Error(), tt.says) {
					t.Fatalf("err %v, want a usage error saying %q", err, tt.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := res.Nodes[len(res.Nodes)-1]
			b, _ := os.ReadFile(filepath.Join(dir, n.Script))
			if want := "set nroot-root " + in[len(in)-1].Root + "\n"; n.Root != in[len(in)-1].Root || !strings.Contains(string(b), want) {
				t.Errorf("node root %q, script lacks %q:\n%s", n.Root, want, b)
			}
		})
	}
}

// TestRenderAddressesAndGenerations: an IPv6 reservation is written as
// dnsmasq reads one, in brackets (dnsmasq itself checks the file), and a
// generation written 01 chains to generations/1, the path that exists.
func TestRenderAddressesAndGenerations(t *testing.T) {
	f, out, err := Render(nodes(t, "a mac=52:54:00:00:00:01 address=fd00::5/64\nb mac=52:54:00:00:00:02 address=10.0.0.7/24 generation=01\nc mac=52:54:00:00:00:03 address=::ffff:10.0.0.9/120\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"dnsmasq.conf":                 "dhcp-host=52:54:00:00:00:01,set:nroot,[fd00::5],a\n",
		"nginx.conf":                   "location = /nodes/a.img { allow fd00::5; deny all; }\n",
		"nodes/52-54-00-00-00-02.ipxe": "chain ${nroot-base}/generations/1/boot.ipxe\n",
		"dnsmasq.conf ":                "dhcp-host=52:54:00:00:00:03,set:nroot,10.0.0.9,c\n",
		"nginx.conf ":                  "location = /nodes/c.img { allow 10.0.0.9; deny all; }\n",
	} {
		name = strings.TrimSpace(name)
		if !strings.Contains(f[name], want) {
			t.Errorf("%s lacks %q:\n%s", name, want, f[name])
		}
	}
	if out[1].Generation != "1" {
		t.Errorf("generation %q, want 1", out[1].Generation)
	}
	conf := filepath.Join(t.TempDir(), "dnsmasq.conf")
	os.WriteFile(conf, []byte(strings.Replace(f["dnsmasq.conf"], "dhcp-range=10.0.0.0,static\n", "dhcp-range=10.0.0.0,static\ndhcp-range=fd00::,static,64\n", 1)), 0o644)
	dnsmasq := testenv.Command(t, "dnsmasq")
	if b, err := exec.Command(dnsmasq, "--test", "--conf-file="+conf).CombinedOutput(); err != nil {
		t.Errorf("dnsmasq --test: %v\n%s", err, b)
	}
}

// TestWriteRemovesStale: a node that left the inventory, or changed its
// MAC, loses its script and its segment on the next run; files nroot did
// not name are left alone.
func TestWriteRemovesStale(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "generations"), 0o755)
	store := identity.Store{Dir: filepath.Join(t.TempDir(), "state")}
	if _, err := Write(dir, nodes(t, "node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24\n"), store, opts); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "nodes", "README"), []byte("mine"), 0o644)
	res, err := Write(dir, nodes(t, "node01 mac=52:54:00:4e:52:0a address=10.0.0.11/24\n"), store, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nodes/node02.img", "nodes/52-54-00-4e-52-02.ipxe", "nodes/52-54-00-4e-52-01.ipxe"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
	for _, f := range []string{"nodes/node01.img", "nodes/52-54-00-4e-52-0a.ipxe", "nodes/README"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(res.Removed) != 3 {
		t.Errorf("removed %v, want the three stale files", res.Removed)
	}
}

// TestExportHoldsNoKeys: the NFS exports nroot pxe writes name the
// generations alone, and nothing below that path is a segment or the
// identity store: a node that mounts the export reads no node's keys.
// TestWriteRefusesUnservableImage: an image whose path the exports,
// ganesha and nginx files could not carry is refused, naming IMAGE,
// before any file is written.
func TestWriteRefusesUnservableImage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my image;")
	os.MkdirAll(filepath.Join(dir, "generations", "1", "root"), 0o755)
	_, err := Write(dir, nodes(t, "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n"), identity.Store{Dir: t.TempDir()}, opts)
	var oe *usage.Error
	if !errors.As(err, &oe) || oe.Option != "IMAGE" {
		t.Fatalf("Write = %v, want an OptionError naming IMAGE", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("wrote %d entries into the image, want none", len(ents)-1)
	}
}

// TestWriteRefusesStateInExport: identity state NFS would export to
// every node is refused, naming --state, also through a symlink.
func TestWriteRefusesStateInExport(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "generations", "1", "root"), 0o755)
	link := filepath.Join(t.TempDir(), "gens")
	os.Symlink(filepath.Join(dir, "generations"), link)
	for _, state := range []string{filepath.Join(dir, "generations", "state"), filepath.Join(link, "new", "state")} {
		_, err := Write(dir, nodes(t, "n mac=52:54:00:00:00:01 address=10.0.0.2/24\n"), identity.Store{Dir: state}, opts)
		var oe *usage.Error
		if !errors.As(err, &oe) || oe.Option != "--state" {
			t.Errorf("state %s: Write = %v, want an OptionError naming --state", state, err)
		}
	}
}

func TestExportHoldsNoKeys(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "generations", "1", "root", "etc"), 0o755)
	state := filepath.Join(dir, "state") // the worst place a user could keep it
	res, err := Write(dir, nodes(t, "node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24\n"), identity.Store{Dir: state}, opts)
	if err != nil {
		t.Fatal(err)
	}
	gens := filepath.Join(res.Image, "generations")
	for _, f := range []string{res.Exports, res.Ganesha} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "Path = ") && line != "Path = "+gens+";" {
				t.Errorf("%s exports %s, want %s alone", f, line, gens)
			}
			if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, gens+" ") {
				t.Errorf("%s exports %s, want %s alone", f, line, gens)
			}
		}
		if !strings.Contains(string(b), gens) || !strings.Contains(string(b), "Pseudo = /nroot/generations;") && f == res.Ganesha {
			t.Errorf("%s does not export %s:\n%s", f, gens, b)
		}
	}
	filepath.WalkDir(gens, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".img") || strings.HasPrefix(p, state)) {
			t.Errorf("%s is below the export", p)
		}
		return nil
	})
}
