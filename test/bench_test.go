package test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCtrRun measures `ctr run --rm` of hello.wasm through our shim
// against a static native hello through runc, on each daemon, in the same
// run. It reports the median in ms (and the ratio to runc on the enarx line).
//
//	go test -run '^$' -bench CtrRun -benchtime 15x ./test/
func BenchmarkCtrRun(b *testing.B) {
	for _, kind := range daemonKinds {
		b.Run(string(kind), func(b *testing.B) {
			d := sharedDaemon(b, kind)
			requireRuncShim(b, d)
			ns := newNamespace(b, d)
			wasmRef := importWasmImage(b, d, ns, "docker.io/enarx-bench/hello:latest", buildGoWasm(b, "hello"), false)
			nativeRef := importNativeImage(b, d, ns, "docker.io/enarx-bench/native:latest", buildNative(b, "nativehello"))
			var runcMedian float64
			for _, c := range []struct{ name, runtime, ref string }{
				{"runc-native", runtimeRunc, nativeRef},
				{"enarx-wasm", runtimeEnarx, wasmRef},
			} {
				b.Run(c.name, func(b *testing.B) {
					var times []float64
					for i := 0; i < b.N; i++ {
						began := time.Now()
						_, stderr, exit, err := d.exec(b.Context(), "", ns, defaultCtrTimeout,
							"run", "--rm", "--runtime", c.runtime, c.ref, uniqueID("bench"))
						if err != nil || exit != 0 {
							b.Fatalf("ctr run: exit %d, %v: %s", exit, err, stderr)
						}
						times = append(times, float64(time.Since(began).Microseconds())/1000)
					}
					m := median(times)
					b.ReportMetric(m, "median-ms")
					if c.runtime == runtimeRunc {
						runcMedian = m
					} else if runcMedian > 0 {
						b.ReportMetric(m/runcMedian, "x-runc")
					}
				})
			}
		})
	}
}

// BenchmarkIdleRSS reports the resident memory of the shim and of the Keep
// of one idle (sleeping) hello-sized Go workload.
//
//	go test -run '^$' -bench IdleRSS -benchtime 1x ./test/
func BenchmarkIdleRSS(b *testing.B) {
	for _, kind := range daemonKinds {
		b.Run(string(kind), func(b *testing.B) {
			d := sharedDaemon(b, kind)
			ns := newNamespace(b, d)
			ref := importWasmImage(b, d, ns, "docker.io/enarx-bench/sleep:latest", buildGoWasm(b, "sleep"), false)
			for i := 0; i < b.N; i++ {
				id := uniqueID("rss")
				if _, stderr, exit, err := d.exec(b.Context(), "", ns, defaultCtrTimeout, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h"); err != nil || exit != 0 {
					b.Fatalf("ctr run -d: exit %d, %v: %s", exit, err, stderr)
				}
				time.Sleep(time.Second)
				keepPID := 0
				for _, line := range readLines(d.mustCtr(b, ns, "tasks", "ls")) {
					if f := strings.Fields(line); len(f) == 3 && f[0] == id {
						keepPID, _ = strconv.Atoi(f[1])
					}
				}
				if keepPID == 0 {
					b.Fatalf("no Keep PID for %s", id)
				}
				b.ReportMetric(float64(rssKB(b, parentPID(keepPID))), "shim-rss-kB")
				b.ReportMetric(float64(rssKB(b, keepPID)), "keep-rss-kB")
				d.mustCtr(b, ns, "tasks", "kill", "-s", "SIGKILL", id)
				for taskStatus(b, d, ns, id) != "STOPPED" {
					time.Sleep(20 * time.Millisecond)
				}
				d.mustCtr(b, ns, "tasks", "rm", id)
				d.mustCtr(b, ns, "containers", "rm", id)
			}
		})
	}
}

func rssKB(t testing.TB, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
