#!/usr/bin/env bash
# make dist: release binaries a CI job can fetch. For every target, a
# static (CGO_ENABLED=0), version-stamped binary; then the manual pages and
# shell completions; then SHA256SUMS over everything. Reproducible: the
# build is -trimpath with no build ID, every timestamp is the commit's
# (SOURCE_DATE_EPOCH), and the archives are sorted, owner-free and
# gzip -n; two runs give identical bytes (scripts/dist.sh twice and cmp).
#
# Every target runs the portable commands (check, initrd, resolve,
# keyring, mirror, storm run); off Linux the others say they need Linux.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DIST:-dist}
targets=${DIST_TARGETS:-linux/amd64 linux/arm64 linux/riscv64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64}
version=${VERSION:-$(git describe --tags --match 'v[0-9]*' --always --dirty)}
case "$version" in
  *[!A-Za-z0-9._+-]*) echo "dist: VERSION $version: letters, digits and . _ + - only" >&2; exit 64 ;;
esac
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export CGO_ENABLED=0 GOFLAGS=-trimpath
tmp=$(mktemp -d "${out%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ldflags="-s -w -buildid= -X nroot/internal/buildinfo.stamped=$version"
for t in $targets; do
  os=${t%/*} arch=${t#*/}
  name="nroot-$version-$os-$arch"
  [ "$os" = windows ] && name="$name.exe"
  echo "dist: $name"
  GOOS=$os GOARCH=$arch go build -buildvcs=true -ldflags "$ldflags" -o "$tmp/$name" ./cmd/nroot
done
# Manual pages and completions from a binary of this host's kind (same
# source, so the same text whichever target's binary would write them).
host="$tmp/nroot-host"
go build -buildvcs=true -ldflags "$ldflags" -o "$host" ./cmd/nroot
mkdir -p "$tmp/share/man/man1" "$tmp/share/completions"
"$host" man "$tmp/share/man/man1"
"$host" completion bash > "$tmp/share/completions/nroot.bash"
"$host" completion zsh > "$tmp/share/completions/_nroot"
"$host" completion fish > "$tmp/share/completions/nroot.fish"
rm "$host"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --mode='a+rX,u+w,go-w' -C "$tmp" -cf - share | gzip -n -9 > "$tmp/nroot-$version-share.tar.gz"
rm -rf "$tmp/share"
(cd "$tmp" && sha256sum -- nroot-* > SHA256SUMS)
rm -rf "$out"
chmod 755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "dist: $(ls "$out" | wc -l) files in $out ($version)"
