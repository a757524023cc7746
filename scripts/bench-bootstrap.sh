#!/usr/bin/env bash
# Runs nroot and mmdebstrap alternately on the same suite, variant and
# mirror, and prints wall time, peak RSS and nroot/mmdebstrap ratios.
# "cold" gives nroot an empty cache each run; "warm" reuses one.
# mmdebstrap keeps no package cache between runs, so it is the same run
# for both comparisons. Needs root.
# Every tree is kept until the end: on ext4 without a journal, inode
# allocation skips inodes freed in the last 60 s (300 s while their inode
# table blocks are not yet written back), so a build that starts soon
# after an rm -rf is slowed by it, whichever tool it is. For the same
# reason the bench first syncs and waits SETTLE seconds (default 61), and
# again after each mmdebstrap run.
set -euo pipefail
suite=${SUITE:-bookworm}
variant=${VARIANT:-minbase}
runs=${RUNS:-3}
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
line="deb $mirror $suite main"

measure() { # name, command...: prints "seconds maxrss_kb"
  local name=$1; shift
  # Each run starts with the previous runs' data written back, so that
  # no run pays for another's writeback.
  sync
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/$name.log" 2>&1 || { echo "bench: $name failed:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  cat "$work/time"
}

sync
sleep "${SETTLE:-61}"

warm="$work/warm-cache"
$nroot bootstrap -q --cache-dir "$warm" --variant="$variant" "$suite" "$work/prime" "$line" >/dev/null

declare -a mm cold hot
for i in $(seq "$runs"); do
  read -r t m < <(measure mmdebstrap mmdebstrap --quiet --mode=root --format=directory --variant="$variant" "${hook[@]}" "$suite" "$work/mm-$i" "$line")
  mm+=("$t"); echo "run $i: mmdebstrap ${t}s, ${m} KB"
  # mmdebstrap unpacks the essential set twice (tar, then dpkg over it),
  # freeing thousands of inodes; let that pass before the next tool runs.
  sync
  sleep "${SETTLE:-61}"
  read -r t m < <(measure nroot-cold $nroot bootstrap -q --cache-dir "$work/cold-$i" --variant="$variant" "$suite" "$work/cold-root-$i" "$line")
  cold+=("$t"); echo "run $i: nroot cold ${t}s, ${m} KB"
  read -r t m < <(measure nroot-warm $nroot bootstrap -q --cache-dir "$warm" --variant="$variant" "$suite" "$work/warm-root-$i" "$line")
  hot+=("$t"); echo "run $i: nroot warm ${t}s, ${m} KB"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${mm[@]}"); c=$(median "${cold[@]}"); h=$(median "${hot[@]}")
echo "bootstrap $suite $variant, median of $runs: mmdebstrap ${m}s, nroot cold ${c}s, nroot warm ${h}s"
awk -v m="$m" -v c="$c" -v h="$h" 'BEGIN { printf "ratio cold nroot/mmdebstrap %.2f (goal <= 0.50), warm %.2f (goal <= 0.25)\n", c/m, h/m }'
