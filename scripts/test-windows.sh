#!/usr/bin/env bash
# make windows: the windows/amd64 binary make dist writes, run under Wine
# (e2e TestWindowsBinary): it lists an initramfs as the Linux binary
# does, extracts one, refuses names Windows would misread, and checks a
# ganesha export on 127.0.0.1. Wine runs in a Debian trixie root that
# nroot bootstraps once into WINE_ROOT (about 1.1 GB, a few minutes):
# bookworm's Wine 8 lacks what Go's Windows runtime needs
# (bcryptprimitives.dll's ProcessPrng).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${WINE_ROOT:-$PWD/wine-root}
if [ ! -x "$root/usr/bin/wine" ]; then
  echo "windows: bootstrapping trixie with Wine into $root"
  ./bin/nroot bootstrap --variant=apt --include=wine,wine64 trixie "$root"
fi
NROOT_WINE_ROOT=$root go test -count=1 -timeout 20m -run '^TestWindowsBinary$' -v ./e2e
