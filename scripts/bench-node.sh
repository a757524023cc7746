#!/usr/bin/env bash
# The node stage side by side: the seed's way and nroot node, each on its
# own copy of one bootstrapped tree, taking turns, RUNS times.
#   seed's way: scripts/seed-node.sh (in systemd-nspawn, apt-get update,
#     apt-get install of the kernel, dracut, dracut-network, nfs-common and
#     network-manager, then dracut -m SEED_MODULES --force);
#   nroot:      nroot node TREE (kernel, initramfs, command line), with an
#     empty package cache each run ("cold", as apt's is) and with a warm one.
# Both sides download from the mirror the tree's sources name (the
# release, -updates and -security). Every tree is kept until the end, and
# each timed run follows a sync and SETTLE seconds (ext4 without a journal
# slows whoever allocates soon after inodes were freed; see
# bench-bootstrap.sh). Afterwards the seed's initramfs must pass nroot
# initrd verify --nfs (dracut's nfs and network modules, a network
# handler, mount.nfs, the NFS kernel modules): the comparison is with a
# working NFS-root image. Both images' sizes and contents are printed.
#   SUITE (bookworm), VARIANT (important), RUNS (1), SETTLE (61),
#   SEED_MODULES (seed-node.sh's)
#   BENCH_SUMMARY=file: also append the summary line to it
# Needs root.
set -euo pipefail
suite=${SUITE:-bookworm}
variant=${VARIANT:-important}
runs=${RUNS:-1}
settle=${SETTLE:-61}
nroot=$(realpath "${NROOT:-./bin/nroot}")
seed=$(dirname "$(realpath "$0")")/seed-node.sh
work=$(mktemp -d /var/tmp/nroot-bench-node.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "node stage: bootstrapping $suite $variant once for both sides"
"$nroot" --cache-dir "$work/boot-cache" bootstrap -q --variant="$variant" "$suite" "$work/base" >"$work/bootstrap.log" 2>&1 ||
  { echo "bench-node: bootstrap failed:" >&2; tail -20 "$work/bootstrap.log" >&2; exit 1; }
grep -h '^URIs:\|^Suites:' "$work/base"/etc/apt/sources.list.d/*.sources | paste -sd' ' | sed 's/^/sources: both sides: /'

measure() { # name, command...: prints seconds
  local name=$1; shift
  sync
  sleep "$settle"
  /usr/bin/time -f "%e" -o "$work/time" "$@" >"$work/$name.log" 2>&1 ||
    { echo "bench-node: $name failed:" >&2; tail -30 "$work/$name.log" >&2; exit 1; }
  cat "$work/time"
}

warm="$work/warm-cache"
declare -a seeds cold hot
for i in $(seq "$runs"); do
  for t in seed cold warm; do cp -a "$work/base" "$work/$t-$i"; done
  s=$(measure "seed-$i" "$seed" "$work/seed-$i")
  seeds+=("$s"); echo "run $i: seed's way ${s}s"
  c=$(measure "cold-$i" "$nroot" -q --cache-dir "$work/cold-cache-$i" node "$work/cold-$i")
  cold+=("$c"); echo "run $i: nroot node, empty cache ${c}s"
  [ -d "$warm" ] || cp -a "$work/cold-cache-$i" "$warm"
  h=$(measure "warm-$i" "$nroot" -q --cache-dir "$warm" node "$work/warm-$i")
  hot+=("$h"); echo "run $i: nroot node, warm cache ${h}s"
done

# What each side built: the initramfs's bytes, dracut modules and kernel
# modules; the seed's must be a working NFS-root image.
image() { ls "$1"/boot/initrd.img-* | sort -V | tail -n1; }
describe() { # name, tree
  local img; img=$(image "$2")
  local mods; mods=$("$nroot" initrd cat "$img" usr/lib/dracut/modules.txt | tr '\n' ' ')
  local ko; ko=$("$nroot" initrd ls "$img" | grep -c '\.ko\(\.xz\|\.zst\)\?$' || true)
  echo "initramfs: $1 $(stat -c %s "$img") bytes, $ko kernel modules, dracut modules: $mods"
}
describe "seed's way" "$work/seed-1"
describe "nroot" "$work/cold-1"
if ! "$nroot" initrd verify --nfs --rootfs "$work/seed-1" "$(image "$work/seed-1")" >"$work/verify.txt" 2>&1; then
  echo "bench-node: the seed's initramfs is no NFS-root image (SEED_MODULES: ${SEED_MODULES:-default}):" >&2
  grep -v PASS "$work/verify.txt" >&2
  exit 1
fi
# verify does not yet ask a systemd /init for dracut's initrd units:
# without them the initramfs boots to multi-user and never mounts the root.
if "$nroot" initrd cat "$(image "$work/seed-1")" usr/lib/dracut/modules.txt | grep -qx systemd &&
  ! "$nroot" initrd ls "$(image "$work/seed-1")" 'usr/lib/systemd/system/initrd.target' | grep -q .; then
  echo "bench-node: the seed's initramfs runs systemd without initrd.target (add systemd-initrd and dracut-systemd to SEED_MODULES)" >&2
  exit 1
fi
echo "seed's initramfs: nroot initrd verify --nfs passes ($(grep -c PASS "$work/verify.txt") checks), and its systemd has initrd.target"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
s=$(median "${seeds[@]}"); c=$(median "${cold[@]}"); h=$(median "${hot[@]}")
echo "node stage $suite $variant, median of $runs: seed's way ${s}s, nroot ${c}s (empty cache), ${h}s (warm)"
awk -v s="$s" -v c="$c" -v h="$h" 'BEGIN {
  printf "node stage: %.2fx the seed'"'"'s way with an empty cache, %.2fx warm (goal <= 0.15x)\n", c/s, h/s }' | tee -a "${BENCH_SUMMARY:-/dev/null}"
