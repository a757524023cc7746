//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"nroot/format/report"
	"nroot/internal/fetch"
	"nroot/node"
)

func newNodeCmd(g *globals) *cobra.Command {
	var o node.Options
	var pwFile string
	var sshKeys []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "node ROOT",
		Short: "Turn a root filesystem into a diskless node image",
		Long: `Node makes ROOT a diskless node, inside the image with systemd-nspawn and
never on the host. It first asks apt, changing nothing, whether it can
install what a node needs: dracut and dracut-network, an init (systemd-sysv)
and udev, which a minbase image lacks, nfs-common, dbus, zstd, dracut's
DHCP client (isc-dhcp-client) where the release has it, and the kernel; an
image that cannot get them is refused as it is, with apt's complaint. snapd
and cloud-init are removed and pinned out.

It writes /etc/dracut.conf.d/90-nroot.conf for a generic (not host-only),
zstd-compressed initramfs with the base, network, nfs and overlay modules
and one network handler: network-legacy (dhclient) where dracut has it, else
systemd-networkd, else network-manager. The kernel's postinst then builds it
for each installed kernel (or --kver), and each is checked as nroot initrd
verify --nfs --overlay does.

--initrd=small builds an initramfs with the drivers nodes need alone: the
modules --drivers names (default the virtio ones QEMU and KVM give), their
dependencies, and NFS, overlay, squashfs, erofs and loop; every other NIC,
storage, input, USB, filesystem and crypto driver is left out. It also
omits the dracut modules a diskless boot does not use (udev's hwdb, resume,
usrmount, modsign, the TPM and battery checks, LUN masking, virtiofs, QEMU's,
and the disk, RAID, LVM, encryption, network-storage, console, splash and
rescue ones), and the bridge, ISO 9660, NFSv2, pNFS layout and Kerberos
modules; skips the fsck programs (nofscks), and compresses with xz -9, after
xz's x86 filter on amd64 and i386 when the kernel's config builds its
decoder in (CONFIG_XZ_DEC_X86=y, as Debian's and Ubuntu's do), installing
xz-utils for dracut, and not zstd, whose program dracut would add. With the network-legacy handler it
leaves systemd out: the image boots with dracut's own shell /init, which
runs the same hooks (NFS, livenet, the overlay, the node's identity). A
trixie node's is 14.9 MB instead of 56 MB. --initrd=full (the default) goes
back to the generic image, with systemd. nroot image update keeps the
choice.

It works out the kernel command line for the image's dracut: rootovl where
Debian's overlay-root module exists (bookworm's 059, trixie's 106, Ubuntu's),
otherwise dracut-ng's overlayfs module with rd.live.overlay.overlayfs=1
(before 110) or rd.overlay (110 and later), plus nfsv4.directory_delegations=0
for kernels that have that parameter. The line goes to ROOT/boot/nroot-cmdline,
with SERVER and /PATH for nroot export to fill in.

Then it makes the image shareable: /etc/machine-id uninitialized with
/var/lib/dbus/machine-id a link to it, no SSH host keys (a unit makes them at
boot when openssh-server is installed), no /etc/hostname unless --hostname,
no root entry in /etc/fstab, tmpfs /tmp and /var/tmp, systemd-networkd masked
(it would reconfigure the root's interface) and units that need a cloud
datasource masked.

A failure after the image began to change says what state dpkg --audit
finds and how to recover.`,
		Example: `  nroot node ./node
  nroot node --root-password-file pw.txt --ssh-key ~/.ssh/id_ed25519.pub --packages=openssh-server ./node
  nroot node check ./node`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := node.CheckInitrdOptions(o); err != nil {
				return usageErr("%v", err)
			}
			if pwFile != "" {
				b, err := os.ReadFile(pwFile)
				if err != nil {
					return fmt.Errorf("--root-password-file: %w", err)
				}
				o.RootPassword = strings.TrimRight(string(b), "\r\n")
			}
			for _, k := range sshKeys {
				b, err := os.ReadFile(k)
				if err != nil {
					return fmt.Errorf("--ssh-key: %w", err)
				}
				o.SSHKeys = append(o.SSHKeys, strings.TrimSpace(string(b)))
			}
			dir := g.cacheDir
			if dir == "" {
				dir = fetch.DefaultCacheDir()
			}
			o.CacheDir = filepath.Join(dir, "apt-archives")
			o.Log = g.logger()
			res, err := node.Build(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(res)
			}
			for _, k := range res.Kernels {
				fmt.Printf("kernel %s: %s, %s\n", k.Version, k.Vmlinuz, k.Initrd)
			}
			fmt.Printf("dracut %s: network %s, overlay %s\n", res.Dracut.Version, res.Dracut.NetworkHandler, res.Dracut.OverlayModule)
			fmt.Println(res.Cmdline)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Kernel, "kernel", "", "kernel package (default linux-image-ARCH, Ubuntu's linux-image-virtual)")
	cmd.Flags().StringVar(&o.RootPassword, "root-password", "", "set root's password (visible in the process list; prefer --root-password-file)")
	cmd.Flags().StringVar(&pwFile, "root-password-file", "", "read root's password from this file")
	cmd.Flags().StringArrayVar(&sshKeys, "ssh-key", nil, "public key file to authorize for root; repeatable")
	cmd.Flags().StringSliceVar(&o.Packages, "packages", nil, "extra packages to install, comma-separated")
	cmd.Flags().StringVar(&o.Kver, "kver", "", "build the initramfs for this installed kernel only")
	cmd.Flags().StringVar(&o.Hostname, "hostname", "", "write /etc/hostname (every node shares it)")
	cmd.Flags().BoolVar(&o.E2EProbe, "e2e-probe", false, "install a unit that waits for the boot to end and reports its state (is-system-running), failed units, the kernel, the root's type and a write test on the console, then powers off")
	cmd.Flags().MarkHidden("e2e-probe") // for the end-to-end tests
	cmd.Flags().StringVar(&o.Initrd, "initrd", "", "initramfs: full (default: every driver dracut ships) or small (--drivers, virtio when none, and NFS, overlay, squashfs, erofs, loop)")
	cmd.Flags().StringSliceVar(&o.Drivers, "drivers", nil, "the small initramfs's NIC and storage kernel modules, comma-separated (default the virtio ones)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(newNodeCheckCmd())
	return cmd
}

func newNodeCheckCmd() *cobra.Command {
	var asJSON bool
	var junit string
	cmd := &cobra.Command{
		Use:   "check ROOT",
		Short: "Report whether an image is a bootable, shareable node, PASS/FAIL per check",
		Long: `Check reads ROOT, every path resolved inside it, and reports PASS or FAIL for
each thing a shared diskless node needs: a kernel with a verified NFS and
overlay initramfs, the command line, an uninitialized machine-id, no SSH host
keys, no fixed hostname, no root entry in fstab, tmpfs /tmp and /var/tmp,
systemd-networkd and cloud units masked, no snapd or cloud-init. A directory
that is no Debian or Ubuntu root fails at once. Exit status 1 when a check
fails.`,
		Example: `  nroot node check ./node --json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			checks := node.Checks(args[0])
			if junit != "" {
				if err := report.WriteJUnit(junit, "node check "+args[0], checks); err != nil {
					return err
				}
			}
			return reportChecks(args[0], "root", checks, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the checks to this file as JUnit XML (one testcase a check), pass or fail")
	return cmd
}
