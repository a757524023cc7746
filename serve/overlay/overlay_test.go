package overlay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"nroot/internal/fsroot"
	"nroot/serve/identity"
	"nroot/serve/inventory"
)

const testInventory = `@compute overlays=hosts,site role=compute domain=cluster.test
@login overlays=hosts,site,munge role=login domain=cluster.test
node01 mac=52:54:00:00:00:01 address=10.0.0.11/24 groups=compute ens4.address=192.168.50.11/24
node02 mac=52:54:00:00:00:02 groups=login ens4.address=192.168.50.12/24 ens4.mtu=9000 ens4.route="10.9.0.0/16 via 192.168.50.1,default via 192.168.50.254"
node03 mac=52:54:00:00:00:03
`

func parse(t *testing.T, text string) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Parse(strings.NewReader(text), "nodes.txt")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// tree writes files (path: content; a path ending / is a directory) under
// dir with the modes given.
func tree(t *testing.T, dir string, files map[string]string, modes map[string]os.FileMode) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		m := modes[p]
		if m == 0 {
			m = 0o644
		}
		if err := os.WriteFile(full, []byte(c), m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, m); err != nil {
			t.Fatal(err)
		}
	}
}

func byPath(files []File) map[string]File {
	m := map[string]File{}
	for _, f := range files {
		m[f.Path] = f
	}
	return m
}

func TestRenderDirectory(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{
		"site/etc/motd":                    "welcome\n",
		"site/etc/role.tmpl":               "{{.Node.Hostname}} is {{.Vars.role}} in {{index .Node.Groups 0}}; peers:{{range .Nodes}} {{.Name}}{{end}}; login nodes: {{join (index .Groups \"login\").Nodes \",\"}}\n",
		"site/etc/site.d/":                 "",
		"site/.owners":                     "etc/motd 0:4 # group adm\n",
		"munge/etc/munge/munge.key.secret": "SECRET",
	}, map[string]os.FileMode{"site/etc/motd": 0o640})
	inv := parse(t, testInventory)
	files, err := Render(inv, inv.Nodes[0], Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got := byPath(files)
	if f := got["etc/motd"]; string(f.Data) != "welcome\n" || f.Mode != 0o640 || f.UID != 0 || f.GID != 4 {
		t.Errorf("etc/motd: %+v", f)
	}
	if f := got["etc/role"]; string(f.Data) != "node01 is compute in compute; peers: node01 node02 node03; login nodes: node02\n" || f.Mode != 0o644 {
		t.Errorf("etc/role: %q %v", f.Data, f.Mode)
	}
	if f, ok := got["etc/site.d"]; !ok || !f.Mode.IsDir() {
		t.Errorf("etc/site.d: %+v", f)
	}
	if _, ok := got["etc/munge/munge.key"]; ok {
		t.Errorf("node01 (compute) got login's secret")
	}
	if !strings.Contains(string(got["etc/hosts"].Data), "10.0.0.11\tnode01.cluster.test node01\n192.168.50.12\tnode02.cluster.test node02\n# node03: no address") {
		t.Errorf("etc/hosts:\n%s", got["etc/hosts"].Data)
	}
	files, err = Render(inv, inv.Nodes[1], Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if f := byPath(files)["etc/munge/munge.key"]; string(f.Data) != "SECRET" || f.Mode != 0o600 || !f.Secret {
		t.Errorf("the login node's secret: %+v", f)
	}
}

func TestRenderRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		inv   string
		want  string
	}{
		{"a missing variable", map[string]string{"o/x.tmpl": "{{.Vars.nope}}"}, "", `map has no entry for key "nope"`},
		{"a missing variable through var", map[string]string{"o/x.tmpl": `{{var .Node "ens9.address"}}`}, "", `no variable "ens9.address"`},
		{"a template that does not parse", map[string]string{"o/x.tmpl": "{{.Vars.role"}, "", "unclosed action"},
		{"a template that fails", map[string]string{"o/x.tmpl": "{{index .Nodes 99}}"}, "", "index out of range"},
		{"a missing overlay", map[string]string{"o/x": ""}, "n mac=52:54:00:00:00:01 overlays=o,nope\n", "nope"},
		{"two overlays give one file", map[string]string{"o/etc/x": "", "p/etc/x": ""}, "n mac=52:54:00:00:00:01 overlays=o,p\n", "both give etc/x"},
		{"an owner for a file the overlay lacks", map[string]string{"o/x": "", "o/.owners": "y 1:1\n"}, "", "does not have"},
		{"an owner that is a name", map[string]string{"o/x": "", "o/.owners": "x root:root\n"}, "", "UID:GID"},
		{"a template that only is a suffix", map[string]string{"o/.tmpl": ""}, "", "names no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tree(t, dir, tt.files, nil)
			text := tt.inv
			if text == "" {
				text = "n mac=52:54:00:00:00:01 overlays=o role=x\n"
			}
			inv := parse(t, text)
			_, err := Render(inv, inv.Nodes[0], Options{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line with %q", err, tt.want)
			}
		})
	}
	t.Run("a symlink, a fifo and a symlinked overlay", func(t *testing.T) {
		for _, mk := range []func(dir string) error{
			func(dir string) error { return os.Symlink("/etc/shadow", filepath.Join(dir, "o/etc/shadow")) },
			func(dir string) error { return syscall.Mkfifo(filepath.Join(dir, "o/etc/fifo"), 0o644) },
			func(dir string) error {
				os.RemoveAll(filepath.Join(dir, "o"))
				return os.Symlink("/etc", filepath.Join(dir, "o"))
			},
		} {
			dir := t.TempDir()
			tree(t, dir, map[string]string{"o/etc/ok": ""}, nil)
			if err := mk(dir); err != nil {
				t.Fatal(err)
			}
			inv := parse(t, "n mac=52:54:00:00:00:01 overlays=o\n")
			if _, err := Render(inv, inv.Nodes[0], Options{Dir: dir}); !errors.Is(err, ErrOverlay) {
				t.Errorf("error %v, want ErrOverlay", err)
			}
		}
	})
}

func TestNetwork(t *testing.T) {
	inv := parse(t, testInventory)
	n := inv.Nodes[1]
	for _, tt := range []struct {
		kind, path string
		want       []string
	}{
		{Networkd, "etc/systemd/network/10-nroot-ens4.network", []string{"[Match]\nName=ens4\n", "MTUBytes=9000", "Address=192.168.50.12/24", "Destination=10.9.0.0/16\nGateway=192.168.50.1", "Destination=0.0.0.0/0\nGateway=192.168.50.254"}},
		{Ifupdown, "etc/network/interfaces.d/nroot-ens4", []string{"auto ens4\niface ens4 inet manual\n    mtu 9000\n", "up ip addr add 192.168.50.12/24 dev ens4", "up ip route add 10.9.0.0/16 via 192.168.50.1 dev ens4", "up ip route add default via 192.168.50.254 dev ens4"}},
		{Script, "etc/nroot/network.d/ens4.sh", []string{"ip link set dev ens4 mtu 9000", "ip addr replace 192.168.50.12/24 dev ens4", "ip route replace 10.9.0.0/16 via 192.168.50.1 dev ens4"}},
	} {
		files, err := network(NewData(inv, n), Options{Network: tt.kind})
		if err != nil {
			t.Fatal(err)
		}
		got := byPath(files)
		f, ok := got[tt.path]
		if !ok {
			t.Fatalf("%s: no %s in %v", tt.kind, tt.path, files)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(f.Data), w) {
				t.Errorf("%s: %s lacks %q:\n%s", tt.kind, tt.path, w, f.Data)
			}
		}
		if tt.kind == Script {
			if l := got["etc/systemd/system/multi-user.target.wants/nroot-network.service"]; l.Link != "/etc/systemd/system/nroot-network.service" {
				t.Errorf("script: the unit is not enabled: %+v", l)
			}
			if out, err := exec.Command("sh", "-n", "-c", string(f.Data)).CombinedOutput(); err != nil {
				t.Errorf("sh -n: %v %s", err, out)
			}
		}
	}
	// A bad variable names the inventory's line and field.
	for _, bad := range []string{"ens4.address=192.168.50.12", "ens4.mtu=20", "ens4.route=\"10.0.0.0/8 gw 1.2.3.4\"", "lo.address=127.0.0.2/8", "abcdefghijklmnop.address=10.1.1.1/24", "network=nm"} {
		inv := parse(t, "\nn mac=52:54:00:00:00:01 overlays=network "+bad+"\n")
		_, err := Render(inv, inv.Nodes[0], Options{})
		err = NodeError(inv, inv.Nodes[0], err)
		var ie *inventory.Error
		if !errors.As(err, &ie) || ie.Line != 2 || ie.Field != strings.SplitN(bad, "=", 2)[0] {
			t.Errorf("%s: error %v, want one naming nodes.txt:2 and the variable", bad, err)
		}
	}
}

func TestDetectNetwork(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(dir string) error
		want  string
	}{
		{"nothing: the script", func(string) error { return nil }, Script},
		{"ifupdown installed", func(d string) error { return os.WriteFile(filepath.Join(d, "usr/sbin/ifup"), nil, 0o755) }, Ifupdown},
		{"networkd enabled", func(d string) error {
			os.MkdirAll(filepath.Join(d, "etc/systemd/system/multi-user.target.wants"), 0o755)
			return os.Symlink("/usr/lib/systemd/system/systemd-networkd.service", filepath.Join(d, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service"))
		}, Networkd},
		{"networkd enabled but masked (nroot node), ifupdown", func(d string) error {
			os.MkdirAll(filepath.Join(d, "etc/systemd/system/multi-user.target.wants"), 0o755)
			os.WriteFile(filepath.Join(d, "usr/lib/systemd/system/systemd-networkd.service"), nil, 0o644)
			os.WriteFile(filepath.Join(d, "usr/sbin/ifup"), nil, 0o755)
			os.Symlink("/dev/null", filepath.Join(d, "etc/systemd/system/systemd-networkd.service"))
			return os.Symlink("/usr/lib/systemd/system/systemd-networkd.service", filepath.Join(d, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service"))
		}, Ifupdown},
	} {
		dir := t.TempDir()
		for _, d := range []string{"usr/sbin", "usr/lib/systemd/system", "etc/systemd/system"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		if err := tt.setup(dir); err != nil {
			t.Fatal(err)
		}
		r, err := fsroot.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectNetwork(r); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
		r.Close()
	}
}

func TestSSHHostCert(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ssh-keygen is missing")
		}
		t.Skip("ssh-keygen is missing")
	}
	state := filepath.Join(t.TempDir(), "state")
	st := identity.Store{Dir: state}
	ca, err := st.EnsureCA()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(state, "ssh_ca_key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the CA's key: %v %v", fi, err)
	}
	again, err := st.EnsureCA()
	if err != nil || again.Public != ca.Public || again.Created || !ca.Created {
		t.Fatalf("EnsureCA again: %v %v", again, err)
	}
	id, err := st.Ensure("node01", "node01")
	if err != nil {
		t.Fatal(err)
	}
	inv := parse(t, "node01 mac=52:54:00:00:00:01 overlays=ssh-host-cert domain=cluster.test\n")
	files, err := Render(inv, inv.Nodes[0], Options{Identity: id, CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	got := byPath(files)
	cert := got["etc/ssh/ssh_host_ed25519_key-cert.pub"]
	p := filepath.Join(t.TempDir(), "cert.pub")
	os.WriteFile(p, cert.Data, 0o644)
	out, err := exec.Command("ssh-keygen", "-L", "-f", p).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v %s", err, out)
	}
	caFP, _ := exec.Command("ssh-keygen", "-l", "-f", filepath.Join(state, "ssh_ca_key.pub")).Output()
	fp := strings.Fields(string(caFP))[1]
	for _, w := range []string{"host certificate", "Signing CA: ED25519 " + fp, "\n                node01\n", "node01.cluster.test", "Valid: forever"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("ssh-keygen -L lacks %q:\n%s", w, out)
		}
	}
	if c := string(got["etc/ssh/sshd_config.d/nroot-host-cert.conf"].Data); !strings.Contains(c, "HostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n") {
		t.Errorf("sshd_config.d: %s", c)
	}
	if kh := string(got["etc/ssh/ssh_known_hosts"].Data); !strings.HasPrefix(kh, "@cert-authority *.cluster.test,node01 ssh-ed25519 ") {
		t.Errorf("ssh_known_hosts: %s", kh)
	}
	// The rsa certificate verifies too (rsa-sha2-512 signature).
	os.WriteFile(p, got["etc/ssh/ssh_host_rsa_key-cert.pub"].Data, 0o644)
	if out, err := exec.Command("ssh-keygen", "-L", "-f", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "RSA-CERT") {
		t.Errorf("rsa certificate: %v %s", err, out)
	}
	// Without a CA the built-in says where it comes from.
	if _, err := Render(inv, inv.Nodes[0], Options{}); !errors.Is(err, ErrNoCA) {
		t.Errorf("no CA: %v", err)
	}
	// The segment holds identity and overlay, parents made, once each.
	var b bytes.Buffer
	if err := id.WriteSegmentWith(&b, Records(files)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv")
	cmd.Stdin = &b
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	for _, w := range []string{"nroot-identity/etc/ssh/sshd_config.d/nroot-host-cert.conf", "nroot-identity/etc/ssh/sshd_config.d\n"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("segment lacks %q:\n%s", w, out)
		}
	}
	if strings.Count(string(out), "nroot-identity/etc/ssh\n") != 1 {
		t.Errorf("etc/ssh twice:\n%s", out)
	}
	// An overlay may not replace the identity's own files.
	if err := id.WriteSegmentWith(&b, Records([]File{{Path: "etc/machine-id", Mode: 0o644}})); err == nil {
		t.Error("an overlay's etc/machine-id was taken")
	}
}

func FuzzParseOwners(f *testing.F) {
	f.Add("etc/motd 0:4 # adm\n\nvar/x 1000:1000\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseOwners(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		for p, o := range m {
			if _, err := cleanPath(p); err != nil || o[0] < 0 || o[1] < 0 {
				t.Fatalf("%q %v", p, o)
			}
		}
	})
}

func FuzzInterfaces(f *testing.F) {
	f.Add("ens4.address", "192.168.50.11/24,fd00::1/64", "ens4.route", "10.0.0.0/8 via 192.168.50.1,default via 192.168.50.254")
	f.Add("ens4.mtu", "9000", "eth1.route", "default")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := Host{Name: "n", Vars: map[string]string{k1: v1, k2: v2}}
		ifs, err := interfaces(h)
		if err != nil {
			return
		}
		for _, i := range ifs {
			if !ifaceRe.MatchString(i.name) || strings.ContainsAny(i.name, "/ \n") {
				t.Fatalf("interface %q", i.name)
			}
			for _, r := range i.routes {
				if strings.ContainsAny(r.dest+r.via, " \n;") {
					t.Fatalf("route %+v", r)
				}
			}
		}
		// Whatever the writer, what it writes is one line per setting.
		for _, kind := range []string{Networkd, Ifupdown, Script} {
			if _, err := network(Data{Node: h, Vars: h.Vars}, Options{Network: kind}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSuffixes: .tmpl and .secret are taken off in either order; a
// secret template renders and is 0600.
func TestSuffixes(t *testing.T) {
	for _, c := range []struct {
		file, path, data string
		secret           bool
	}{
		{"etc/x.tmpl", "etc/x", "node01\n", false},
		{"etc/x.secret", "etc/x", "{{.Node.Hostname}}\n", true},
		{"etc/x.secret.tmpl", "etc/x", "node01\n", true},
		{"etc/x.tmpl.secret", "etc/x", "node01\n", true},
		{"etc/x.tmpl.tmpl", "etc/x.tmpl", "node01\n", false},
		{"etc/x.secret.secret", "etc/x.secret", "{{.Node.Hostname}}\n", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			dir := t.TempDir()
			tree(t, dir, map[string]string{"o/" + c.file: "{{.Node.Hostname}}\n"}, nil)
			inv := parse(t, "node01 mac=52:54:00:00:00:01 overlays=o\n")
			files, err := Render(inv, inv.Nodes[0], Options{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			want := os.FileMode(0o644)
			if c.secret {
				want = 0o600
			}
			if len(files) != 2 || files[1].Path != c.path || string(files[1].Data) != c.data || files[1].Secret != c.secret || files[1].Mode != want {
				t.Errorf("got %+v, want %s %q secret %v %v", files, c.path, c.data, c.secret, want)
			}
		})
	}
}

// TestUnknownOverlay: an overlay that is neither a built-in nor a
// directory is an inventory error naming the overlays field on the line
// that named it: the group's, or the node's own.
func TestUnknownOverlay(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"site/etc/motd": "hi\n"}, nil)
	for _, c := range []struct {
		name, inv string
		dir       string
		line      int
	}{
		{"on the node's line", "@g overlays=site\nn mac=52:54:00:00:00:01 groups=g overlays=nosuch\n", dir, 2},
		{"on its group's line", "# c\n@g overlays=site,nosuch\nn mac=52:54:00:00:00:01 groups=g\n", dir, 2},
		{"no overlays directory", "n mac=52:54:00:00:00:01 overlays=nosuch\n", "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv := parse(t, c.inv)
			_, err := Render(inv, inv.Nodes[0], Options{Dir: c.dir})
			err = NodeError(inv, inv.Nodes[0], err)
			var ie *inventory.Error
			if !errors.As(err, &ie) || ie.Field != "overlays" || ie.Line != c.line || !strings.Contains(err.Error(), "nosuch") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v, want an inventory error on line %d naming overlays and nosuch", err, c.line)
			}
		})
	}
}
