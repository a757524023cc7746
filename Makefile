# nroot: build, test and benchmark. Every target installs what it needs.
GO      ?= go
export PATH := $(PATH):/usr/local/go/bin
export GOTOOLCHAIN ?= auto
FUZZTIME ?= 10s
SUITE   ?= stable
VARIANT ?= important

.PHONY: all build deps run test unit fuzz bench compare clean

all: build

build:
	$(GO) build -o bin/nroot ./cmd/nroot

deps:
	./scripts/deps.sh

# The main job on defaults.
run: deps build
	./bin/nroot resolve --variant=$(VARIANT) $(SUITE)

# Every test: vet, unit and integration tests against the real archive and
# tools, then each fuzz target for FUZZTIME.
test: deps unit fuzz

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Speeds the issues name: Packages parse and resolve of trixie minbase.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./apt

# The resolver against mmdebstrap for every priority variant (slow).
compare: deps
	NROOT_COMPARE_VARIANTS=minbase,important,standard $(GO) test -count=1 -timeout 60m -run Mmdebstrap -v ./apt

clean:
	rm -rf bin
