package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeRoot writes a minimal node root: a kernel with its modules
// directory and initramfs, nroot node's command line and a dpkg status.
func nodeRoot(t *testing.T, pkgs ...string) string {
	t.Helper()
	var status strings.Builder
	for _, p := range pkgs {
		status.WriteString("Package: " + p + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n")
	}
	return writeTree(t, map[string]string{
		"boot/vmlinuz-6.1.0-9-amd64":            "kernel",
		"boot/initrd.img-6.1.0-9-amd64":         "initrd",
		"lib/modules/6.1.0-9-amd64/modules.dep": "",
		"boot/nroot-cmdline":                    "root=nfs4:SERVER:/PATH ip=dhcp\n",
		"var/lib/dpkg/status":                   status.String(),
	})
}

// TestImageCommands drives generations and the boot configuration
// through the CLI, as the README's walk-through does (without the
// update, which needs an archive: make e2e runs it).
func TestImageCommands(t *testing.T) {
	img := filepath.Join(t.TempDir(), "image")
	inv := filepath.Join(t.TempDir(), "nodes.txt")
	os.WriteFile(inv, []byte("node[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24\nspare mac=52:54:00:4e:52:09 address=10.0.0.19/24 generation=1\n"), 0o644)
	state := filepath.Join(t.TempDir(), "state")
	steps := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"image", "list", img}, 64, "not an nroot image"},
		{[]string{"image", "create", "--json", img, nodeRoot(t, "a", "b")}, 0, `"generation": 1`},
		{[]string{"image", "create", "--move", img, nodeRoot(t, "a", "c")}, 0, "generation 2"},
		{[]string{"image", "create", img, t.TempDir()}, 1, "run nroot node"},
		{[]string{"image", "publish", img, "two"}, 64, "GEN \"two\""},
		{[]string{"image", "publish", img, "9"}, 1, "no such generation"},
		{[]string{"image", "rollback", img}, 1, "nothing is published"},
		{[]string{"image", "publish", img, "1"}, 0, "published generation 1"},
		{[]string{"image", "publish", img, "2"}, 0, "published generation 2"},
		// Generations that differ exit 1, as initrd diff; the same, 0.
		{[]string{"image", "diff", img, "1", "2"}, 1, "+ c 1 amd64"},
		{[]string{"image", "diff", "--json", img, "1", "2"}, 1, `"packages_removed"`},
		{[]string{"image", "diff", "--json", img, "2", "2"}, 0, `"packages_removed": []`},
		{[]string{"pxe", "--server", "10.0.0.1", img, inv}, 64, "--http"},
		{[]string{"pxe", "--http", "http://10.0.0.1/sub", "--server", "10.0.0.1", img, inv}, 64, "--http"},
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", img, filepath.Join(t.TempDir(), "none")}, 64, "inventory"},
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--state", state, img, inv}, 0, "nodes/52-54-00-4e-52-09.ipxe"},
		// What a user types wrong, each named before any work.
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--dhcp-range", "10.0.0.1-10.0.0.9", "--state", state, img, inv}, 64, "--dhcp-range \"10.0.0.1-10.0.0.9\": dnsmasq's dhcp-range separates start and end with a comma: give 10.0.0.1,10.0.0.9"},
		{[]string{"pxe", "--http", "https://10.0.0.1", "--server", "10.0.0.1", "--state", state, img, inv}, 64, "--http"},
		{[]string{"pxe", "--http", "http://192.168.1.1", "--server", "192.168.1.1", "--state", state, img, inv}, 64, "nodes.txt:1 address"},
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--segment-group", "no-such-group-nroot", "--state", state, img, inv}, 64, "--segment-group"},
		// The README's inventory (nodes with address=, as ssh-host-cert needs) with pxe --help's example;
		// a TFTP root without iPXE's builds is named, with the package.
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--dhcp-range", "10.0.0.100,10.0.0.200", "--tftp-root", t.TempDir(), "--state", state, img, readmeInventory(t)}, 0, "has no undionly.kpxe or ipxe.efi, which dnsmasq.conf offers firmware by TFTP: install Debian's ipxe package"},
		{[]string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--state", state, img, inv}, 0, "nodes/52-54-00-4e-52-09.ipxe"},
		{[]string{"image", "rollback", img}, 0, "published generation 1"},
		{[]string{"image", "remove", img, "1"}, 1, "is published"},
		{[]string{"image", "publish", img, "2"}, 0, "published generation 2"},
		{[]string{"image", "remove", "--inventory", inv, img, "1"}, 1, "pinned"},
		{[]string{"image", "remove", img, "1"}, 0, "removed generation 1"},
		{[]string{"image", "list", "--json", img}, 0, `"published": true`},
		{[]string{"image", "list", "--json", img}, 0, `"name": "c"`},
		{[]string{"image", "publish", "--json", img, "2"}, 0, `"action": "publish"`},
	}
	for i, s := range steps {
		out, errs, code := nroot(t, nil, s.args...)
		if code != s.code || !strings.Contains(out+errs, s.says) {
			t.Fatalf("step %d: nroot %s: exit %d, want %d, saying %q:\n%s%s", i, strings.Join(s.args, " "), code, s.code, s.says, out, errs)
		}
		if code == 64 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("step %d: a usage error takes one line:\n%s", i, errs)
		}
	}
	var list struct {
		Version     string `json:"nroot_version"`
		Generations []struct {
			ID        int  `json:"generation"`
			Published bool `json:"published"`
		} `json:"generations"`
	}
	out, _, _ := nroot(t, nil, "image", "list", "--json", img)
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Version == "" || len(list.Generations) != 1 || list.Generations[0].ID != 2 || !list.Generations[0].Published {
		t.Errorf("image list --json: %+v (%v)\n%s", list, err, out)
	}
	for _, f := range []string{"boot.ipxe", "dnsmasq.conf", "nginx.conf", "nodes/node01.img", "nodes/52-54-00-4e-52-01.ipxe"} {
		if _, err := os.Stat(filepath.Join(img, f)); err != nil {
			t.Errorf("nroot pxe: %v", err)
		}
	}
}

// readmeInventory is the inventory of the README's walk-through (the
// heredoc written to nodes.txt), with the overlay files it writes beside
// it (echo '...' > overlays/...).
func readmeInventory(t *testing.T) string {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.txt")
	var text []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "cat > nodes.txt <<'END'":
			in = true
		case in && line == "END":
			in = false
		case in:
			text = append(text, line)
		case strings.HasPrefix(line, "echo '") && strings.Contains(line, "' > overlays/"):
			content, file, _ := strings.Cut(strings.TrimPrefix(line, "echo '"), "' > ")
			p := filepath.Join(dir, filepath.FromSlash(file))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(content+"\n"), 0o644)
		}
	}
	if len(text) == 0 {
		t.Fatal("README.md has no inventory (cat > nodes.txt <<'END' ... END)")
	}
	os.WriteFile(inv, []byte(strings.Join(text, "\n")+"\n"), 0o644)
	return inv
}

// TestImageFSImage drives --fsimage and root= through the CLI: a
// generation with a squashfs file boots nodes with root=nfs-squashfs,
// one without is refused for them, and update's flag is checked before
// any work.
func TestImageFSImage(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs (squashfs-tools) is not installed")
	}
	img := filepath.Join(t.TempDir(), "image")
	root := func() string {
		r := nodeRoot(t, "a")
		os.WriteFile(filepath.Join(r, "boot/nroot-cmdline-image"), []byte("root=live:IMAGEURL ip=dhcp rd.neednet=1\n"), 0o644)
		return r
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.txt")
	os.WriteFile(inv, []byte("@img root=nfs-squashfs\na mac=52:54:00:4e:52:01 address=10.0.0.11/24 groups=img generation=2\nb mac=52:54:00:4e:52:02 address=10.0.0.12/24 root=tree\n"), 0o644)
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("a mac=52:54:00:4e:52:01 address=10.0.0.11/24 root=squashfs\n"), 0o644)
	pinned1 := filepath.Join(dir, "pinned1.txt")
	os.WriteFile(pinned1, []byte("a mac=52:54:00:4e:52:01 address=10.0.0.11/24 root=nfs-squashfs generation=1\n"), 0o644)
	pxe := []string{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--state", filepath.Join(t.TempDir(), "state"), img}
	steps := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"image", "create", "--fsimage", "zip", img, root()}, 64, `--fsimage "zip": give squashfs, erofs`},
		{[]string{"image", "create", img, root()}, 0, "generation 1"},
		{[]string{"image", "create", "--fsimage", "squashfs", "--fsimage-group", "root", img, root()}, 0, "root modes tree nfs-squashfs http-squashfs"},
		{[]string{"image", "list", "--json", img}, 0, `"images": [
        "root.squashfs"
      ],
      "image_cmdline": "root=live:IMAGEURL ip=dhcp rd.neednet=1"`},
		{[]string{"image", "list", img}, 0, "root.squashfs"},
		{[]string{"image", "update", "--fsimage", "zip", img}, 64, "--fsimage"},
		{append(pxe, bad), 64, "bad.txt:1: root"},
		{append(pxe, pinned1), 64, "pinned1.txt:1 root \"nfs-squashfs\": node a is pinned to generation 1, which has no nfs-squashfs image"},
		{append(pxe, inv), 0, "generation 2         root nfs-squashfs  nodes/52-54-00-4e-52-01.ipxe"},
	}
	for i, s := range steps {
		out, errs, code := nroot(t, nil, s.args...)
		if code != s.code || !strings.Contains(out+errs, s.says) {
			t.Fatalf("step %d: nroot %s: exit %d, want %d, saying %q:\n%s%s", i, strings.Join(s.args, " "), code, s.code, s.says, out, errs)
		}
	}
	b, _ := os.ReadFile(filepath.Join(img, "nodes/52-54-00-4e-52-01.ipxe"))
	if !strings.Contains(string(b), "set nroot-root nfs-squashfs\n") {
		t.Errorf("node a's script:\n%s", b)
	}
	if fi, err := os.Stat(filepath.Join(img, "generations/2/root.squashfs")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generations/2/root.squashfs: %v %v, want mode 0600 with --fsimage-group root", fi, err)
	}
}

// TestImageJSONAndRollback: publish, rollback and remove speak --json
// with nroot_version; rollback run twice steps further back instead of
// returning to the generation it left; list --json carries each
// generation's packages.
func TestImageJSONAndRollback(t *testing.T) {
	img := filepath.Join(t.TempDir(), "image")
	for i := 0; i < 3; i++ {
		if _, errs, code := nroot(t, nil, "image", "create", img, nodeRoot(t, "a")); code != 0 {
			t.Fatalf("create: %s", errs)
		}
	}
	type action struct {
		Version    string `json:"nroot_version"`
		Action     string `json:"action"`
		Generation int    `json:"generation"`
	}
	steps := []struct {
		args []string
		code int
		want action
	}{
		{[]string{"publish", "--json", img, "1"}, 0, action{Action: "publish", Generation: 1}},
		{[]string{"publish", "--json", img, "2"}, 0, action{Action: "publish", Generation: 2}},
		{[]string{"publish", "--json", img, "3"}, 0, action{Action: "publish", Generation: 3}},
		{[]string{"rollback", "--json", img}, 0, action{Action: "rollback", Generation: 2}},
		{[]string{"rollback", "--json", img}, 0, action{Action: "rollback", Generation: 1}},
		{[]string{"rollback", "--json", img}, 1, action{}},
		{[]string{"remove", "--json", img, "3"}, 0, action{Action: "remove", Generation: 3}},
	}
	for i, s := range steps {
		out, errs, code := nroot(t, nil, append([]string{"image"}, s.args...)...)
		if code != s.code {
			t.Fatalf("step %d: nroot image %s: exit %d, want %d\n%s%s", i, strings.Join(s.args, " "), code, s.code, out, errs)
		}
		if code != 0 {
			if !strings.Contains(errs, "1 stays published") {
				t.Errorf("step %d: %s", i, errs)
			}
			continue
		}
		var got action
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.Version == "" {
			t.Fatalf("step %d: %v\n%s", i, err, out)
		}
		got.Version = ""
		if got != s.want {
			t.Errorf("step %d: %+v, want %+v", i, got, s.want)
		}
	}
	var list struct {
		Generations []struct {
			Packages []struct {
				Name string `json:"name"`
			} `json:"packages"`
		} `json:"generations"`
	}
	out, _, _ := nroot(t, nil, "image", "list", "--json", img)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Generations) != 2 || len(list.Generations[0].Packages) != 1 {
		t.Errorf("image list --json: %+v (%v)\n%s", list, err, out)
	}
}

// TestIdentityJSON: identity --json is one document with nroot_version
// and the nodes, as every command's.
func TestIdentityJSON(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "nodes.txt")
	os.WriteFile(inv, []byte("node[01-02] mac=52:54:00:4e:52:[01-02]\n"), 0o644)
	out, errs, code := nroot(t, nil, "identity", "--state", filepath.Join(t.TempDir(), "state"), "--json", inv, filepath.Join(t.TempDir(), "segs"))
	var doc struct {
		Version string `json:"nroot_version"`
		Nodes   []struct {
			Name string `json:"name"`
		} `json:"nodes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version == "" || len(doc.Nodes) != 2 || doc.Nodes[1].Name != "node02" {
		t.Fatalf("identity --json: exit %d %+v\n%s%s", code, doc, out, errs)
	}
}

// TestKnownHostsLine: nroot identity and nroot pxe give one
// @cert-authority line for one inventory: the domain's pattern and the
// ssh-host-cert nodes' host names, never a bare *.
func TestKnownHostsLine(t *testing.T) {
	img := filepath.Join(t.TempDir(), "image")
	if _, errs, code := nroot(t, nil, "image", "create", img, nodeRoot(t, "a")); code != 0 {
		t.Fatalf("image create: %s", errs)
	}
	state := filepath.Join(t.TempDir(), "state")
	for _, c := range []struct {
		name, inv, pattern string
	}{
		{"a domain", "@g overlays=ssh-host-cert domain=cluster.test\nnode[01-02] mac=52:54:00:4e:52:[01-02] address=10.0.0.[11-12]/24 groups=g\nnode03 mac=52:54:00:4e:52:03\n", "*.cluster.test,node01,node02 "},
		{"no domain", "node01 mac=52:54:00:4e:52:01 address=10.0.0.11/24 overlays=ssh-host-cert\nnode02 mac=52:54:00:4e:52:02\n", "node01 "},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv := filepath.Join(t.TempDir(), "nodes.txt")
			os.WriteFile(inv, []byte(c.inv), 0o644)
			var lines []string
			for _, args := range [][]string{
				{"identity", "--state", state, "--json", inv, filepath.Join(t.TempDir(), "segs")},
				{"pxe", "--http", "http://10.0.0.1", "--server", "10.0.0.1", "--dhcp-range", "10.0.0.100,10.0.0.200", "--state", state, "--json", img, inv},
			} {
				out, errs, code := nroot(t, nil, args...)
				var doc struct {
					CertAuthority string `json:"cert_authority"`
				}
				if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
					t.Fatalf("nroot %s: exit %d\n%s%s", args[0], code, out, errs)
				}
				lines = append(lines, doc.CertAuthority)
			}
			if lines[0] != lines[1] || !strings.HasPrefix(lines[0], "@cert-authority "+c.pattern+"ssh-ed25519 ") {
				t.Errorf("identity %q, pxe %q, want one line with %q", lines[0], lines[1], c.pattern)
			}
		})
	}
}

// TestImageCreateInterrupted: Ctrl-C during the copy of a large root
// stops nroot within 2 s with status 130, saying it was interrupted,
// and leaves no generation.
func TestImageCreateInterrupted(t *testing.T) {
	root := nodeRoot(t, "a")
	f, err := os.Create(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 30)
	f.Close()
	img := filepath.Join(t.TempDir(), "image")
	cmd := exec.Command(nrootBin, "image", "create", img, root)
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	sent := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(e.String(), "interrupted") {
		t.Fatalf("exit %v, want 130 saying interrupted:\n%s", err, e.String())
	}
	if took > 2*time.Second {
		t.Errorf("stopped %v after Ctrl-C, want within 2 s", took)
	}
	ents, _ := os.ReadDir(filepath.Join(img, "generations"))
	for _, x := range ents {
		t.Errorf("left %s behind", x.Name())
	}
}

// TestUsageSaidOnce: a wrong number of arguments says the usage once.
func TestUsageSaidOnce(t *testing.T) {
	for _, args := range [][]string{{"image", "list"}, {"image", "publish", "x"}, {"fsimage", "a"}} {
		_, errs, code := nroot(t, nil, args...)
		if code != 64 || strings.Count(errs, "usage:") != 1 {
			t.Errorf("nroot %s: exit %d, want 64 saying usage once:\n%s", strings.Join(args, " "), code, errs)
		}
	}
}
