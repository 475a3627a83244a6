#!/usr/bin/env bash
# Benchmarks, each against a peer measured in the same run (`make bench`):
# start-up (`ctr run --rm`, cold and warm module cache, against runc and a
# do-nothing shim), a component against the core module it was made from
# (start-up and CPU), memory per idle container, the engine on CPU-bound work
# against wazero and native, 100 concurrent containers, an HTTPS server in a
# Keep (TLS terminated by the Keep), with one instance and with one per core,
# against the same Go server native with Go TLS (requests/s keep-alive,
# handshakes/s, CPU-heavy requests/s, p99 latency), and the attestation
# verifier. Prints the table and writes BENCHMARKS.md, and PHASES.md: where
# the time of one warm `ctr run --rm` goes (BenchmarkStartupPhases).
#
# Needs root, both daemons (scripts/containerd.sh install) and our binaries
# in $ENARX_BIN_DIR (default bin/, `make build`). Settings:
#
#   BENCH_RUNS=20          runs per start-up case
#   BENCH_PHASE_RUNS=10    traced runs per case of the start-up phases
#   BENCH_ENGINE_RUNS=5    runs per engine and workload
#   BENCH_CONCURRENCY=100  parallel `ctr run`s in the throughput benchmark
#   BENCH_TLS_CLIENTS=1,8  client counts of the TLS server benchmark
#   BENCH_TLS_SECONDS=5    seconds of load per TLS server case
#   BENCH_FILTER=.         go test -bench pattern for the end-to-end benchmarks
#   BENCH_REPORT=BENCHMARKS.md  where the report goes
#   BENCH_OUT=FILE         keep the raw results (JSON lines) there
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
GO=${GO:-go}
export ENARX_BIN_DIR=${ENARX_BIN_DIR:-$root/bin}
export BENCH_RUNS=${BENCH_RUNS:-20}
export BENCH_ENGINE_RUNS=${BENCH_ENGINE_RUNS:-5}
export BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-100}
export BENCH_TLS_CLIENTS=${BENCH_TLS_CLIENTS:-1,8}
export BENCH_TLS_SECONDS=${BENCH_TLS_SECONDS:-5}
filter=${BENCH_FILTER:-.}
report=${BENCH_REPORT:-$root/BENCHMARKS.md}
case $report in /*) ;; *) report=$root/$report ;; esac

for b in containerd-shim-enarx-v1 enarx-shim enarx-keep enarx; do
	if [ ! -x "$ENARX_BIN_DIR/$b" ]; then
		echo "bench: $ENARX_BIN_DIR/$b is missing: run make build (or set ENARX_BIN_DIR)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/enarx-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export BENCH_OUT=${BENCH_OUT:-$tmp/results.jsonl}
: >"$BENCH_OUT"

eval "$(scripts/containerd.sh env)"
eval "$(scripts/jco.sh env)" # the component benchmark's components

echo "== attestation verifier"
"$GO" test -run '^$' -bench . -benchtime 2s -cpu 1 ./attestation/verify | tee "$tmp/verify.txt"
# "BenchmarkVerifySNP   12345   96789 ns/op ..." -> one JSON line per benchmark.
awk '/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) if ($(i + 1) == "ns/op")
		printf "{\"group\":\"verify\",\"case\":\"%s\",\"unit\":\"ns/op\",\"n\":%d,\"median\":%s,\"failures\":0}\n", name, $2, $i
}' "$tmp/verify.txt" >>"$BENCH_OUT"

echo "== end to end (BENCH_RUNS=$BENCH_RUNS BENCH_ENGINE_RUNS=$BENCH_ENGINE_RUNS BENCH_CONCURRENCY=$BENCH_CONCURRENCY BENCH_TLS_CLIENTS=$BENCH_TLS_CLIENTS BENCH_TLS_SECONDS=$BENCH_TLS_SECONDS)"
"$GO" test -count=1 -run '^$' -bench "$filter" -benchtime 1x -timeout 60m ./test/

# Where a warm start's time goes (PHASES.md, beside the report): traced runs on
# daemons at log level debug, for the shim's own timings.
case $filter in
. | *Phases*)
	echo "== start-up phases"
	ENARX_E2E_DEBUG=1 BENCH_PHASES=$(dirname "$report")/PHASES.md "$GO" test -count=1 -run '^$' -bench 'StartupPhases' -benchtime 1x -timeout 20m ./test/ >/dev/null
	;;
esac

BENCH_REPORT=$report "$GO" test -count=1 -run '^TestBenchReport$' ./test/ >/dev/null
echo
sed -n '/^## Results/,/^## Method/{/^## Method/d;p}' "$report"
echo "wrote $report"
