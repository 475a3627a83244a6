#!/usr/bin/env bash
# make fuzz: a short run of each fuzz target (FUZZTIME each), "Name:./pkg" in FUZZ_TARGETS.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime expires while a worker is busy (golang/go#75804,
# fixed in Go 1.27). Such a run found nothing: a real failure writes its input
# to the package's testdata/fuzz/NAME/. A run that ends that way without a new
# input is run once more, and counted as that flake, not as a failure, if it
# ends the same way again. Any other failure fails.
set -uo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
failed=0
flaked=0
passed=0
corpus() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort; }
for t in ${FUZZ_TARGETS:?}; do
	name=${t%%:*} pkg=${t#*:}
	for attempt in 1 2; do
		echo "fuzz $name ($FUZZTIME)"
		before=$(corpus "$pkg" "$name")
		out=$("$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 100ms "$pkg" 2>&1)
		status=$?
		echo "$out" | tail -n 20
		if [ $status -eq 0 ]; then
			passed=$((passed + 1))
			break
		fi
		if [ "$(corpus "$pkg" "$name")" = "$before" ] && echo "$out" | grep -qx '    context deadline exceeded'; then
			if [ $attempt -eq 1 ]; then
				echo "fuzz $name: stopped by Go's fuzztime race (golang/go#75804), no failing input: once more"
				continue
			fi
			echo "fuzz $name: the fuzztime race again, and again no failing input: counted as that flake"
			flaked=$((flaked + 1))
			break
		fi
		echo "fuzz $name: FAILED (a failing input is in $pkg/testdata/fuzz/$name)"
		failed=$((failed + 1))
		break
	done
done
echo "fuzz: $passed passed, $failed failed, $flaked flaked"
[ $failed -eq 0 ]
