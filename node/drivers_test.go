package node

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"nroot/internal/fsroot"
)

// A kernel's modules as Debian's kernel lays them out: virtio_net needs
// net_failover (drivers/net) and failover (net/core); the other NICs
// are what the small image leaves out.
const testModulesDep = `kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz: kernel/drivers/ptp/ptp.ko.xz kernel/drivers/pps/pps_core.ko.xz
kernel/drivers/net/ethernet/intel/igb/igb.ko.xz: kernel/drivers/net/mdio.ko.xz kernel/drivers/ptp/ptp.ko.xz
kernel/drivers/net/mdio.ko.xz:
kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko.xz: kernel/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko.xz
kernel/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko.xz:
kernel/drivers/net/bonding/bonding.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/block/loop.ko.xz:
kernel/drivers/scsi/virtio_scsi.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz
kernel/drivers/scsi/scsi_mod.ko.xz:
kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz
kernel/drivers/nvme/host/nvme-core.ko.xz:
kernel/fs/nfs/nfs.ko.xz: kernel/net/sunrpc/sunrpc.ko.xz
kernel/fs/nfs/nfsv4.ko.xz: kernel/fs/nfs/nfs.ko.xz kernel/net/sunrpc/sunrpc.ko.xz
kernel/net/sunrpc/sunrpc.ko.xz:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/fs/squashfs/squashfs.ko.xz:
kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/lib/libcrc32c.ko.xz:
kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz
kernel/net/802/stp.ko.xz:
kernel/fs/isofs/isofs.ko.xz:
`

const testModulesBuiltin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\n"

func TestSmallDrivers(t *testing.T) {
	km, err := parseModules([]byte(testModulesDep), []byte(testModulesBuiltin))
	if err != nil {
		t.Fatal(err)
	}
	kernels := map[string]*kernelModules{"6.12.1-amd64": km}
	tests := []struct {
		name        string
		named       []string
		wantDrivers []string // all of these in drivers
		notDrivers  []string // none of these
		wantOmit    []string // exactly this omit list
		wantErr     string
	}{
		{"virtio by default", nil,
			[]string{"virtio_net", "virtio_blk", "virtio_scsi", "virtio_pci", "virtio_console", "nfs", "nfsv4", "overlay", "squashfs", "erofs", "loop"},
			[]string{"e1000e", "virtio_rng", "nfsv3", "af_packet"}, // absent from this kernel: skipped
			[]string{"bonding", "bridge", "e1000e", "igb", "isofs", "mdio", "mlx5_core", "mlxfw"}, ""},
		{"named NIC and its drivers/net dependency kept", []string{"igb", "nvme"},
			[]string{"igb", "nvme", "nfs", "overlay", "loop"},
			[]string{"virtio_net", "virtio_blk"},
			[]string{"bonding", "bridge", "e1000e", "isofs", "mlx5_core", "mlxfw", "net_failover", "scsi_mod", "virtio_net", "virtio_scsi"}, ""},
		{"named bridge kept", []string{"virtio_net", "bridge"},
			[]string{"virtio_net", "bridge"}, nil,
			[]string{"bonding", "e1000e", "igb", "isofs", "mdio", "mlx5_core", "mlxfw", "scsi_mod", "virtio_scsi"}, ""},
		{"dash spelling", []string{"nvme-core"}, []string{"nvme_core"}, nil,
			[]string{"bonding", "bridge", "e1000e", "igb", "isofs", "mdio", "mlx5_core", "mlxfw", "net_failover", "scsi_mod", "virtio_net", "virtio_scsi"}, ""},
		{"unknown module", []string{"e1000x"}, nil, nil, nil, "--drivers e1000x: kernel 6.12.1-amd64 has no such module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drivers, omit, err := smallDrivers(kernels, tt.named)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range tt.wantDrivers {
				if !slices.Contains(drivers, d) {
					t.Errorf("drivers %v lack %s", drivers, d)
				}
			}
			for _, d := range tt.notDrivers {
				if slices.Contains(drivers, d) {
					t.Errorf("drivers %v have %s", drivers, d)
				}
			}
			if !slices.Equal(omit, tt.wantOmit) {
				t.Errorf("omit = %v, want %v", omit, tt.wantOmit)
			}
			for _, d := range drivers {
				if slices.Contains(omit, d) {
					t.Errorf("%s both included and omitted", d)
				}
			}
			conf := driversConfText(smallConfig{Drivers: drivers, Omit: omit})
			if !strings.Contains(conf, `drivers+=" `+strings.Join(drivers, " ")+` "`) {
				t.Errorf("conf lacks the drivers line:\n%s", conf)
			}
			if len(omit) > 0 && !strings.Contains(conf, "omit_drivers+=\" "+omit[0]) {
				t.Errorf("conf lacks the omit line:\n%s", conf)
			}
		})
	}
}

func TestCheckInitrdOptions(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"default", Options{}, ""},
		{"full", Options{Initrd: "full"}, ""},
		{"small virtio", Options{Initrd: "small"}, ""},
		{"small named", Options{Initrd: "small", Drivers: []string{"e1000e", "mlx5_core", "nvme-core"}}, ""},
		{"unknown mode", Options{Initrd: "tiny"}, `--initrd "tiny": one of full, small`},
		{"drivers without small", Options{Drivers: []string{"igb"}}, "add --initrd=small"},
		{"quote", Options{Initrd: "small", Drivers: []string{`igb" add_dracutmodules+="x`}}, "not a kernel module name"},
		{"newline", Options{Initrd: "small", Drivers: []string{"igb\nomit_drivers=x"}}, "not a kernel module name"},
		{"path", Options{Initrd: "small", Drivers: []string{"../../x"}}, "not a kernel module name"},
		{"empty", Options{Initrd: "small", Drivers: []string{""}}, "not a kernel module name"},
		{"too long", Options{Initrd: "small", Drivers: []string{strings.Repeat("a", 65)}}, "not a kernel module name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckInitrdOptions(tt.o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestChoicesReplayInitrd(t *testing.T) {
	c := Choices{Initrd: InitrdSmall, Drivers: []string{"igb"}}
	if o := c.Apply(Options{}); o.Initrd != InitrdSmall || !slices.Equal(o.Drivers, []string{"igb"}) {
		t.Errorf("replay: %q %v", o.Initrd, o.Drivers)
	}
	if o := c.Apply(Options{Initrd: InitrdFull}); o.Initrd != InitrdFull || o.Drivers != nil {
		t.Errorf("back to full: %q %v", o.Initrd, o.Drivers)
	}
	if err := CheckInitrdOptions(c.Apply(Options{Initrd: InitrdFull})); err != nil {
		t.Error(err)
	}
}

func FuzzParseModules(f *testing.F) {
	f.Add([]byte(testModulesDep), []byte(testModulesBuiltin))
	f.Add([]byte(":\n::\nkernel/x.ko:   \n"), []byte("\n\n"))
	f.Fuzz(func(t *testing.T, dep, builtin []byte) {
		km, err := parseModules(dep, builtin)
		if err != nil {
			return
		}
		for n := range km.path {
			if strings.Contains(n, "-") {
				t.Fatalf("name %q not normalized", n)
			}
		}
	})
}

func TestKernelInstall(t *testing.T) {
	apt := []string{"apt-get", "install", "linux-image-amd64"}
	tests := []struct {
		initrd string
		want   []string
	}{
		{"", apt},
		{InitrdFull, apt},
		{InitrdSmall, append([]string{"env", "INITRD=No"}, apt...)},
	}
	for _, tt := range tests {
		if got := kernelInstall(Options{Initrd: tt.initrd}, apt); !slices.Equal(got, tt.want) {
			t.Errorf("%q: %v, want %v", tt.initrd, got, tt.want)
		}
	}
}

// bootModuleDeps are the dracut modules that those nroot adds depend on
// (dracut 106's depends(): dmsquash-live on dm, rootfs-block, img-lib
// and overlayfs; livenet on url-lib, img-lib and bash; network-legacy on
// net-lib and kernel-network-modules; dracut-systemd on systemd-initrd
// and systemd-ask-password, and so on): omitting one would drop a boot
// mode's module with it.
var bootModuleDeps = []string{
	"dm", "rootfs-block", "fs-lib", "img-lib", "overlayfs", "url-lib", "bash", "net-lib", "kernel-network-modules",
	"kernel-modules", "udev-rules", "systemd", "systemd-initrd", "systemd-udevd", "systemd-journald", "systemd-tmpfiles",
	"systemd-sysctl", "systemd-modules-load", "systemd-ask-password", "dracut-systemd", "shutdown", "shell-interpreter",
}

// TestSmallKeepsBootModules checks that the small image's configuration
// omits none of the dracut modules a boot mode needs, for every network
// handler and overlay module nroot chooses; the shell-init image none
// but systemd's.
func TestSmallKeepsBootModules(t *testing.T) {
	tests := []struct {
		name string
		d    Dracut
	}{
		{"network-legacy with Debian's overlay-root", Dracut{NetworkHandler: "network-legacy", OverlayModule: "overlay-root"}},
		{"systemd-networkd with dracut-ng's overlayfs", Dracut{NetworkHandler: "systemd-networkd", OverlayModule: "overlayfs"}},
		{"network-manager with overlayfs", Dracut{NetworkHandler: "network-manager", OverlayModule: "overlayfs"}},
	}
	addLine := regexp.MustCompile(`(?m)^add_dracutmodules\+=" ([^"]*) "$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var added []string
			for _, m := range addLine.FindAllStringSubmatch(dracutConfText(tt.d), -1) {
				added = append(added, strings.Fields(m[1])...)
			}
			if len(added) < 8 {
				t.Fatalf("90-nroot.conf adds only %v", added)
			}
			for _, m := range append(added, bootModuleDeps...) {
				if slices.Contains(smallOmitModules, m) {
					t.Errorf("the small image omits %s, which a boot needs", m)
				}
				// Under dracut's shell /init, systemd's modules go.
				if shellInit(tt.d) && !strings.Contains(m, "systemd") && slices.Contains(shellInitModules, m) {
					t.Errorf("the shell-init image omits %s, which a boot needs", m)
				}
			}
		})
	}
}

// TestDriversConfText checks the small image's dracut.conf.d file: fsck
// off, xz with the x86 filter on x86 alone, and systemd left out for
// dracut's shell /init only when asked (the network-legacy handler).
func TestDriversConfText(t *testing.T) {
	omitLine := regexp.MustCompile(`(?m)^omit_dracutmodules\+=" ([^"]*) "$`)
	tests := []struct {
		name     string
		c        smallConfig
		compress string
		shell    bool
	}{
		{"amd64 with network-legacy", smallConfig{Drivers: []string{"virtio_net"}, ShellInit: true, X86: true}, "xz --check=crc32 --x86 --lzma2=preset=9 -T0", true},
		{"arm64 with network-legacy", smallConfig{Drivers: []string{"virtio_net"}, ShellInit: true}, "xz --check=crc32 --lzma2=preset=9 -T0", true},
		{"amd64 with systemd-networkd keeps systemd", smallConfig{Drivers: []string{"virtio_net"}, X86: true}, "xz --check=crc32 --x86 --lzma2=preset=9 -T0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := driversConfText(tt.c)
			for _, want := range []string{"nofscks=\"yes\"\n", "compress=\"" + tt.compress + "\"\n", "omit_dracutmodules+=\" hwdb nvdimm ", "drivers+=\" virtio_net \"\n"} {
				if !strings.Contains(conf, want) {
					t.Errorf("91-nroot-small.conf lacks %q:\n%s", want, conf)
				}
			}
			var omitted []string
			for _, m := range omitLine.FindAllStringSubmatch(conf, -1) {
				omitted = append(omitted, strings.Fields(m[1])...)
			}
			for _, m := range []string{"systemd", "systemd-initrd", "dracut-systemd", "systemd-udevd"} {
				if got := slices.Contains(omitted, m); got != tt.shell {
					t.Errorf("omits %s: %v, want %v", m, got, tt.shell)
				}
			}
			for _, m := range []string{"base", "udev-rules", "network-legacy", "nfs", "livenet", "dmsquash-live", "overlay-root", "nroot-identity"} {
				if slices.Contains(omitted, m) {
					t.Errorf("omits %s, which the shell init's boot needs", m)
				}
			}
		})
	}
}

func TestShellInit(t *testing.T) {
	for h, want := range map[string]bool{"network-legacy": true, "systemd-networkd": false, "network-manager": false} {
		if got := shellInit(Dracut{NetworkHandler: h}); got != want {
			t.Errorf("%s: %v, want %v", h, got, want)
		}
	}
}

func TestNodePackages(t *testing.T) {
	tests := []struct {
		o         Options
		wantZstd  bool
		wantExtra []string
	}{
		{Options{}, true, nil},
		{Options{Initrd: InitrdFull, Packages: []string{"hello"}}, true, []string{"hello"}},
		{Options{Initrd: InitrdSmall, Packages: []string{"hello"}}, false, []string{"hello", "xz-utils"}},
	}
	for _, tt := range tests {
		base, extra := nodePackages(tt.o)
		if got := slices.Contains(base, "zstd"); got != tt.wantZstd {
			t.Errorf("%q: zstd in %v: %v, want %v", tt.o.Initrd, base, got, tt.wantZstd)
		}
		if !slices.Contains(base, "dracut") || !slices.Equal(extra, tt.wantExtra) {
			t.Errorf("%q: base %v extra %v, want extra %v", tt.o.Initrd, base, extra, tt.wantExtra)
		}
	}
}

// TestDecodesX86: the x86 filter only for kernels whose config builds
// its decoder in.
func TestDecodesX86(t *testing.T) {
	for _, tt := range []struct {
		name    string
		configs map[string]string // kernel: boot/config-K ("" none)
		want    bool
	}{
		{"Debian's kernel", map[string]string{"6.12.1-amd64": "CONFIG_RD_XZ=y\nCONFIG_XZ_DEC_X86=y\n"}, true},
		{"a kernel without the filter", map[string]string{"6.12.1-custom": "CONFIG_RD_XZ=y\n# CONFIG_XZ_DEC_X86 is not set\n"}, false},
		{"a kernel without its config", map[string]string{"6.12.1-custom": ""}, false},
		{"two kernels, one without", map[string]string{"6.12.1-amd64": "CONFIG_XZ_DEC_X86=y\n", "6.12.2-custom": "CONFIG_XZ_DEC_X86=m\n"}, false},
		{"no kernel yet", map[string]string{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var kvers []string
			for k, c := range tt.configs {
				kvers = append(kvers, k)
				if c != "" {
					os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
					if err := os.WriteFile(filepath.Join(dir, "boot", "config-"+k), []byte(c), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			img, err := fsroot.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if got := decodesX86(img, kvers); got != tt.want {
				t.Errorf("decodesX86 = %v, want %v", got, tt.want)
			}
		})
	}
}
