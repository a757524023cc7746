package node

import "nroot/internal/fsroot"

// probeScript reports, on the console, what the end-to-end test checks:
// failed units, the root's filesystem type, whether / is writable, the
// machine-id, the hostname, the SSH host key and whether a package named
// on the command line is installed, then powers off.
const probeScript = `#!/bin/sh
# nroot end-to-end probe
failed=$(systemctl --failed --no-legend | wc -l)
fstype=$(findmnt -n -o FSTYPE /)
if echo "probe $(date +%s)" > /etc/nroot-probe 2>/dev/null; then write=ok; else write=failed; fi
echo "NROOT-PROBE failed-units=$failed" > /dev/console
echo "NROOT-PROBE root-fstype=$fstype" > /dev/console
# The NFS root below the overlay: which export, which generation.
echo "NROOT-PROBE root-source=$(awk '$3 ~ /^nfs/ { print $1; exit }' /proc/mounts)" > /dev/console
echo "NROOT-PROBE write=$write" > /dev/console
echo "NROOT-PROBE machine-id=$(cat /etc/machine-id)" > /dev/console
echo "NROOT-PROBE hostname=$(cat /proc/sys/kernel/hostname)" > /dev/console
# The SHA-256 of the ed25519 host key, the digest ssh-keygen -l shows.
if [ -f /etc/ssh/ssh_host_ed25519_key.pub ]; then
    hostkey=$(cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub | base64 -d | sha256sum | cut -d' ' -f1)
fi
echo "NROOT-PROBE hostkey=${hostkey:-none}" > /dev/console
# A package named on the command line (nroot.probe.package=NAME): is it
# installed in the generation this node booted?
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    nroot.probe.package=*)
        pkg=${arg#nroot.probe.package=}
        if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q ' installed$'; then state=installed; else state=absent; fi
        echo "NROOT-PROBE package=$pkg:$state" > /dev/console
        ;;
    esac
done
# NFS RPCs this node sent (the NFS root's per-op statistics), to check a
# recording of them against.
echo "NROOT-PROBE nfs-ops=$(awk '/^device / { nfs = ($0 ~ /fstype nfs/) } nfs && /^[ \t]*[A-Z_0-9]+: [0-9]/ { s += $2 } END { print s + 0 }' /proc/self/mountstats)" > /dev/console
systemctl --failed --no-legend > /dev/console
echo "NROOT-PROBE done" > /dev/console
systemctl poweroff
`

const probeUnit = `[Unit]
Description=nroot end-to-end probe
After=multi-user.target
Wants=multi-user.target

[Service]
Type=oneshot
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
