#!/usr/bin/env bash
# Runs the portable packages' unit tests as linux/arm64 binaries under
# qemu-user. Tests that start their own binary again need the kernel to
# run arm64 ELF files too: binfmt_misc, registered here from
# qemu-user-static's configuration when it is not (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "arm64: $*" >&2; exit 1; }
command -v qemu-aarch64-static >/dev/null || fail "qemu-aarch64-static is missing; apt-get install qemu-user-static (make deps)"
bm=/proc/sys/fs/binfmt_misc
if [ ! -e "$bm/qemu-aarch64" ]; then
  [ "$(id -u)" -eq 0 ] || fail "no binfmt_misc handler qemu-aarch64, and registering one needs root"
  [ -e "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm" || fail "cannot mount binfmt_misc on $bm"
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -r "$conf" ] || fail "$conf is missing; apt-get install qemu-user-static"
  grep -v '^#' "$conf" > "$bm/register" || fail "cannot register $conf with binfmt_misc"
fi
GOARCH=arm64 go test -count=1 -timeout 20m -exec qemu-aarch64-static $(./scripts/portable-packages.sh)
