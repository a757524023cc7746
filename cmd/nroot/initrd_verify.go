package main

import (
	"fmt"

	"nroot/format/report"
	"nroot/node/dracut"

	"github.com/spf13/cobra"
)

func newInitrdVerifyCmd() *cobra.Command {
	var o dracut.Options
	var asJSON bool
	var junit string
	var modes []string
	cmd := &cobra.Command{
		Use:   "verify IMAGE [--mode tree|nfs-image|http-image|all] [--nfs] [--overlay] [--kver K] [--rootfs DIR]",
		Short: "Check, without booting, that an image can do what a node needs",
		Long: `Verify runs named checks, each PASS or FAIL with its reason: /init is an
executable; a systemd /init has initrd.target and dracut-systemd's units that
run the hooks (init-systemd: without them systemd never mounts the root), and
dracut's shell /init (an image built without systemd) its interpreter,
switch_root, dracut-lib.sh, udevd and udevadm, and no systemd-networkd
(init-shell); dracut's base, network (with a handler) and, with --nfs, nfs
modules with mount.nfs, nfs-lib.sh and their hooks; the kernel modules
sunrpc, nfs, nfsv3/nfsv4 and, with --overlay, overlay are present and
consistent with modules.dep; every executable's DT_NEEDED libraries resolve
inside the image; with --rootfs, the kernel is installed there; with
--overlay, the overlay hook this dracut flavour runs is present.

--mode names a boot mode and turns on its checks: tree (--nfs --overlay: the
root is the exported tree), nfs-image (root=live:nfs4:SERVER:/FILE: dracut's
dmsquash-live and livenet, losetup, url-lib.sh, NFS, and the loop, squashfs
or --image-format=erofs, and overlay modules), http-image (root=live:http://
...: the same without NFS, with curl). Repeat it, or give all.
Exit status 0 only if every check passes.`,
		Example: `  nroot initrd verify --nfs --overlay /srv/node/boot/initrd.img-6.12.48+deb13-amd64
  nroot initrd verify --mode all /srv/node/boot/initrd.img-6.12.48+deb13-amd64
  nroot initrd verify --nfs --overlay --rootfs /srv/node --json IMAGE`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, m := range modes {
				if err := o.SetMode(m); err != nil {
					return usageErr("%v", err)
				}
			}
			if o.ImageFormat != "squashfs" && o.ImageFormat != "erofs" {
				return usageErr("--image-format %q: squashfs or erofs", o.ImageFormat)
			}
			f, err := openImage(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			checks, _, err := dracut.Verify(f, o)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if junit != "" {
				if err := report.WriteJUnit(junit, "initrd verify "+args[0], checks); err != nil {
					return err
				}
			}
			return reportChecks(args[0], "image", checks, asJSON)
		},
	}
	cmd.Flags().BoolVar(&o.NFS, "nfs", false, "the image must mount an NFS root")
	cmd.Flags().BoolVar(&o.Overlay, "overlay", false, "the image must put a writable overlay over the root")
	cmd.Flags().StringVar(&o.Kver, "kver", "", "kernel version to check (default: the image's)")
	cmd.Flags().StringVar(&o.Rootfs, "rootfs", "", "root filesystem whose installed kernel the image must match")
	cmd.Flags().StringSliceVar(&modes, "mode", nil, "boot mode whose checks to run: tree, nfs-image, http-image or all (repeatable)")
	cmd.Flags().StringVar(&o.ImageFormat, "image-format", "squashfs", "the image file's format in the image modes: squashfs or erofs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&junit, "junit", "", "also write the checks to this file as JUnit XML (one testcase a check), pass or fail")
	return cmd
}
