#!/usr/bin/env bash
# The seed's node stage, the hand-run recipe nroot node replaces, on the
# root filesystem TREE: in systemd-nspawn, apt-get update, apt-get install
# of the kernel, dracut, dracut-network, nfs-common and network-manager,
# then dracut -m SEED_MODULES --force for the installed kernel, written
# where Debian's kernel packages look for it (/boot/initrd.img-KVER).
# scripts/bench-node.sh times it and the boot time e2e
# (e2e/boottime_test.go) boots what it makes: one definition for both.
#   SEED_MODULES ("base systemd-initrd dracut-systemd network nfs
#   kernel-modules udev-rules"): dracut's modules. "network" picks
#   network-manager, the handler the recipe installs, whose dbus brings
#   systemd in as /init; without systemd-initrd and dracut-systemd that
#   systemd has no initrd.target and boots the initramfs to multi-user,
#   never mounting the root (seen in QEMU with "base network nfs
#   kernel-modules udev-rules")
# Needs root. Usage: seed-node.sh TREE
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: seed-node.sh TREE" >&2; exit 64; }
modules=${SEED_MODULES:-base systemd-initrd dracut-systemd network nfs kernel-modules udev-rules}

# systemd-nspawn registers with machined and makes a scope unit only
# where PID 1 is systemd with a system bus (as build/nspawn decides).
nspawn=(systemd-nspawn --quiet --directory="$1" --resolv-conf=copy-host --as-pid2 --console=pipe)
[ -d /run/systemd/system ] && [ -S /run/dbus/system_bus_socket ] || nspawn+=(--register=no --keep-unit)

exec "${nspawn[@]}" -- sh -c "set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq linux-image-amd64 dracut dracut-network nfs-common network-manager >/dev/null
k=\$(ls /lib/modules | sort -V | tail -n1)
dracut -m '$modules' --force --kver \"\$k\" /boot/initrd.img-\$k"
