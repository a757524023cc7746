#!/usr/bin/env bash
# Installs what nroot's build and tests need on a Debian host: Go (when
# missing), the Debian packages the tests drive, and the Go modules.
set -euo pipefail

# Debian packages the tests use as real components.
DEB_PACKAGES=(
  ca-certificates git make gcc
  mmdebstrap          # the reference the resolver and bootstrap are compared with
  systemd-container   # systemd-nspawn, for the configuration stage
  nfs-ganesha nfs-ganesha-vfs rpcbind  # the NFS server the export checks run against
  qemu-system-x86     # boots the node image in make e2e
  cpio zstd xz-utils lz4 lzop bzip2 busybox-static  # initramfs reference tools
  debootstrap         # its data only: the Ubuntu archive's address (scripts/gutsy)
  nginx dnsmasq ipxe-qemu           # HTTP serving, PXE configuration, QEMU's network boot ROM
  ipxe ovmf                         # make e2e-net: undionly.kpxe, ipxe.efi by TFTP; UEFI firmware
  squashfs-tools erofs-utils        # image files
  uidmap passwd                     # newuidmap/newgidmap and useradd: the rootless bootstrap test
  qemu-user-static                  # the arm64 unit tests (make arm64)
)

want_go() {
  if command -v go >/dev/null 2>&1; then return 1; fi
  if [ -x /usr/local/go/bin/go ]; then return 1; fi
  return 0
}

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if want_go; then missing+=(golang-go); fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}; run as root, or install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="$PATH:/usr/local/go/bin"
ver=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
if [ "${major:-0}" -lt 1 ] || { [ "$major" -eq 1 ] && [ "${minor:-0}" -lt 21 ]; }; then
  echo "deps: Go $ver is too old to fetch the toolchain go.mod asks for; install Go 1.21 or later (on bookworm: apt-get install -t bookworm-backports golang-go)" >&2
  exit 1
fi
GOTOOLCHAIN=auto go mod download
