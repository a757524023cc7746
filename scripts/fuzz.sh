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
minimize=${FUZZMINIMIZETIME:-3s}
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# when -fuzztime ends while a worker is mid-call (go.dev/issue/75804, fixed
# in Go 1.27). That is not a finding: a finding always writes its input
# ("Failing input written to") or names a panic or a t.Error. Such a run is
# told apart by its log, its corpus is replayed deterministically, and the
# target fuzzed again, up to three tries; anything else fails.
deadline_only() {
  grep -q 'context deadline exceeded' "$1" &&
    ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:|fuzzing process hung' "$1"
}

fuzz_one() { # pkg target log
  go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" >"$3" 2>&1
}

status=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    log="$logdir/$target.log"
    ok=false
    for try in 1 2 3; do
      if fuzz_one "$pkg" "$target" "$log"; then ok=true; break; fi
      deadline_only "$log" || break
      echo "fuzz: $target stopped on the Go 1.26 fuzztime race with no finding (try $try); replaying its corpus"
      if ! go test "$pkg" -count=1 -run "^$target\$" >"$log" 2>&1; then break; fi
    done
    $ok && continue
    cat "$log"
    status=1
  done
done
exit $status
