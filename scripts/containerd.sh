#!/usr/bin/env bash
# containerd.sh: the containerd daemons the end-to-end tests (package test) run against.
#
#   scripts/containerd.sh install   ensure Debian's containerd 1.6 + runc and a
#                                   containerd 2.4.2 + ctr + containerd-shim-runc-v2
#                                   built from its Go module
#                                   and the CNI plugins the pod-network tests use
#                                   (loopback, ptp, host-local), built the same way
#                                   and the real clients the client tests drive:
#                                   dockerd v2.0.0-beta.24 (moby's module) and
#                                   nerdctl v2.2.2 (its source from the module proxy)
#   scripts/containerd.sh env       print shell exports ENARX_CONTAINERD16, ENARX_CTR16,
#                                   ENARX_CONTAINERD2, ENARX_CTR2, ENARX_CNI_BIN,
#                                   ENARX_DOCKERD, ENARX_DOCKER (the docker CLI found
#                                   on PATH, empty when there is none), ENARX_NERDCTL
#
# 2.4 needs its own containerd-shim-runc-v2: Debian's (1.6) reads 2.4's
# bootstrap parameters on stdin as runtime options and fails. The tests put
# the directory of ENARX_CONTAINERD2 on that daemon's PATH.
#
# The 2.4.2 binaries go to $ENARX_CONTAINERD2_DIR, default
# ${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}/containerd-v2.4.2.
set -euo pipefail

CONTAINERD2_VERSION=v2.4.2
CACHE_ROOT="${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}"
CONTAINERD2_DIR="${ENARX_CONTAINERD2_DIR:-$CACHE_ROOT/containerd-$CONTAINERD2_VERSION}"
CNI_VERSION=v1.10.0
CNI_DIR="${ENARX_CNI_BIN:-$CACHE_ROOT/cni-plugins-$CNI_VERSION}"
CNI_PLUGINS=(plugins/main/loopback plugins/main/ptp plugins/ipam/host-local)
DOCKERD_VERSION=v2.0.0-beta.24
DOCKERD_DIR="${ENARX_DOCKERD_DIR:-$CACHE_ROOT/dockerd-$DOCKERD_VERSION}"
NERDCTL_VERSION=v2.2.2
NERDCTL_DIR="${ENARX_NERDCTL_DIR:-$CACHE_ROOT/nerdctl-$NERDCTL_VERSION}"

log() { echo "containerd.sh: $*" >&2; }

install_debian() {
	if [[ -x /usr/bin/containerd && -x /usr/bin/ctr ]] && command -v runc >/dev/null 2>&1; then
		log "containerd $(/usr/bin/containerd --version | awk '{print $3}') and runc already installed"
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "installing containerd and runc with apt-get needs root"
		exit 1
	fi
	log "installing containerd and runc from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y containerd runc
}

install_containerd2() {
	if [[ -x $CONTAINERD2_DIR/containerd && -x $CONTAINERD2_DIR/ctr && -x $CONTAINERD2_DIR/containerd-shim-runc-v2 ]]; then
		log "containerd $CONTAINERD2_VERSION already built in $CONTAINERD2_DIR"
		return
	fi
	if ! command -v go >/dev/null 2>&1; then
		log "go is not on PATH; it is needed to build containerd $CONTAINERD2_VERSION"
		exit 1
	fi
	log "building containerd $CONTAINERD2_VERSION into $CONTAINERD2_DIR (about 2 minutes cold)"
	mkdir -p "$CONTAINERD2_DIR"
	# Build outside our module, so its go.mod plays no part.
	local tmp
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && GOBIN="$CONTAINERD2_DIR" GOFLAGS= GO111MODULE=on go install \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD2_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD2_VERSION"); then
		rm -rf "$tmp"
		log "building containerd $CONTAINERD2_VERSION failed"
		exit 1
	fi
	rm -rf "$tmp"
	log "built $("$CONTAINERD2_DIR/containerd" --version)"
}

# install_cni builds the CNI plugins a pod network needs in the tests:
# loopback (the CRI plugin always sets up lo), ptp (the pod's eth0, a veth
# whose other end is in the node's network namespace, which the tests make
# for the daemon) and host-local (its address).
install_cni() {
	local missing=0 p
	for p in "${CNI_PLUGINS[@]}"; do
		[[ -x $CNI_DIR/${p##*/} ]] || missing=1
	done
	if [[ $missing -eq 0 ]]; then
		log "CNI plugins $CNI_VERSION already built in $CNI_DIR"
		return
	fi
	log "building CNI plugins $CNI_VERSION into $CNI_DIR (about 20 seconds cold)"
	mkdir -p "$CNI_DIR"
	local tmp pkgs=()
	tmp=$(mktemp -d)
	for p in "${CNI_PLUGINS[@]}"; do
		pkgs+=("github.com/containernetworking/plugins/$p@$CNI_VERSION")
	done
	if ! (cd "$tmp" && GOBIN="$CNI_DIR" GOFLAGS= GO111MODULE=on go install "${pkgs[@]}"); then
		rm -rf "$tmp"
		log "building CNI plugins $CNI_VERSION failed"
		exit 1
	fi
	rm -rf "$tmp"
}

need_go() {
	if ! command -v go >/dev/null 2>&1; then
		log "go is not on PATH; it is needed to build $1"
		exit 1
	fi
}

# install_dockerd builds moby's daemon from its Go module (about 5 CPU-minutes
# cold). The docker CLI is not built: the tests use the one on PATH.
install_dockerd() {
	if [[ -x $DOCKERD_DIR/dockerd ]]; then
		log "dockerd $DOCKERD_VERSION already built in $DOCKERD_DIR"
		return
	fi
	need_go "dockerd $DOCKERD_VERSION"
	log "building dockerd $DOCKERD_VERSION into $DOCKERD_DIR (about 5 CPU-minutes cold)"
	mkdir -p "$DOCKERD_DIR"
	local tmp
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && GOBIN="$DOCKERD_DIR" GOFLAGS=-buildvcs=false GO111MODULE=on go install \
		"github.com/moby/moby/v2/cmd/dockerd@$DOCKERD_VERSION"); then
		rm -rf "$tmp"
		log "building dockerd $DOCKERD_VERSION failed"
		exit 1
	fi
	rm -rf "$tmp"
}

# install_nerdctl builds nerdctl from its source: the module proxy serves the
# zip, but `go install` refuses the module (its go.mod has replace
# directives). cmd/nerdctl/helpers/testing_linux.go is test support that
# needs a replaced directory the zip lacks, so it is left out.
install_nerdctl() {
	if [[ -x $NERDCTL_DIR/nerdctl ]]; then
		log "nerdctl $NERDCTL_VERSION already built in $NERDCTL_DIR"
		return
	fi
	need_go "nerdctl $NERDCTL_VERSION"
	log "building nerdctl $NERDCTL_VERSION into $NERDCTL_DIR (about 2 CPU-minutes cold)"
	mkdir -p "$NERDCTL_DIR"
	local tmp src
	tmp=$(mktemp -d)
	if ! src=$(cd "$tmp" && GOFLAGS= GO111MODULE=on go mod download -json \
		"github.com/containerd/nerdctl/v2@$NERDCTL_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || [[ -z $src ]]; then
		rm -rf "$tmp"
		log "downloading nerdctl $NERDCTL_VERSION failed"
		exit 1
	fi
	cp -r "$src" "$tmp/nerdctl"
	chmod -R u+w "$tmp/nerdctl"
	rm -f "$tmp/nerdctl/cmd/nerdctl/helpers/testing_linux.go"
	if ! (cd "$tmp/nerdctl" && GOFLAGS=-buildvcs=false GO111MODULE=on go build \
		-o "$NERDCTL_DIR/nerdctl" ./cmd/nerdctl); then
		rm -rf "$tmp"
		log "building nerdctl $NERDCTL_VERSION failed"
		exit 1
	fi
	rm -rf "$tmp"
}

print_env() {
	printf 'export ENARX_CONTAINERD16=%q\n' /usr/bin/containerd
	printf 'export ENARX_CTR16=%q\n' /usr/bin/ctr
	printf 'export ENARX_CONTAINERD2=%q\n' "$CONTAINERD2_DIR/containerd"
	printf 'export ENARX_CTR2=%q\n' "$CONTAINERD2_DIR/ctr"
	printf 'export ENARX_CNI_BIN=%q\n' "$CNI_DIR"
	printf 'export ENARX_DOCKERD=%q\n' "$DOCKERD_DIR/dockerd"
	printf 'export ENARX_DOCKER=%q\n' "$(command -v docker || true)"
	printf 'export ENARX_NERDCTL=%q\n' "$NERDCTL_DIR/nerdctl"
}

case "${1:-}" in
install)
	install_debian
	install_containerd2
	install_cni
	install_dockerd
	install_nerdctl
	;;
env)
	print_env
	;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
