#!/usr/bin/env bash
# Lists and extracts a real dracut image (40 MB or more) with nroot, with
# lsinitrd and with 3cpio, and prints the times and ratios. lsinitrd runs
# in the node image that made the initramfs; 3cpio (Debian unstable's
# package, which needs glibc 2.39) runs inside a trixie root. Needs root.
#   ROOT=dir holding boot/initrd.img-* with dracut installed (default:
#   built with nroot bootstrap + nroot node into the cache)
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
size=$(stat -c %s "$img")
echo "image: $img ($((size / 1048576)) MiB)"

trixie=$cache/trixie-3cpio
if [ ! -x "$trixie/usr/local/bin/3cpio" ]; then
  rm -rf "$trixie"
  "$nroot" bootstrap -q --variant=minbase trixie "$trixie"
  url=$("$nroot" resolve -q --no-check-valid-until --variant=custom --include=3cpio --json sid "deb $("$nroot" mirror 2>/dev/null) sid main" |
    python3 -c 'import json,sys; p=json.load(sys.stdin); print(next(x["uri"]+"/"+x["filename"] for x in p["packages"] if x["name"]=="3cpio"))')
  tmp=$(mktemp -d)
  curl -sSf -o "$tmp/3cpio.deb" "$url"
  dpkg-deb -x "$tmp/3cpio.deb" "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/3cpio" "$trixie/usr/local/bin/3cpio"
  rm -rf "$tmp"
fi
mkdir -p "$trixie/img" "$root/img"

# best of $runs, in seconds, of a command run inside an image
inside() { # root, command
  "$nroot" run -q --no-dns --no-package-cache --bind "$(dirname "$img"):/img" "$1" -- sh -c "
    for i in \$(seq $runs); do s=\$(date +%s%N); $2 >/dev/null 2>&1; e=\$(date +%s%N); echo \$(( (e - s) / 1000000 )); done" |
    sort -n | head -1 | awk '{ printf "%.3f", $1 / 1000 }'
}
host() { # command
  for i in $(seq "$runs"); do
    s=$(date +%s%N); eval "$1" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))
  done | sort -n | head -1 | awk '{ printf "%.3f", $1 / 1000 }'
}
base=$(basename "$img")
t_nroot=$(host "$nroot initrd ls --long $img")
t_lsinitrd=$(inside "$root" "lsinitrd /img/$base")
t_3cpio=$(inside "$trixie" "/usr/local/bin/3cpio -t /img/$base")
out=$(mktemp -d)
t_nroot_x=$(host "rm -rf $out/n && $nroot initrd extract $img $out/n")
t_3cpio_x=$(inside "$trixie" "sh -c 'rm -rf /tmp/x && mkdir /tmp/x && cd /tmp/x && /usr/local/bin/3cpio -x /img/$base'")
rm -rf "$out"
echo "list:    nroot ${t_nroot}s, lsinitrd ${t_lsinitrd}s, 3cpio ${t_3cpio}s"
echo "extract: nroot ${t_nroot_x}s, 3cpio ${t_3cpio_x}s"
awk -v n="$t_nroot" -v l="$t_lsinitrd" -v c="$t_3cpio" -v nx="$t_nroot_x" -v cx="$t_3cpio_x" 'BEGIN {
  printf "lsinitrd/nroot %.1fx (goal >= 10x); nroot/3cpio %.2f (goal <= 1); extract nroot/3cpio %.2f (goal <= 1.5)\n", l/n, n/c, nx/cx }'
