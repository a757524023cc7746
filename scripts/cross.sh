#!/usr/bin/env bash
# Cross-builds nroot for every system its portable commands run on
# (CGO_ENABLED=0): make test fails when one of them stops building.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${CROSS_TARGETS:-linux/amd64 linux/arm64 linux/riscv64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64}
for t in $targets; do
  echo "cross: $t"
  GOOS=${t%/*} GOARCH=${t#*/} CGO_ENABLED=0 go build -o /dev/null ./cmd/nroot
  # The portable packages' tests compile there too (run in make arm64, and
  # under Wine in make windows).
  GOOS=${t%/*} GOARCH=${t#*/} CGO_ENABLED=0 go vet $(./scripts/portable-packages.sh)
done
