# containerd-shim-enarx
#
#   make demo     run a WebAssembly module in a Keep through a real containerd, end to end
#   make test     unit and end-to-end tests (installs containerd 1.6 and builds 2.4.2 if missing)
#   make build    bin/containerd-shim-enarx-v1, bin/enarx-shim, bin/enarx-keep, bin/enarx and bin/reference-values.json
#   make install  put the binaries in $(PREFIX)/bin, the reference values in $(PREFIX)/share/enarx
#   make bench    benchmarks against peers measured in the same run
#   make soak     1,000 containers one after another in one long-lived shim, checked for leaks

GO      ?= go
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
REVISION ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
PKG     := github.com/enarx/containerd-shim-enarx
LDFLAGS := -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Revision=$(REVISION) -X main.version=$(VERSION)
BIN     := $(CURDIR)/bin

.PHONY: all build install test unit e2e lint demo deps bench soak fuzz clean

all: build

# The shim, which containerd executes for every container (start and delete:
# containerd-shim-enarx-v1, the launcher; its server: enarx-shim), is static
# and without cgo: no dynamic loader, no engine. The Keep's
# runtime binary, enarx-keep, links wasmtime through cgo, statically too: the
# dynamic loader's work was 1.5-2.5 ms of every Keep's start here. It resolves
# names with Go's resolver (netgo) and users with Go's (osusergo); the linker's
# warnings about getaddrinfo and dlopen are of code in wasmtime's library that
# a Keep never calls (WASI preview 2 name lookup, which Keeps do not offer, and
# VTune's JIT profiling). Its digest is the runtime measurement in the
# reference values.
KEEP_LDFLAGS = $(LDFLAGS) -linkmode external -extldflags "-static"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/containerd-shim-enarx-v1 ./cmd/containerd-shim-enarx-v1
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/enarx-shim ./cmd/enarx-shim
	$(GO) build -trimpath -tags netgo,osusergo -ldflags '$(KEEP_LDFLAGS)' -o $(BIN)/enarx-keep ./cmd/enarx-keep
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/enarx ./cmd/enarx
	$(BIN)/enarx reference-values --version $(VERSION) -o $(BIN)/reference-values.json $(BIN)/enarx-keep

install: build
	install -D -m 0755 $(BIN)/enarx-shim $(DESTDIR)$(PREFIX)/bin/enarx-shim
	install -D -m 0755 $(BIN)/containerd-shim-enarx-v1 $(DESTDIR)$(PREFIX)/bin/containerd-shim-enarx-v1
	install -D -m 0755 $(BIN)/enarx-keep $(DESTDIR)$(PREFIX)/bin/enarx-keep
	install -D -m 0755 $(BIN)/enarx $(DESTDIR)$(PREFIX)/bin/enarx
	install -D -m 0644 $(BIN)/reference-values.json $(DESTDIR)$(PREFIX)/share/enarx/reference-values.json

# The daemons the end-to-end tests run against: Debian's containerd 1.6 (apt-get)
# and containerd 2.4.2 built from its Go module into ~/.cache/containerd-shim-enarx,
# and jco (npm), which makes the WebAssembly components the tests run.
deps:
	scripts/containerd.sh install
	scripts/jco.sh install

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@big=$$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' -- 2>/dev/null | awk '$$1 > 2097152'); \
	if [ -n "$$big" ]; then echo "tracked files over 2 MB (bytes, path); build outputs belong in bin/, see .gitignore:"; echo "$$big"; exit 1; fi
	$(GO) vet ./...

test: deps build lint
	eval "$$(scripts/containerd.sh env)" && eval "$$(scripts/jco.sh env)" && ENARX_BIN_DIR=$(BIN) $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# A short run of each fuzz target over parsers of untrusted input (21 targets, 4 to 5.5 minutes);
# FUZZTIME=5m for a long one. A crasher lands in the package's testdata/fuzz/ and is a seed from then on.
# Minimizing is cut short: the seeds are KiB-sized evidence, and minimizing them would fill a short run.
# scripts/fuzz.sh tells Go 1.26's fuzztime race (golang/go#75804) from a failure.
FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzParseEvidence:./attestation FuzzVerifyBlob:./attestation/verify FuzzParseCSR:./attestation/steward FuzzCSREvidence:./attestation/steward \
	FuzzVerifyPolicy:./attestation/verify FuzzReferenceValues:./attestation/verify FuzzStewardConfig:./attestation/steward \
	FuzzParseEnarxTOML:./oci FuzzSocketAnnotations:./oci FuzzResolveSpec:./oci FuzzWasmManifest:./oci \
	FuzzKeepConfig:./keep FuzzPolicy:./keep/nodepolicy FuzzModuleCacheEntry:./keep/guest FuzzSpecValidate:./keep/sockets/socketspec \
	FuzzRuntimeOptions:./shim FuzzTaskRequest:./shim FuzzTLSConfig:./tlssock FuzzBootstrapParams:./shim/launcher \
	FuzzThread:./keep/wasmtime/jumpthread FuzzThreadDispatch:./keep/wasmtime/jumpthread
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

# Benchmarks, each against a peer measured in the same run.
# BENCH_RUNS (default 20) and the other settings are in scripts/bench.sh; it writes BENCHMARKS.md.
bench: deps build
	GO=$(GO) ENARX_BIN_DIR=$(BIN) scripts/bench.sh

# A long soak: SOAK_RUNS (default 1000) sequential `ctr run --rm` in one shim
# on each daemon, its open fds, threads and RSS sampled every SOAK_EVERY (100)
# runs; fails on growth. Settings in scripts/soak.sh; it writes SOAK.md.
soak: deps build
	GO=$(GO) ENARX_BIN_DIR=$(BIN) scripts/soak.sh

unit: lint
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

demo: build
	scripts/demo.sh

clean:
	rm -rf $(BIN)
