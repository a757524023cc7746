#!/usr/bin/env bash
# Lists and extracts real dracut images (40 MB or more) with nroot, with
# lsinitrd and with 3cpio, and prints the times and ratios. Two images of
# one node root: the one nroot node builds (zstd) and one its dracut
# builds with --gzip (dracut 059's default). lsinitrd runs in the node
# image that made them; 3cpio (Debian unstable's package, which needs
# glibc 2.39 and runs the zstd/xz/lz4 programs) runs inside a trixie
# root. Needs root.
#   ROOT=dir holding boot/initrd.img-* with dracut installed (default:
#   built with nroot bootstrap + nroot node into the cache)
#   RUNS=n: best of n (default 3)
set -euo pipefail
nroot=${NROOT:-$PWD/bin/nroot}
runs=${RUNS:-3}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nroot/bench
mkdir -p "$cache"
root=${ROOT:-$cache/bookworm-node}
if [ ! -e "$root/boot/nroot-cmdline" ]; then
  rm -rf "$root"
  "$nroot" bootstrap -q bookworm "$root"
  "$nroot" node -q "$root"
fi
img=$(ls "$root"/boot/initrd.img-* | head -1)
kver=${img##*/initrd.img-}
gz=$root/var/tmp/nroot-bench-gzip.img
if [ ! -s "$gz" ] || [ "$gz" -ot "$img" ]; then
  "$nroot" run -q --no-dns "$root" -- dracut -q --force --gzip /var/tmp/nroot-bench-gzip.img "$kver" >/dev/null
fi

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

# best of $runs, in seconds, of a command run inside an image; $i is the
# run number.
inside() { # root, image dir, command
  "$nroot" run -q --no-dns --no-package-cache --bind "$2:/img" --bind "$out:/out" "$1" -- sh -c "
    for i in \$(seq $runs); do s=\$(date +%s%N); $3 >/dev/null 2>&1 || echo fail >&2; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 )); done" |
    sort -n | head -1 | awk '{ printf "%.3f", $1 / 1000 }'
}
host() { # command, with $i the run number
  for i in $(seq "$runs"); do
    s=$(date +%s%N); eval "$1" >/dev/null 2>&1 || echo fail >&2; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))
  done | sort -n | head -1 | awk '{ printf "%.3f", $1 / 1000 }'
}

for image in "$img" "$gz"; do
  base=$(basename "$image")
  dir=$(dirname "$image")
  echo "image: $image ($(( $(stat -c %s "$image") / 1048576 )) MiB, $("$nroot" initrd ls --segments "$image" | awk 'NR > 1 { print $5 }' | sort -u | paste -sd,))"
  tag=$(echo "$base" | tr -c 'a-z0-9' _)
  t_nroot=$(host "$nroot initrd ls --long $image")
  t_lsinitrd=$(inside "$root" "$dir" "lsinitrd /img/$base")
  t_3cpio=$(inside "$trixie" "$dir" "/usr/local/bin/3cpio -tv /img/$base")
  t_nroot_x=$(host "$nroot initrd extract $image $out/nroot-$tag-\$i")
  t_3cpio_x=$(inside "$trixie" "$dir" "mkdir /out/3cpio-$tag-\$i && /usr/local/bin/3cpio -x -C /out/3cpio-$tag-\$i /img/$base")
  echo "  list:    nroot ${t_nroot}s, lsinitrd ${t_lsinitrd}s, 3cpio ${t_3cpio}s"
  echo "  extract: nroot ${t_nroot_x}s, 3cpio ${t_3cpio_x}s"
  awk -v n="$t_nroot" -v l="$t_lsinitrd" -v c="$t_3cpio" -v nx="$t_nroot_x" -v cx="$t_3cpio_x" 'BEGIN {
    printf "  lsinitrd/nroot %.1fx (goal >= 10x); nroot/3cpio %.2f (goal <= 1); extract nroot/3cpio %.2f (goal <= 1.5)\n", l/n, n/c, nx/cx }'
done
