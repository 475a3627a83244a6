#!/usr/bin/env bash
# jco.sh: jco, the Bytecode Alliance's JavaScript component toolchain, which the
# tests use to make WebAssembly components (wasi:cli/command) from the project's
# Go wasip1 fixtures (`jco new core.wasm --wasi-command`) without a Rust or
# wasm32-wasip2 toolchain. No component is committed: they are made at test time.
#
#   scripts/jco.sh install   ensure @bytecodealliance/jco in $ENARX_JCO_DIR
#                            (npm install, about 340 MB, works offline from npm's cache)
#   scripts/jco.sh env       print the shell export ENARX_JCO (the jco command)
#
# ENARX_JCO_DIR defaults to ${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}/jco-1.35.0.
# Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail

JCO_VERSION=1.35.0
CACHE_ROOT="${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}"
JCO_DIR="${ENARX_JCO_DIR:-$CACHE_ROOT/jco-$JCO_VERSION}"
JCO_BIN="$JCO_DIR/node_modules/.bin/jco"

log() { echo "jco.sh: $*" >&2; }

install_jco() {
	if [[ -x $JCO_BIN ]]; then
		log "jco $JCO_VERSION already installed in $JCO_DIR"
		return
	fi
	if ! command -v npm >/dev/null 2>&1; then
		log "npm is not on PATH; it is needed to install jco $JCO_VERSION (Debian: apt-get install nodejs npm)"
		exit 1
	fi
	log "installing jco $JCO_VERSION into $JCO_DIR"
	mkdir -p "$(dirname "$JCO_DIR")"
	# Into a temporary directory first: an interrupted install leaves no
	# half-made $JCO_DIR that the check above would take for done.
	local tmp
	tmp=$(mktemp -d "$JCO_DIR.tmp.XXXXXX")
	if ! npm install --prefix "$tmp" --no-audit --no-fund "@bytecodealliance/jco@$JCO_VERSION" >&2; then
		rm -rf "$tmp"
		log "npm install @bytecodealliance/jco@$JCO_VERSION failed"
		exit 1
	fi
	rm -rf "$JCO_DIR"
	mv "$tmp" "$JCO_DIR"
	"$JCO_BIN" --version >/dev/null
}

print_env() {
	if [[ ! -x $JCO_BIN ]]; then
		log "jco is not installed in $JCO_DIR: run scripts/jco.sh install"
		exit 1
	fi
	printf 'export ENARX_JCO=%q\n' "$JCO_BIN"
}

case "${1:-}" in
install) install_jco ;;
env) print_env ;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
