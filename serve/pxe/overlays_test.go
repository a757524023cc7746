package pxe

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"nroot/e2e/testenv"
	"nroot/serve/identity"
	"nroot/serve/inventory"
)

const overlayInventory = `@compute overlays=hosts,network,site role=compute
@login overlays=hosts,site,munge,ssh-host-cert role=login domain=cluster.test
node01 mac=52:54:00:4e:52:01 address=10.0.0.11/24 groups=compute ens4.address=192.168.50.11/24
node02 mac=52:54:00:4e:52:02 address=10.0.0.12/24 groups=login ens4.address=192.168.50.12/24
`

// segmentList lists a segment with GNU cpio, as the kernel reads it.
func segmentList(t *testing.T, seg string) string {
	t.Helper()
	f, err := os.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(testenv.Command(t, "cpio"), "-itv", "--numeric-uid-gid")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t %s: %v", seg, err)
	}
	return string(out)
}

// segmentFile is one file of a segment, extracted with GNU cpio.
func segmentFile(t *testing.T, seg, name string) string {
	t.Helper()
	f, err := os.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(testenv.Command(t, "cpio"), "-i", "--to-stdout", name)
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -i %s %s: %v", seg, name, err)
	}
	return string(out)
}

// TestWriteOverlays: each node's segment holds its groups' rendered
// overlays beside its identity; a secret lands in its group's nodes'
// alone, 0600; a secret for a node without address= is refused, naming
// the inventory's line and field, unless allowed; nginx logs for nroot
// status, which finds the log and the nodes in IMAGE/nodes.json.
func TestWriteOverlays(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "generations", "1", "root", "etc"), 0o755)
	ovDir := filepath.Join(t.TempDir(), "overlays")
	for p, c := range map[string]string{
		"site/etc/nroot-role.tmpl":         "{{.Node.Hostname}} {{.Vars.role}}\n",
		"munge/etc/munge/munge.key.secret": "KEY",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(ovDir, p)), 0o755)
		os.WriteFile(filepath.Join(ovDir, p), []byte(c), 0o644)
	}
	inv, err := inventory.Parse(strings.NewReader(overlayInventory), "nodes.txt")
	if err != nil {
		t.Fatal(err)
	}
	o := opts
	o.Groups, o.Overlays, o.AccessLog = inv.Groups, ovDir, "/var/log/nginx/test-access.log"
	state := filepath.Join(t.TempDir(), "state")
	res, err := Write(dir, inv.Nodes, identity.Store{Dir: state}, o)
	if err != nil {
		t.Fatal(err)
	}
	one := segmentList(t, filepath.Join(dir, "nodes/node01.img"))
	two := segmentList(t, filepath.Join(dir, "nodes/node02.img"))
	for _, w := range []string{"nroot-identity/etc/nroot-role\n", "nroot-identity/etc/hosts\n", "nroot-identity/etc/nroot/network.d/ens4.sh\n", "nroot-identity/etc/ssh/ssh_host_ed25519_key\n"} {
		if !strings.Contains(one, w) {
			t.Errorf("node01's segment lacks %s:\n%s", w, one)
		}
	}
	if strings.Contains(one, "munge") || strings.Contains(one, "cert") {
		t.Errorf("node01 (compute) has login's secret or certificate:\n%s", one)
	}
	for _, w := range []string{"-rw-------   1 0        0               3 Jan  1  1970 nroot-identity/etc/munge/munge.key\n", "nroot-identity/etc/ssh/ssh_host_ed25519_key-cert.pub\n"} {
		if !strings.Contains(two, w) {
			t.Errorf("node02's segment lacks %q:\n%s", w, two)
		}
	}
	if !strings.HasPrefix(res.CertAuthority, "@cert-authority *.cluster.test,node02 ssh-ed25519 ") {
		t.Errorf("cert_authority %q", res.CertAuthority)
	}
	if kh := segmentFile(t, filepath.Join(dir, "nodes/node02.img"), "nroot-identity/etc/ssh/ssh_known_hosts"); kh != res.CertAuthority+"\n" {
		t.Errorf("node02's ssh_known_hosts %q, want nroot pxe's line %q", kh, res.CertAuthority)
	}
	if len(res.Nodes[0].Files) == 0 || res.Nodes[0].Files[0] != "etc/hosts" {
		t.Errorf("node01's overlay files: %v", res.Nodes[0].Files)
	}
	ng, _ := os.ReadFile(res.Nginx)
	if !strings.Contains(string(ng), "    access_log /var/log/nginx/test-access.log combined;\n") {
		t.Errorf("nginx.conf has no access_log:\n%s", ng)
	}
	ix, err := ReadIndex(dir)
	if err != nil || ix.AccessLog != o.AccessLog || len(ix.Nodes) != 2 || ix.Nodes[1].MAC != "52:54:00:4e:52:02" {
		t.Errorf("ReadIndex: %+v, %v", ix, err)
	}

	// node02 by DHCP: its secret would be served to any address.
	dhcp := strings.Replace(overlayInventory, "address=10.0.0.12/24 ", "", 1)
	inv, _ = inventory.Parse(strings.NewReader(dhcp), "nodes.txt")
	o.Groups, o.DHCPRange = inv.Groups, "10.0.0.100,10.0.0.200"
	_, err = Write(dir, inv.Nodes, identity.Store{Dir: state}, o)
	var ie *inventory.Error
	if !errors.As(err, &ie) || ie.Line != 4 || ie.Field != "address" || !strings.Contains(err.Error(), "node02") || !strings.Contains(err.Error(), "--secrets-to-any-address") {
		t.Errorf("a secret for a DHCP node: %v", err)
	}
	o.SecretsToAnyAddress = true
	if _, err := Write(dir, inv.Nodes, identity.Store{Dir: state}, o); err != nil {
		t.Errorf("with SecretsToAnyAddress: %v", err)
	}

	// A template's missing variable names the node and the file.
	bad := strings.Replace(overlayInventory, "role=compute", "", 1)
	inv, _ = inventory.Parse(strings.NewReader(bad), "nodes.txt")
	o.Groups = inv.Groups
	if _, err := Write(dir, inv.Nodes, identity.Store{Dir: state}, o); err == nil || !strings.Contains(err.Error(), "node node01: overlay site") || !strings.Contains(err.Error(), `"role"`) {
		t.Errorf("a missing variable: %v", err)
	}
}

// TestDHCPGuard: a node without address= is refused a secret or a host
// certificate (its segment would be served to any address), naming the
// inventory's line and field and --secrets-to-any-address, unless that
// is given.
func TestDHCPGuard(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "generations", "1", "root", "etc"), 0o755)
	ovDir := filepath.Join(t.TempDir(), "overlays")
	os.MkdirAll(filepath.Join(ovDir, "munge/etc/munge"), 0o755)
	os.WriteFile(filepath.Join(ovDir, "munge/etc/munge/munge.key.secret"), []byte("KEY"), 0o644)
	state := filepath.Join(t.TempDir(), "state")
	for _, c := range []struct {
		name, inv string
		any       bool
		refused   bool
	}{
		{"secret, dhcp", "node01 mac=52:54:00:4e:52:01 overlays=munge\n", false, true},
		{"cert, dhcp", "node01 mac=52:54:00:4e:52:01 overlays=ssh-host-cert\n", false, true},
		{"cert in a group, dhcp", "@login overlays=hosts,ssh-host-cert\nnode01 mac=52:54:00:4e:52:01 groups=login\n", false, true},
		{"cert, dhcp, allowed", "node01 mac=52:54:00:4e:52:01 overlays=ssh-host-cert\n", true, false},
		{"cert, address", "node01 mac=52:54:00:4e:52:01 address=10.0.0.11/24 overlays=ssh-host-cert\n", false, false},
		{"hosts, dhcp", "node01 mac=52:54:00:4e:52:01 overlays=hosts\n", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv, err := inventory.Parse(strings.NewReader(c.inv), "nodes.txt")
			if err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Groups, o.Overlays, o.Inventory, o.DHCPRange, o.SecretsToAnyAddress = inv.Groups, ovDir, "nodes.txt", "10.0.0.100,10.0.0.200", c.any
			_, err = Write(dir, inv.Nodes, identity.Store{Dir: state}, o)
			var ie *inventory.Error
			refused := errors.As(err, &ie) && ie.Field == "address" && ie.Line == inv.Nodes[0].Line && strings.Contains(err.Error(), "nodes.txt:") && strings.Contains(err.Error(), "--secrets-to-any-address")
			if refused != c.refused || (!c.refused && err != nil) {
				t.Errorf("refused %v, want %v: %v", refused, c.refused, err)
			}
		})
	}
}

// TestSymlinkedParents: an overlay path through a symlink of the image
// the node boots (merged-/usr lib/, etc/localtime) is refused, naming
// the node, the overlay and the path; a path beside or through the
// link's target is not.
func TestSymlinkedParents(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "generations", "1", "root")
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(root, "etc/localtime"))
	state := filepath.Join(t.TempDir(), "state")
	for _, c := range []struct {
		file    string
		refused string // the path named, "" for none
	}{
		{"lib/modprobe.d/x.conf", "/lib, a symlink"},
		{"etc/localtime/x", "/etc/localtime, a symlink"},
		{"usr/lib/modprobe.d/x.conf", ""},
		{"etc/motd", ""},
		{"etc/ssh/sshd_config.d/x.conf", ""},
		{"srv/new/x", ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			ovDir := filepath.Join(t.TempDir(), "overlays")
			p := filepath.Join(ovDir, "site", c.file)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("x\n"), 0o644)
			inv, err := inventory.Parse(strings.NewReader("node01 mac=52:54:00:4e:52:01 address=10.0.0.11/24 overlays=site\n"), "nodes.txt")
			if err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Overlays = ovDir
			_, err = Write(dir, inv.Nodes, identity.Store{Dir: state}, o)
			switch {
			case c.refused == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.refused != "" && (err == nil || !strings.Contains(err.Error(), "node node01: overlay site: "+path.Dir(c.file)) || !strings.Contains(err.Error(), " goes through "+c.refused) || strings.Contains(err.Error(), "\n")):
				t.Errorf("%v, want one line naming %s and %s", err, c.file, c.refused)
			}
		})
	}
}
