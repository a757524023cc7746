#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time (FUZZTIME, 10s by
# default). New failing inputs land in the package's testdata/fuzz corpus.
set -euo pipefail
fuzztime=${FUZZTIME:-10s}
# The Go xz decoder is what fuzzing can reach; the xz program's path is
# tested on its own, and a process per input slows the fuzz workers.
export NROOT_XZ=go
# Go minimizes each new interesting input for up to 60 s by default, on one
# core, printing no progress meanwhile; when fuzztime ends inside that, the
# run can fail with "fuzzing process hung or terminated unexpectedly while
# minimizing". Short minimization keeps fuzztime the bound it says.
status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-3s}" >/tmp/nroot-fuzz.log 2>&1; then
      cat /tmp/nroot-fuzz.log
      status=1
    fi
  done
done
exit $status
