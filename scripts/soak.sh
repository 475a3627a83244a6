#!/usr/bin/env bash
# Soak (`make soak`): SOAK_RUNS sequential `ctr run --rm` of a hello in one
# long-lived shim (a pod's: a sleeping member, grouped by the
# io.kubernetes.cri.sandbox-id annotation, keeps it alive once the member
# that started it is gone), on each daemon.
# The shim's open file descriptors, threads and RSS are sampled after a
# warm-up and every SOAK_EVERY runs; the run fails if they grow (test/load_test.go,
# TestSoakLong). Prints the table and writes SOAK.md.
#
# Needs root, both daemons (scripts/containerd.sh install) and our binaries
# in $ENARX_BIN_DIR (default bin/, `make build`). Settings:
#
#   SOAK_RUNS=1000       runs per daemon
#   SOAK_EVERY=100       runs between two samples
#   SOAK_DAEMON=all      all, containerd-1.6 or containerd-2.4
#   SOAK_REPORT=SOAK.md  where the figures go
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}
export ENARX_BIN_DIR=${ENARX_BIN_DIR:-$root/bin}
export SOAK_RUNS=${SOAK_RUNS:-1000}
export SOAK_EVERY=${SOAK_EVERY:-100}
export SOAK_DAEMON=${SOAK_DAEMON:-all}
report=${SOAK_REPORT:-$root/SOAK.md}
case $report in /*) ;; *) report=$root/$report ;; esac
export SOAK_REPORT=$report

for b in containerd-shim-enarx-v1 enarx-shim enarx-keep enarx; do
	if [ ! -x "$ENARX_BIN_DIR/$b" ]; then
		echo "soak: $ENARX_BIN_DIR/$b is missing: run make build (or set ENARX_BIN_DIR)" >&2
		exit 1
	fi
done

eval "$(scripts/containerd.sh env)"

echo "== soak (SOAK_RUNS=$SOAK_RUNS SOAK_EVERY=$SOAK_EVERY SOAK_DAEMON=$SOAK_DAEMON)"
"$GO" test -count=1 -run '^TestSoakLong$' -timeout 180m ./test/
echo
sed -n '/^## /,$p' "$report"
echo "wrote $report"
