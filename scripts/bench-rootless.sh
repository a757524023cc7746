#!/usr/bin/env bash
# Times a rootless bootstrap (nroot's default without root: a user
# namespace over the user's subordinate IDs) next to a root one, for
# nroot and for mmdebstrap (--mode=unshare, --mode=root), each with a
# warm cache where the tool keeps one. The unprivileged user is made for
# the run and removed after it. Needs root. Same disk method as
# bench-bootstrap.sh: every tree kept to the end, sync and SETTLE
# seconds (default 61) before each timed build.
set -euo pipefail
suite=${SUITE:-bookworm}
variant=${VARIANT:-minbase}
nroot=$(realpath "${NROOT:-./bin/nroot}")
work=$(mktemp -d)
chmod 755 "$work"
user=nrootbench$$
cleanup() { userdel --force "$user" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
useradd --create-home --home-dir "$work/home" --shell /bin/sh "$user"
if ! grep -q "^$user:" /etc/subuid; then
  start=$(awk -F: '{ e = $2 + $3; if (e > m) m = e } END { print (m > 100000 ? m : 100000) }' /etc/subuid /etc/subgid)
  usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$user"
fi
install -m 755 "$nroot" "$work/nroot"
mkdir "$work/out" && chown "$user:" "$work/out"
mirror=$("$nroot" mirror 2>/dev/null)
hook=()
[ "$suite" = bookworm ] && hook=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
line="deb $mirror $suite main"
as_user=(runuser -u "$user" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work/home")

measure() { # name, command...: prints seconds
  local name=$1; shift
  sync
  sleep "${SETTLE:-61}"
  /usr/bin/time -f "%e" -o "$work/time" "$@" >"$work/$name.log" 2>&1 || { echo "bench: $name failed:" >&2; tail -20 "$work/$name.log" >&2; exit 1; }
  cat "$work/time"
}

# Warm both users' nroot caches.
"${as_user[@]}" "$work/nroot" bootstrap -q --variant="$variant" "$suite" "$work/out/prime.tar" "$line" >/dev/null
"$nroot" bootstrap -q --cache-dir "$work/root-cache" --variant="$variant" "$suite" "$work/prime-root.tar" "$line" >/dev/null

declare -a NR NU MR MU
for i in $(seq "${RUNS:-1}"); do
  t=$(measure nroot-root "$nroot" bootstrap -q --mode=root --cache-dir "$work/root-cache" --variant="$variant" "$suite" "$work/nroot-root-$i.tar" "$line")
  NR+=("$t"); echo "run $i: nroot as root ${t}s"
  t=$(measure nroot-rootless "${as_user[@]}" "$work/nroot" bootstrap -q --variant="$variant" "$suite" "$work/out/nroot-rootless-$i.tar" "$line")
  NU+=("$t"); echo "run $i: nroot rootless ${t}s"
  t=$(measure mm-root mmdebstrap --quiet --mode=root --variant="$variant" "${hook[@]}" "$suite" "$work/mm-root-$i.tar" "$line")
  MR+=("$t"); echo "run $i: mmdebstrap --mode=root ${t}s"
  t=$(measure mm-unshare "${as_user[@]}" mmdebstrap --quiet --mode=unshare --variant="$variant" "${hook[@]}" "$suite" "$work/out/mm-unshare-$i.tar" "$line")
  MU+=("$t"); echo "run $i: mmdebstrap --mode=unshare ${t}s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
nr=$(median "${NR[@]}"); nu=$(median "${NU[@]}"); mr=$(median "${MR[@]}"); mu=$(median "${MU[@]}")
echo "median of ${RUNS:-1}: nroot root ${nr}s, rootless ${nu}s; mmdebstrap root ${mr}s, unshare ${mu}s"
awk -v nr="$nr" -v nu="$nu" -v mr="$mr" -v mu="$mu" 'BEGIN {
  printf "bootstrap %s %s tar: rootless/root nroot %.2f, mmdebstrap %.2f; nroot/mmdebstrap rootless %.2f, root %.2f\n", ENVIRON["SUITE"] ? ENVIRON["SUITE"] : "bookworm", ENVIRON["VARIANT"] ? ENVIRON["VARIANT"] : "minbase", nu/nr, mu/mr, nu/mu, nr/mr }'
