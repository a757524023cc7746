package node

import (
	"regexp"
	"slices"
	"strings"
	"testing"
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
			[]string{"bonding", "e1000e", "igb", "mdio", "mlx5_core", "mlxfw"}, ""},
		{"named NIC and its drivers/net dependency kept", []string{"igb", "nvme"},
			[]string{"igb", "nvme", "nfs", "overlay", "loop"},
			[]string{"virtio_net", "virtio_blk"},
			[]string{"bonding", "e1000e", "mlx5_core", "mlxfw", "net_failover", "scsi_mod", "virtio_net", "virtio_scsi"}, ""},
		{"dash spelling", []string{"nvme-core"}, []string{"nvme_core"}, nil,
			[]string{"bonding", "e1000e", "igb", "mdio", "mlx5_core", "mlxfw", "net_failover", "scsi_mod", "virtio_net", "virtio_scsi"}, ""},
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
			conf := driversConfText(drivers, omit)
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
// handler and overlay module nroot chooses, and that it turns off fsck
// and compresses harder.
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
			}
		})
	}
	conf := driversConfText([]string{"virtio_net"}, nil)
	for _, want := range []string{"nofscks=\"yes\"\n", "compress=\"xz --check=crc32 --lzma2=preset=9 -T0\"\n", "omit_dracutmodules+=\" hwdb nvdimm "} {
		if !strings.Contains(conf, want) {
			t.Errorf("91-nroot-small.conf lacks %q:\n%s", want, conf)
		}
	}
}
