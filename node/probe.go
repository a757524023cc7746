package node

import "nroot/internal/fsroot"

// probeScript reports, on the console, what the end-to-end test checks:
// the state the boot ended in, the failed units, the running kernel, the
// root's filesystem type, whether / is writable, the machine-id, the
// hostname, the SSH host key and whether a package named on the command
// line is installed, then powers off.
//
// The state is systemctl is-system-running --wait's word: "running" is
// the only one that passes, and anything else (degraded, maintenance,
// systemctl's own error, the wait timing out) is reported as it is, so
// that the test fails closed. The unit is Type=exec: its start job ends
// when the script runs, so the boot's transaction can finish while the
// script waits for it (a oneshot would hold the boot "starting" until the
// wait ran out).
const probeScript = `#!/bin/sh
# nroot end-to-end probe
state=$(timeout 300 systemctl is-system-running --wait 2>&1)
rc=$?
if [ "$rc" -eq 124 ]; then
    state="timeout:$(systemctl is-system-running 2>&1)"
fi
echo "NROOT-PROBE system-state=$(printf '%s' "$state" | tr '\n' ' ')" > /dev/console
systemctl --failed --no-legend --plain 2>&1 | while read -r line; do
    echo "NROOT-PROBE failed-unit=$line"
done > /dev/console
if [ "$state" != running ]; then
    # What the boot still waits for, when it did not finish.
    systemctl list-jobs --no-legend --plain 2>&1 | head -n 20 | while read -r line; do
        echo "NROOT-PROBE job=$line"
    done > /dev/console
fi
echo "NROOT-PROBE kernel=$(uname -r)" > /dev/console
fstype=$(findmnt -n -o FSTYPE /)
if echo "probe $(date +%s)" > /etc/nroot-probe 2>/dev/null; then write=ok; else write=failed; fi
echo "NROOT-PROBE root-fstype=$fstype" > /dev/console
# The NFS root below the overlay: which export, which generation.
echo "NROOT-PROBE root-source=$(awk '$3 ~ /^nfs/ { print $1; exit }' /proc/mounts)" > /dev/console
# An image-mode root: the file behind the first loop device and the
# device that file is on (MAJ:MIN), and the NFS volumes this client
# holds (their DEV column is that MAJ:MIN for an image read over NFS,
# whose mount the initramfs left behind at the switch to the root).
echo "NROOT-PROBE root-loop=$(losetup -l -n --raw -O BACK-FILE,BACK-MAJ:MIN 2>/dev/null | head -n 1)" > /dev/console
tail -n +2 /proc/fs/nfsfs/volumes 2>/dev/null | head -n 20 | while read -r line; do
    echo "NROOT-PROBE nfs-volume=$line"
done > /dev/console
echo "NROOT-PROBE write=$write" > /dev/console
echo "NROOT-PROBE machine-id=$(cat /etc/machine-id)" > /dev/console
echo "NROOT-PROBE hostname=$(cat /proc/sys/kernel/hostname)" > /dev/console
# The SHA-256 of the ed25519 host key, the digest ssh-keygen -l shows.
if [ -f /etc/ssh/ssh_host_ed25519_key.pub ]; then
    hostkey=$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub | base64 -d | sha256sum | cut -d' ' -f1)
fi
echo "NROOT-PROBE hostkey=${hostkey:-none}" > /dev/console
# What a test's overlay asks to report: each executable of
# /etc/nroot-probe.d prints lines, reported as extra=LINE.
for f in /etc/nroot-probe.d/*; do
    [ -x "$f" ] || continue
    "$f" 2>&1 | head -n 50 | while read -r line; do
        echo "NROOT-PROBE extra=$line"
    done > /dev/console
done
# A package named on the command line (nroot.probe.package=NAME): is it
# installed in the generation this node booted?
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    nroot.probe.package=*)
        pkg=${arg#nroot.probe.package=}
        if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q ' installed$'; then pstate=installed; else pstate=absent; fi
        echo "NROOT-PROBE package=$pkg:$pstate" > /dev/console
        ;;
    esac
done
# NFS RPCs this node sent (the NFS root's per-op statistics), to check a
# recording of them against.
echo "NROOT-PROBE nfs-ops=$(awk '/^device / { nfs = ($0 ~ /fstype nfs/) } nfs && /^[ \t]*[A-Z_0-9]+: [0-9]/ { s += $2 } END { print s + 0 }' /proc/self/mountstats)" > /dev/console
# The NFSv4 client owner's uniquifier the nfs module took from the
# command line, the IPv4 addresses DHCP gave, and the NFS client's state
# recoveries the kernel logged (a lease another client's owner expired).
echo "NROOT-PROBE nfs-unique-id=$(cat /sys/module/nfs/parameters/nfs4_unique_id 2>/dev/null)" > /dev/console
echo "NROOT-PROBE address=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ print $4 }' | tr '\n' ' ')" > /dev/console
echo "NROOT-PROBE nfs-state-errors=$(dmesg 2>/dev/null | grep -ciE 'nfs.*(expired|stale clientid|bad session|reclaim|lease)')" > /dev/console
echo "NROOT-PROBE done" > /dev/console
# Not blocking: the shutdown stops this unit.
systemctl --no-block poweroff
`

const probeUnit = `[Unit]
Description=nroot end-to-end probe
After=multi-user.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/nroot-probe
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`

// installProbe puts the probe unit in the image (--e2e-probe).
func installProbe(r *fsroot.Root) error {
	if err := writeFile(r, "usr/local/sbin/nroot-probe", probeScript, 0o755); err != nil {
		return err
	}
	if err := writeFile(r, "etc/systemd/system/nroot-probe.service", probeUnit, 0o644); err != nil {
		return err
	}
	if err := r.MkdirAll("etc/systemd/system/multi-user.target.wants", 0o755); err != nil {
		return err
	}
	return r.Symlink("/etc/systemd/system/nroot-probe.service", "etc/systemd/system/multi-user.target.wants/nroot-probe.service", fsroot.Meta{})
}
