#!/usr/bin/env bash
# Runs nroot and mmdebstrap alternately on the same suite, variant and
# sources, and prints wall time, peak RSS and nroot/mmdebstrap ratios.
# "cold" gives nroot an empty cache each run; "warm" reuses one.
# mmdebstrap keeps no package cache between runs, so it is the same run
# for both comparisons. Needs root.
# Both sides get exactly the sources nroot derives for the suite (the
# release, SUITE-updates and SUITE-security for Debian and Ubuntu, as
# nroot resolve lists them), as the same one-line "deb URI SUITE
# COMPONENT" entries, and the bench prints them; at the end it compares
# the package sets of one tree of each.
# Every tree is kept until the end: on ext4 without a journal, inode
# allocation skips inodes freed in the last 60 s (300 s while their inode
# table blocks are not yet written back), so a build that starts soon
# after an rm -rf is slowed by it, whichever tool it is. For the same
# reason the bench syncs and waits SETTLE seconds (default 61) before
# every timed build.
#   SUITE, VARIANT (bookworm, minbase), RUNS (3): what to build, how often
#   BENCH_SUMMARY=file: also append the summary lines (metric, ratio,
#   goal) to it; make bench prints that file at the end
#   DRY=1: print the sources and each side's command line, build nothing
set -euo pipefail
suite=${SUITE:-bookworm}
variant=${VARIANT:-minbase}
runs=${RUNS:-3}
settle=${SETTLE:-61}
nroot=${NROOT:-./bin/nroot}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
hook=()
[ "$suite" = bookworm ] && hook=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
case "$suite" in
  # Ubuntu: its archive as the tests find it ($NROOT_UBUNTU_MIRROR, else
  # debootstrap's Ubuntu script), and its keyring given to mmdebstrap,
  # which a Debian host lacks.
  jammy|noble|oracular|plucky|questing|resolute)
    mirror=${NROOT_UBUNTU_MIRROR:-$(awk '$1 == "default_mirror" && $2 !~ /old-releases|ports/ {print $2; exit}' /usr/share/debootstrap/scripts/gutsy)}
    ring="$work/ubuntu-archive-keyring.gpg"
    $nroot keyring export ubuntu -o "$ring"
    hook=(--keyring="$ring")
    ;;
  *) mirror=$($nroot mirror 2>/dev/null) ;;
esac

# The sources nroot reads for this suite and mirror: the release and,
# for Debian and Ubuntu, its -updates and -security suites (build/apt's
# Sources). Both tools get these lines and nothing else.
mapfile -t lines < <($nroot resolve -q --json --variant="$variant" "$suite" "$mirror" |
  python3 -c 'import json,sys
for s in json.load(sys.stdin)["sources"]:
    print("deb %s %s %s" % (s["uri"], s["suite"], " ".join(s["components"])))')
[ "${#lines[@]}" -gt 0 ] || { echo "bench: nroot resolve listed no sources for $suite" >&2; exit 1; }
for l in "${lines[@]}"; do echo "sources: nroot and mmdebstrap: $l"; done

# Each side's command line for a tree (and nroot's cache), into cmd.
mm_cmd() { cmd=(mmdebstrap --quiet --mode=root --format=directory --variant="$variant" "${hook[@]}" "$suite" "$1" "${lines[@]}"); }
nroot_cmd() { cmd=("$nroot" bootstrap -q --cache-dir "$1" --variant="$variant" "$suite" "$2" "${lines[@]}"); }

if [ -n "${DRY:-}" ]; then
  q() { printf '%q ' "$@"; echo; }
  mm_cmd TREE; echo "mmdebstrap: $(q "${cmd[@]}")"
  nroot_cmd CACHE TREE; echo "nroot:      $(q "${cmd[@]}")"
  echo "each timed build after sync and ${settle}s; $runs runs; DRY: nothing built"
  exit 0
fi

measure() { # name, command...: prints "seconds maxrss_kb"
  local name=$1; shift
  # Each run starts with the previous runs' data written back and the
  # inodes they freed past ext4's reuse delay, so that no run pays for
  # another's writeback or deletions.
  sync
  sleep "$settle"
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/$name.log" 2>&1 || { echo "bench: $name failed:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  cat "$work/time"
}

warm="$work/warm-cache"
nroot_cmd "$warm" "$work/prime"
"${cmd[@]}" >/dev/null

declare -a mm cold hot
for i in $(seq "$runs"); do
  mm_cmd "$work/mm-$i"
  read -r t m < <(measure mmdebstrap "${cmd[@]}")
  mm+=("$t"); echo "run $i: mmdebstrap ${t}s, ${m} KB"
  nroot_cmd "$work/cold-$i" "$work/cold-root-$i"
  read -r t m < <(measure nroot-cold "${cmd[@]}")
  cold+=("$t"); echo "run $i: nroot cold ${t}s, ${m} KB"
  nroot_cmd "$warm" "$work/warm-root-$i"
  read -r t m < <(measure nroot-warm "${cmd[@]}")
  hot+=("$t"); echo "run $i: nroot warm ${t}s, ${m} KB"
done

# The same package set on both sides, or the times compare different work.
pkgs() { awk '/^Package:/ {p=$2} /^Version:/ {v=$2} /^$/ && p {print p, v; p=""} END {if (p) print p, v}' "$1/var/lib/dpkg/status" | sort; }
if diff <(pkgs "$work/mm-1") <(pkgs "$work/cold-root-1") >"$work/pkgs.diff"; then
  echo "package sets: equal ($(pkgs "$work/mm-1" | wc -l) packages)"
else
  echo "package sets DIFFER (< mmdebstrap, > nroot):"; grep '^[<>]' "$work/pkgs.diff"
fi

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${mm[@]}"); c=$(median "${cold[@]}"); h=$(median "${hot[@]}")
echo "bootstrap $suite $variant, median of $runs: mmdebstrap ${m}s, nroot cold ${c}s, nroot warm ${h}s"
awk -v m="$m" -v c="$c" -v h="$h" -v n="${#lines[@]}" 'BEGIN {
  printf "bootstrap cold: %.2fx mmdebstrap (goal <= 0.33x; same %d sources)\n", c/m, n
  printf "bootstrap warm: %.2fx mmdebstrap (goal <= 0.15x; same %d sources)\n", h/m, n }' | tee -a "${BENCH_SUMMARY:-/dev/null}"
