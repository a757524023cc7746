#!/usr/bin/env bash
# Lists and extracts real dracut images (40 MB or more) with nroot, with
# lsinitrd and with 3cpio, and prints the times and ratios. Two images of
# each node root: the one nroot node builds (zstd) and one its dracut
# builds with --gzip (dracut 059's default). lsinitrd runs in the node
# image that made them; 3cpio (Debian unstable's package, which needs
# glibc 2.39 and runs the zstd/xz/lz4 programs) runs inside a trixie
# root. Needs root.
#   ROOT=dir holding boot/initrd.img-* with dracut installed, or
#   SUITES="bookworm trixie" (default): node roots built with nroot
#   bootstrap + nroot node into the cache
#   RUNS=n: best of n (default 3)
#   SMALL_SUITES="trixie" (default): also build each suite's node with
#   nroot node --initrd=small and print both images' boot bytes
#   BENCH_SUMMARY=file: append the "metric: ratio (goal)" lines to it
set -euo pipefail
nroot=${NROOT:-$PWD/bin/nroot}
runs=${RUNS:-3}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nroot/bench
mkdir -p "$cache"
# node roots: ROOT, or one per suite of SUITES built with nroot
roots=()
if [ -n "${ROOT:-}" ]; then
  roots=("$ROOT")
else
  for suite in ${SUITES:-bookworm trixie}; do
    root=$cache/$suite-node
    if [ ! -e "$root/boot/nroot-cmdline" ]; then
      rm -rf "$root"
      "$nroot" bootstrap -q "$suite" "$root"
      "$nroot" node -q "$root"
    fi
    roots+=("$root")
  done
fi
# in each: the image nroot node built, and a gzip one from the same dracut
images=()
for root in "${roots[@]}"; do
  img=$(ls "$root"/boot/initrd.img-* | head -1)
  kver=${img##*/initrd.img-}
  gz=$root/var/tmp/nroot-bench-gzip.img
  if [ ! -s "$gz" ] || [ "$gz" -ot "$img" ]; then
    "$nroot" run -q --no-dns "$root" -- dracut -q --force --gzip /var/tmp/nroot-bench-gzip.img "$kver" >"$cache/dracut.log" 2>&1 ||
      { cat "$cache/dracut.log" >&2; exit 1; }
  fi
  images+=("$root:$img" "$root:$gz")
done

trixie=$cache/trixie-3cpio
if [ ! -x "$trixie/usr/local/bin/3cpio" ] || [ ! -x "$trixie/usr/bin/zstd" ]; then
  rm -rf "$trixie"
  "$nroot" bootstrap -q --variant=minbase --include=zstd,xz-utils,lz4 trixie "$trixie"
  url=$("$nroot" resolve -q --no-check-valid-until --variant=custom --include=3cpio --json sid "deb $("$nroot" mirror 2>/dev/null) sid main" |
    python3 -c 'import json,sys; p=json.load(sys.stdin); print(next(x["uri"]+"/"+x["filename"] for x in p["packages"] if x["name"]=="3cpio"))')
  tmp=$(mktemp -d)
  curl -sSf -o "$tmp/3cpio.deb" "$url"
  dpkg-deb -x "$tmp/3cpio.deb" "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/3cpio" "$trixie/usr/local/bin/3cpio"
  rm -rf "$tmp"
fi
mkdir -p "$trixie/img"

# Both tools extract into new sibling directories, removed at the end:
# removing a tree just before writing one slows inode allocation on ext4
# without a journal (for 60 to 300 s), and would count against whoever
# runs next. For the same reason the bench syncs and waits SETTLE seconds
# (default 60) first.
out=$(mktemp -d "$cache/extract.XXXXXX")
trap 'rm -rf "$out"' EXIT
sync
sleep "${SETTLE:-60}"

# one run, in milliseconds, of a command inside an image or on the host
inside() { # root, image dir, command
  "$nroot" run -q --no-dns --no-package-cache --bind "$2:/img" --bind "$out:/out" "$1" -- sh -c "
    s=\$(date +%s%N); $3 >/dev/null 2>&1 || echo fail >&2; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 ))"
}
host() { # command
  local s e
  s=$(date +%s%N); eval "$1" >/dev/null 2>&1 || echo fail >&2; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))
}
best() { sort -n | head -1 | awk '{ printf "%.3f", $1 / 1000 }'; }

for pair in "${images[@]}"; do
  root=${pair%%:*}
  image=${pair#*:}
  base=$(basename "$image")
  dir=$(dirname "$image")
  version=$(sed -n 's/^DRACUT_VERSION=//p' "$root"/usr/lib/dracut/dracut-version.sh 2>/dev/null || true)
  mib=$(( $(stat -c %s "$image") / 1048576 ))
  comp=$("$nroot" initrd ls --segments "$image" | awk 'NR > 1 { print $5 }' | sort -u | paste -sd,)
  kind="the image nroot node builds"
  case $image in *nroot-bench-gzip.img) kind="extra: the same dracut with --gzip" ;; esac
  echo "image: $image, dracut $version ($mib MiB, $comp; $kind)"
  tag=$(echo "$image" | tr -c 'a-z0-9' _)
  # The tools take turns, run by run, so a slow spell of the machine
  # falls on all of them; each gets its best of $runs.
  : >"$out/n" >"$out/l" >"$out/c" >"$out/nx" >"$out/cx"
  for i in $(seq "$runs"); do
    host "$nroot initrd ls --long $image" >>"$out/n"
    inside "$root" "$dir" "lsinitrd /img/$base" >>"$out/l"
    inside "$trixie" "$dir" "/usr/local/bin/3cpio -tv /img/$base" >>"$out/c"
    host "$nroot initrd extract $image $out/nroot-$tag-$i" >>"$out/nx"
    inside "$trixie" "$dir" "mkdir /out/3cpio-$tag-$i && /usr/local/bin/3cpio -x -C /out/3cpio-$tag-$i /img/$base" >>"$out/cx"
  done
  t_nroot=$(best <"$out/n") t_lsinitrd=$(best <"$out/l") t_3cpio=$(best <"$out/c")
  t_nroot_x=$(best <"$out/nx") t_3cpio_x=$(best <"$out/cx")
  echo "  list:    nroot ${t_nroot}s, lsinitrd ${t_lsinitrd}s, 3cpio ${t_3cpio}s"
  echo "  extract: nroot ${t_nroot_x}s, 3cpio ${t_3cpio_x}s"
  awk -v n="$t_nroot" -v l="$t_lsinitrd" -v c="$t_3cpio" -v nx="$t_nroot_x" -v cx="$t_3cpio_x" 'BEGIN {
    printf "  lsinitrd/nroot %.1fx (goal >= 10x); nroot/3cpio %.2f (goal <= 1); extract nroot/3cpio %.2f (goal <= 1.5)\n", l/n, n/c, nx/cx }'
  awk -v n="$t_nroot" -v c="$t_3cpio" -v comp="$comp" -v s="$(basename "$root")" 'BEGIN {
    printf "initramfs listing (%s, %s): %.2fx 3cpio (goal <= 0.5x)\n", comp, s, n/c }' | tee -a "${BENCH_SUMMARY:-/dev/null}"
done

# Boot bytes per node: the kernel and initramfs every node fetches before
# its root, the same in each boot mode (tree, nfs-image, http-image; the
# image modes then read the root image, http-image all of it into RAM),
# for the full image and for --initrd=small, which must pass initrd
# verify in every mode.
for suite in ${SMALL_SUITES-trixie}; do
  full=$cache/$suite-node small=$cache/$suite-node-small
  [ -e "$full/boot/nroot-cmdline" ] || continue
  if [ ! -e "$small/boot/nroot-cmdline" ] || [ "$small/boot/nroot-cmdline" -ot "$full/boot/nroot-cmdline" ]; then
    # From a bootstrap of its own, as a user makes one: the full node's
    # root has zstd, whose program dracut's img-lib would add (0.45 MB).
    rm -rf "$small"
    "$nroot" bootstrap -q "$suite" "$small"
    "$nroot" node -q --initrd=small "$small" >/dev/null
  fi
  for kind in full small; do
    root=$cache/$suite-node; [ $kind = small ] && root=$small
    img=$(ls "$root"/boot/initrd.img-* | head -1)
    kver=${img##*/initrd.img-}
    "$nroot" initrd verify -q --mode all --rootfs "$root" "$img" >/dev/null || { echo "bench: $suite $kind: initrd verify failed" >&2; exit 1; }
    k=$(stat -c %s "$root/boot/vmlinuz-$kver") i=$(stat -c %s "$img")
    mods=$("$nroot" initrd ls "$img" 'usr/lib/modules/*.ko*' | wc -l)
    echo "boot bytes $suite $kind: kernel $k + initramfs $i = $((k + i)) per node in every mode ($mods kernel modules; initrd verify --mode all passes)"
    [ $kind = small ] && awk -v i="$i" -v s="$suite" 'BEGIN { printf "small node initramfs (%s): %.1f MB (goal <= 15 MB)\n", s, i / 1e6 }' | tee -a "${BENCH_SUMMARY:-/dev/null}"
  done
done
