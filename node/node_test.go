package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if strings.HasPrefix(c, "->") {
			os.Symlink(strings.TrimPrefix(c, "->"), full)
		} else if strings.HasSuffix(p, "/") {
			os.MkdirAll(full, 0o755)
		} else {
			os.WriteFile(full, []byte(c), 0o644)
		}
	}
	return root
}

func TestDetectDracut(t *testing.T) {
	status := func(v string) string {
		return "Package: dracut-core\nStatus: install ok installed\nVersion: " + v + "\nArchitecture: amd64\n"
	}
	tests := []struct {
		name    string
		version string
		modules []string
		bins    []string
		handler string
		overlay string
		param   string
		wantErr string
	}{
		{"bookworm", "059-4", []string{"35network-legacy", "01systemd-networkd", "90overlay-root", "90overlayfs", "95nfs"}, []string{"usr/sbin/dhclient", "usr/lib/systemd/systemd-networkd"}, "network-legacy", "overlay-root", "rootovl", ""},
		{"dracut-ng 106 without Debian's module", "106-1", []string{"01systemd-networkd", "90overlayfs", "95nfs"}, []string{"usr/lib/systemd/systemd-networkd"}, "systemd-networkd", "overlayfs", "rd.live.overlay.overlayfs=1", ""},
		{"dracut-ng 110", "110-2", []string{"01systemd-networkd", "90overlayfs", "95nfs"}, []string{"usr/lib/systemd/systemd-networkd"}, "systemd-networkd", "overlayfs", "rd.overlay", ""},
		{"no network handler", "059-4", []string{"90overlay-root", "95nfs"}, nil, "", "", "", "no usable network module"},
		{"no overlay", "059-4", []string{"35network-legacy", "95nfs"}, []string{"usr/sbin/dhclient"}, "", "", "", "cannot be made writable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"var/lib/dpkg/status": status(tt.version)}
			for _, m := range tt.modules {
				files["usr/lib/dracut/modules.d/"+m+"/module-setup.sh"] = "#!/bin/bash\n"
			}
			for _, b := range tt.bins {
				files[b] = "bin"
			}
			d, err := detectDracut(fixture(t, files))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.NetworkHandler != tt.handler || d.OverlayModule != tt.overlay || d.OverlayParam != tt.param {
				t.Fatalf("got %+v", d)
			}
			if c := Cmdline(d); !strings.HasSuffix(c, " "+tt.param) || !strings.HasPrefix(c, "root=nfs4:SERVER:/PATH ") {
				t.Fatalf("cmdline %q", c)
			}
		})
	}
}

func TestChecks(t *testing.T) {
	bad := fixture(t, map[string]string{
		"etc/machine-id":                   "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":                     "node1\n",
		"etc/fstab":                        "/dev/sda1 / ext4 defaults 0 1\n",
		"etc/ssh/ssh_host_ed25519_key":     "key",
		"usr/lib/systemd/systemd-networkd": "bin",
	})
	failed := map[string]bool{}
	for _, c := range Checks(bad) {
		if !c.Pass {
			failed[c.Name] = true
		}
	}
	for _, want := range []string{"kernel", "cmdline", "machine-id", "dbus-machine-id", "ssh-host-keys", "hostname", "fstab-root", "tmp-writable", "networkd-masked"} {
		if !failed[want] {
			t.Errorf("check %s passed on a bad image", want)
		}
	}
	// writeIdentity fixes everything it owns.
	if err := writeIdentity(bad, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks(bad) {
		switch c.Name {
		case "machine-id", "dbus-machine-id", "ssh-host-keys", "hostname", "fstab-root", "tmp-writable", "networkd-masked":
			if !c.Pass {
				t.Errorf("after writeIdentity, %s: %s", c.Name, c.Reason)
			}
		}
	}
	fstab, _ := os.ReadFile(filepath.Join(bad, "etc/fstab"))
	if !strings.Contains(string(fstab), "# disabled by nroot node") {
		t.Errorf("fstab: %s", fstab)
	}
}

func TestBuildRefusesWhatIsNotARoot(t *testing.T) {
	_, err := Build(context.Background(), t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "nroot bootstrap") {
		t.Fatalf("err = %v", err)
	}
	root := fixture(t, map[string]string{"var/lib/dpkg/status": "", "lib/modules/6.1.0-9-amd64/": ""})
	if _, err := Kernels(root); err == nil || !strings.Contains(err.Error(), "--kernel") {
		t.Fatalf("Kernels err = %v", err)
	}
}

func TestExport(t *testing.T) {
	root := fixture(t, map[string]string{
		"boot/nroot-cmdline":         "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1 rootovl\n",
		"boot/vmlinuz-6.1.0-9-amd64": "k",
		"lib/modules/6.1.0-9-amd64/": "",
	})
	c, err := Export(root, ExportOptions{Server: "10.0.0.1", Path: "/node"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cmdline != "root=nfs4:10.0.0.1:/node ro ip=dhcp rd.neednet=1 rootovl" {
		t.Errorf("cmdline %q", c.Cmdline)
	}
	for _, want := range []string{"ro,", "no_root_squash", "no_subtree_check"} {
		if !strings.Contains(c.Exports, want) {
			t.Errorf("exports line %q lacks %s", c.Exports, want)
		}
	}
	for _, s := range []string{c.IPXE, c.GRUB, c.PXELinux} {
		if !strings.Contains(s, "vmlinuz-6.1.0-9-amd64") || !strings.Contains(s, "initrd.img-6.1.0-9-amd64") || !strings.Contains(s, c.Cmdline) {
			t.Errorf("boot entry %q", s)
		}
	}
	if !strings.Contains(c.Ganesha, "Pseudo = /node;") || !strings.Contains(c.Ganesha, "Squash = No_Root_Squash;") {
		t.Errorf("ganesha block %q", c.Ganesha)
	}
	if _, err := Export(t.TempDir(), ExportOptions{}); err == nil || !strings.Contains(err.Error(), "run nroot node") {
		t.Errorf("export of an image without a command line: %v", err)
	}
}
