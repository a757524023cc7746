#!/usr/bin/env bash
# The packages behind the portable commands (check, initrd, resolve,
# keyring, mirror, storm run) whose unit tests run on other systems and
# architectures: make arm64 runs them under qemu-user, make windows under
# Wine.
echo ./internal/... ./format/... ./node/initrd ./node/dracut ./verify/nfs4 ./verify/nfsclient ./verify/storm ./build/deb ./build/lockfile ./build/hostapt
