# nroot: build, test and benchmark. Every target installs what it needs.
GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
export GOTOOLCHAIN ?= auto
FUZZTIME ?= 10s
SUITE   ?= stable
VARIANT ?= important
TARGET  ?= ./nroot-node
# The address nodes reach this machine at, for the export's boot lines.
SERVER  ?= $(shell hostname -I 2>/dev/null | cut -d' ' -f1)

.PHONY: all build deps run test unit fuzz bench bench-boot storm storm-validate compare foreign e2e e2e-full e2e-net man dist cross arm64 windows clean

all: build

build:
	$(GO) build -buildvcs=auto -o bin/nroot ./cmd/nroot

deps:
	./scripts/deps.sh

# The main job on defaults.
run: deps build
	./bin/nroot bootstrap --variant=$(VARIANT) $(SUITE) $(TARGET)
	./bin/nroot node $(TARGET)
	./bin/nroot node check $(TARGET)
	./bin/nroot export $(TARGET) --server=$(SERVER)

# Every test: vet, unit and integration tests against the real archive and
# tools; the cross-build of every release target; the portable packages'
# tests as linux/arm64 under qemu-user; then each fuzz target for FUZZTIME.
test: deps unit cross arm64 fuzz

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

cross:
	./scripts/cross.sh

arm64:
	./scripts/test-arm64.sh

# The windows/amd64 release binary under Wine: initrd ls, extract and a
# ganesha export check (scripts/test-windows.sh; not in make test).
windows: deps build
	./scripts/test-windows.sh

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Speeds the issues name: Packages parse and resolve of trixie minbase,
# bootstrap against mmdebstrap (cold and warm), the node stage against the
# seed's way (scripts/seed-node.sh), the export check of a minbase export,
# initramfs listing against lsinitrd and 3cpio, the end-to-end stages
# (bootstrap, node, initrd verify, export check, boot), the boot time of
# nroot's image against the seed's way (bench-boot), and a short boot
# storm (up to 100 clients).
# Each script appends its "metric: ratio (goal ...)" lines to
# BENCH_SUMMARY, printed together at the end.
BENCH_SUMMARY ?= $(CURDIR)/bench-summary.txt
export BENCH_SUMMARY
bench: deps build
	: >$(BENCH_SUMMARY)
	$(GO) test -run '^$$' -bench . -benchmem ./build/apt
	./scripts/bench-bootstrap.sh
	./scripts/bench-rootless.sh
	./scripts/bench-node.sh
	$(GO) test -run '^$$' -bench ExportCheck -benchtime 3x ./verify/nfscheck
	./scripts/bench-initrd.sh
	NROOT_E2E_SUITES=bookworm $(GO) test -tags e2e -count=1 -timeout 40m -v -run NodeBootsOverNFS ./e2e > bench-e2e.log 2>&1; s=$$?; grep -E 'stage |timings' bench-e2e.log; exit $$s
	$(MAKE) bench-boot
	$(MAKE) storm STORM_CLIENTS=1,10,50,100 STORM_OUT=$(CURDIR)/bench-storm
	@echo "== summary: each ratio beside its goal (docs/bench.md)"; cat $(BENCH_SUMMARY); \
	  for g in "node stage:<= 0.15x the seed's way" "boot storm:per-call p99 and per-boot completion"; do \
	    grep -q "^$${g%%:*}:" $(BENCH_SUMMARY) || echo "$${g%%:*}: not measured by make bench yet (goal $${g#*:})"; done

# Boot time to multi-user, side by side in one QEMU: the seed's way
# (mmdebstrap, scripts/seed-node.sh, a read-write NFS root) and nroot's
# image (nroot bootstrap and node, its overlay root), bookworm important
# (docs/bench.md). NROOT_BOOTTIME_RUNS=N boots each N times, alternating.
bench-boot: deps
	$(GO) test -tags e2e -count=1 -timeout 120m -v -run TestBootTimeSideBySide ./e2e > bench-boot.log 2>&1; s=$$?; \
	  grep -E '^boot time|^  (nroot|seed)|stage |FAIL|boot-.*: root=' bench-boot.log; exit $$s

# The full boot storm docs/storm.md reports: a recorded boot of each NFS mode
# replayed by 1 to 500 concurrent clients, and the image over HTTP, direct
# and through a caching nginx (results, table, plot and the recorded working sets in docs/storm/).
STORM_CLIENTS ?= 1,10,50,100,200,500
STORM_OUT ?= $(CURDIR)/docs/storm
# STORM_VALIDATE real nodes boot at once in each NFS mode, beside the
# replay of as many clients (docs/storm.md, "The model against real nodes").
STORM_VALIDATE ?= 3
# The node: STORM_SUITE (bookworm) with STORM_INITRD (full or small).
STORM_SUITE ?= bookworm
STORM_INITRD ?= full
storm: deps
	mkdir -p $(STORM_OUT)
	NROOT_STORM_CLIENTS=$(STORM_CLIENTS) NROOT_STORM_OUT=$(STORM_OUT) NROOT_STORM_VALIDATE=$(STORM_VALIDATE) \
	  NROOT_STORM_SUITE=$(STORM_SUITE) NROOT_STORM_INITRD=$(STORM_INITRD) $(GO) test -tags e2e -count=1 -timeout 180m -v -run TestBootStorm ./e2e > $(STORM_OUT)/log.txt 2>&1; s=$$?; \
	  grep -E 'stage |recorded|RPCs per boot|streams| clients:|origin sent|ganesha idle' $(STORM_OUT)/log.txt; cat $(STORM_OUT)/table.txt 2>/dev/null; exit $$s

# The storm's model against 3 real nodes, and the replay of 3 clients
# alone: about 20 minutes.
storm-validate:
	$(MAKE) storm STORM_CLIENTS=3 STORM_OUT=$(CURDIR)/storm-validate

# The resolver and bootstrap against mmdebstrap for Debian's stable and
# oldstable and Ubuntu's two LTS releases, minbase, important and standard
# (slow).
compare: deps
	NROOT_COMPARE_SUITES=bookworm,trixie,noble,jammy NROOT_COMPARE_VARIANTS=minbase,important,standard $(GO) test -count=1 -timeout 90m -run Mmdebstrap -v ./build/apt ./build/rootfs

# Foreign-architecture bootstraps, Ubuntu's from the ports archive, which
# must answer from this machine.
foreign: deps
	NROOT_TEST_UBUNTU_PORTS=1 $(GO) test -count=1 -timeout 30m -run ForeignArchitecture -v ./build/rootfs

# The whole mission: bootstrap, node, initrd verify, ganesha export,
# export check, and QEMU boots of the root as images at once (trixie: squashfs
# over NFSv4 and over HTTP; noble: those and erofs over HTTP);
# and bookworm as a cluster on a network of its own (TestClusterNetwork): a namespace
# with a bridge, nroot's dnsmasq.conf as the only DHCP and TFTP server,
# Debian's stock nginx.conf with nroot's block (www-data workers) and
# nroot's caching tier, nfs-ganesha on the bridge; three nodes (one UEFI
# by OVMF and ipxe.efi) booting at once, a generation across a kernel ABI
# booted alone, a rollback, and the squashfs image over NFS and over HTTP.
# e2e-full adds bookworm and trixie minbase, and boots every suite's tree
# too (CI's time is kept under 45 minutes); e2e-net runs the cluster alone.
E2E_TESTS = ProbeFailsClosed|IdentityReachable|NodeBootsOverNFS|PackedInitrdBoots|InitramfsToolsListing|ClusterNetwork
e2e: deps
	$(GO) test -tags e2e -count=1 -timeout 80m -v -run "$(E2E_TESTS)" ./e2e

e2e-full: deps
	NROOT_E2E_SUITES=trixie,noble,bookworm/minbase,trixie/minbase NROOT_E2E_MODES=tree,nfs-squashfs,http-squashfs,http-erofs $(GO) test -tags e2e -count=1 -timeout 100m -v -run "$(E2E_TESTS)" ./e2e

e2e-net: deps
	$(GO) test -tags e2e -count=1 -timeout 60m -v -run TestClusterNetwork ./e2e

# Manual pages, one per command, from the help text (man/).
man: build
	./bin/nroot man man
	@echo "man: $$(ls man | wc -l) pages in man/ (man -l man/nroot.1)"

# Release binaries (static, version-stamped), man pages, completions and
# SHA256SUMS in dist/; reproducible: a second run gives the same bytes.
dist:
	./scripts/dist.sh

clean:
	rm -rf bin man dist
