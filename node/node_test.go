package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/e2e/testenv"
	"nroot/internal/fsroot"
)

func fixture(t *testing.T, files map[string]string) string { return testenv.Tree(t, files) }

// open opens a fixture as the node code opens an image.
func open(t *testing.T, dir string) *fsroot.Root {
	t.Helper()
	r, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
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
		{"bookworm", "059-4", []string{"35network-legacy", "01systemd-networkd", "90overlay-root", "90overlayfs", "95nfs"}, []string{"usr/sbin/dhclient", "usr/bin/ip", "usr/bin/pgrep", "usr/bin/arping", "usr/lib/systemd/systemd-networkd"}, "network-legacy", "overlay-root", "rootovl", ""},
		// minbase: dhclient but no procps, so dracut's network-legacy
		// would refuse itself; networkd is what it would take.
		{"bookworm minbase without pgrep", "059-4", []string{"35network-legacy", "01systemd-networkd", "90overlay-root", "95nfs"}, []string{"usr/sbin/dhclient", "usr/bin/ip", "usr/bin/arping", "usr/lib/systemd/systemd-networkd"}, "systemd-networkd", "overlay-root", "rootovl", ""},
		{"dracut-ng 106 without Debian's module", "106-1", []string{"01systemd-networkd", "90overlayfs", "95nfs"}, []string{"usr/lib/systemd/systemd-networkd"}, "systemd-networkd", "overlayfs", "rd.live.overlay.overlayfs=1", ""},
		{"dracut-ng 110", "110-2", []string{"01systemd-networkd", "90overlayfs", "95nfs"}, []string{"usr/lib/systemd/systemd-networkd"}, "systemd-networkd", "overlayfs", "rd.overlay", ""},
		{"no network handler", "059-4", []string{"90overlay-root", "95nfs"}, nil, "", "", "", "no usable network module"},
		{"no overlay", "059-4", []string{"35network-legacy", "95nfs"}, []string{"usr/sbin/dhclient", "usr/bin/ip", "usr/bin/pgrep", "usr/bin/arping"}, "", "", "", "cannot be made writable"},
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
			d, err := detectDracut(open(t, fixture(t, files)))
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
		"etc/machine-id":                                "0123456789abcdef0123456789abcdef\n",
		"etc/hostname":                                  "node1\n",
		"etc/fstab":                                     "/dev/sda1 / ext4 defaults 0 1\n",
		"etc/ssh/ssh_host_ed25519_key":                  "key",
		"usr/lib/systemd/systemd-networkd":              "bin",
		"usr/lib/systemd/system/ua-auto-attach.service": "[Unit]\n",
		"var/lib/dpkg/status":                           "Package: snapd\nStatus: install ok installed\n",
	})
	failed := map[string]bool{}
	for _, c := range Checks(bad) {
		if !c.Passed() {
			failed[c.Name] = true
		}
	}
	for _, want := range []string{"kernel", "cmdline", "machine-id", "dbus-machine-id", "ssh-host-keys", "hostname", "fstab-root", "tmp-writable", "networkd-masked", "cloud-units-masked", "no-snapd-cloud-init"} {
		if !failed[want] {
			t.Errorf("check %s passed on a bad image", want)
		}
	}
	// writeIdentity fixes everything it owns.
	if err := writeIdentity(open(t, bad), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks(bad) {
		switch c.Name {
		case "machine-id", "dbus-machine-id", "ssh-host-keys", "hostname", "fstab-root", "tmp-writable", "networkd-masked", "cloud-units-masked":
			if !c.Passed() {
				t.Errorf("after writeIdentity, %s: %s", c.Name, c.Detail)
			}
		}
	}
	fstab, _ := os.ReadFile(filepath.Join(bad, "etc/fstab"))
	if !strings.Contains(string(fstab), "# disabled by nroot node") {
		t.Errorf("fstab: %s", fstab)
	}
}

// TestChecksReadsWhatWasNotVerified: the node stage verifies each
// initramfs it builds and its closing checks do not read those again;
// every other kernel's still is.
func TestChecksReadsWhatWasNotVerified(t *testing.T) {
	root := fixture(t, map[string]string{
		"var/lib/dpkg/status":            "Package: base-files\nStatus: install ok installed\n",
		"boot/vmlinuz-6.1.0-9-amd64":     "kernel",
		"boot/initrd.img-6.1.0-9-amd64":  "no initramfs",
		"lib/modules/6.1.0-9-amd64/x":    "",
		"boot/vmlinuz-6.1.0-10-amd64":    "kernel",
		"boot/initrd.img-6.1.0-10-amd64": "no initramfs either",
		"lib/modules/6.1.0-10-amd64/x":   "",
	})
	tests := []struct {
		name     string
		verified []string
		failed   int
	}{
		{"nothing verified: both images are read and fail", nil, 2},
		{"the newest verified: the older is read and fails", []string{"6.1.0-10-amd64"}, 1},
		{"both verified", []string{"6.1.0-9-amd64", "6.1.0-10-amd64"}, 0},
		{"a kernel that is not installed changes nothing", []string{"6.1.0-11-amd64"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failed := 0
			for _, c := range checks(open(t, root), tt.verified...) {
				if c.Name == "initrd" && !c.Passed() {
					failed++
				}
			}
			if failed != tt.failed {
				t.Errorf("%d initrd checks failed, want %d", failed, tt.failed)
			}
		})
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

// TestNFSClientParams: the image's nfsv4 module (kernels from 6.19 ask
// for directory delegations, which older nfs-ganesha refuses) decides
// whether the command line turns them off. The modules are ELF objects
// with the .modinfo fields of Debian's 7.2 and 6.12 nfsv4 modules, found
// through modules.dep, plain or xz-compressed; a built-in nfsv4 is found
// in modules.builtin.modinfo.
func TestNFSClientParams(t *testing.T) {
	dir := t.TempDir()
	const k = "9.9.9-test"
	mods := filepath.Join(dir, "usr/lib/modules", k)
	os.MkdirAll(filepath.Join(mods, "kernel/fs/nfs"), 0o755)
	// A module file: an ELF object with the .modinfo section a kernel
	// build writes, made by the host's assembler.
	testenv.Command(t, "as")
	obj := func(name, modinfo string) {
		src := filepath.Join(dir, name+".s")
		os.WriteFile(src, []byte(".section .modinfo,\"a\"\n.ascii \""+strings.ReplaceAll(modinfo, "\x00", "\\0")+"\"\n"), 0o644)
		if out, err := exec.Command("as", "-o", filepath.Join(mods, "kernel/fs/nfs", name), src).CombinedOutput(); err != nil {
			t.Fatalf("as: %v\n%s", err, out)
		}
	}
	tests := []struct {
		name, modinfo, builtin string
		want                   []string
	}{
		{"kernel 7 module", "license=GPL\x00parm=directory_delegations:Enable the use of directory delegations\x00parmtype=directory_delegations:bool\x00parmtype=delegation_watermark:uint\x00", "", []string{"nfsv4.directory_delegations=0"}},
		{"kernel 6.12 module", "license=GPL\x00parmtype=delegation_watermark:uint\x00", "", nil},
		{"built in", "license=GPL\x00", "nfsv4.parmtype=directory_delegations:bool\x00", []string{"nfsv4.directory_delegations=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj("nfsv4.ko", tt.modinfo)
			os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/fs/nfs/nfs.ko:\nkernel/fs/nfs/nfsv4.ko: kernel/fs/nfs/nfs.ko\n"), 0o644)
			os.WriteFile(filepath.Join(mods, "modules.builtin.modinfo"), []byte(tt.builtin), 0o644)
			if got := nfsClientParams(open(t, dir), []string{k}); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Compressed as Debian ships modules since trixie.
	testenv.Command(t, "xz")
	obj("nfsv4.ko", "parmtype=directory_delegations:bool\x00")
	if out, err := exec.Command("xz", "--check=crc32", filepath.Join(mods, "kernel/fs/nfs/nfsv4.ko")).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/fs/nfs/nfsv4.ko.xz:\n"), 0o644)
	os.WriteFile(filepath.Join(mods, "modules.builtin.modinfo"), nil, 0o644)
	if got := nfsClientParams(open(t, dir), []string{k}); len(got) != 1 {
		t.Errorf("xz-compressed module: got %q", got)
	}
	if c := Cmdline(Dracut{OverlayParam: "rd.overlay"}, "nfsv4.directory_delegations=0"); c != "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1 rd.overlay nfsv4.directory_delegations=0" {
		t.Errorf("Cmdline = %q", c)
	}
}

func TestSortKernels(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"6.1.0-10-amd64", "6.1.0-9-amd64"}, []string{"6.1.0-9-amd64", "6.1.0-10-amd64"}},
		{[]string{"6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-28-amd64"}, []string{"6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-28-amd64"}},
		{[]string{"6.12.9+deb13-amd64", "6.12.10+deb13-amd64", "6.9.1-amd64"}, []string{"6.9.1-amd64", "6.12.9+deb13-amd64", "6.12.10+deb13-amd64"}},
		{[]string{"6.8.0-100-generic", "6.8.0-45-generic", "5.15.0-119-generic"}, []string{"5.15.0-119-generic", "6.8.0-45-generic", "6.8.0-100-generic"}},
	} {
		got := slices.Clone(c.in)
		SortKernels(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("SortKernels(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// An image with two ABIs of one kernel boots the newer: 6.1.0-10 after
// 6.1.0-9, not before it as their text sorts.
func TestKernelsNewestLast(t *testing.T) {
	root := t.TempDir()
	for _, k := range []string{"6.1.0-9-amd64", "6.1.0-10-amd64"} {
		if err := os.MkdirAll(filepath.Join(root, "lib/modules", k), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "boot/vmlinuz-"+k), []byte("kernel"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Kernels(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"6.1.0-9-amd64", "6.1.0-10-amd64"}; !slices.Equal(got, want) {
		t.Fatalf("Kernels = %v, want %v", got, want)
	}
}

// TestProbeInstallsTwice: image update replays --e2e-probe on a copy
// that has the probe already; installing it again replaces it.
func TestProbeInstallsTwice(t *testing.T) {
	dir := t.TempDir()
	r, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 2; i++ {
		if err := installProbe(r); err != nil {
			t.Fatalf("install %d: %v", i+1, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "etc/systemd/system/multi-user.target.wants/nroot-probe.service")); err != nil || target != "/etc/systemd/system/nroot-probe.service" {
		t.Errorf("the unit's link: %q %v", target, err)
	}
}

// TestChoicesApply: an update replays the recorded choices, a flag given
// again wins, and an upgrade does not keep a recorded --kver.
func TestChoicesApply(t *testing.T) {
	rec := Choices{Kernel: "linux-image-cloud-amd64", Kver: "6.1.0-50-amd64", Hostname: "n", Packages: []string{"a"}, E2EProbe: true}
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{"replayed", Options{}, Options{Kernel: rec.Kernel, Kver: rec.Kver, Hostname: "n", Packages: []string{"a"}, E2EProbe: true}},
		{"a flag wins", Options{Kver: "6.1.0-57-amd64", Hostname: "m", Packages: []string{"b", "a"}}, Options{Kernel: rec.Kernel, Kver: "6.1.0-57-amd64", Hostname: "m", Packages: []string{"a", "b"}, E2EProbe: true}},
		{"an upgrade boots the new ABI", Options{Upgrade: true}, Options{Kernel: rec.Kernel, Hostname: "n", Packages: []string{"a"}, E2EProbe: true, Upgrade: true}},
		{"an upgrade keeps a --kver given again", Options{Upgrade: true, Kver: rec.Kver}, Options{Kernel: rec.Kernel, Kver: rec.Kver, Hostname: "n", Packages: []string{"a"}, E2EProbe: true, Upgrade: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rec.Apply(tt.in)
			if got.Kernel != tt.want.Kernel || got.Kver != tt.want.Kver || got.Hostname != tt.want.Hostname || got.E2EProbe != tt.want.E2EProbe || got.Upgrade != tt.want.Upgrade || !slices.Equal(got.Packages, tt.want.Packages) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
