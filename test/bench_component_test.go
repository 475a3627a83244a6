package test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// groupComponent is the component benchmark's group: the same Go hello as
// a core module and as a wasi:cli/command component (jco new), warm module
// cache, measured in the same run.
const groupComponent = "component"

// Cases of the component benchmark.
const (
	caseCoreModule = "core-module"
	caseComponent  = "component"
)

// BenchmarkComponent compares a component with the core module it was made
// from (test/fixtures/hello, lifted with `jco new --wasi-command`), both from
// a warm module cache, BENCH_RUNS times each, interleaved:
//
//   - start: `ctr run --rm` wall time on each daemon (param "ctr-run");
//   - enarx run: wall time and CPU (utime + stime of enarx and its Keep,
//     from wait4) of `enarx run` on this machine (params "enarx-run" and
//     "enarx-run-cpu").
func BenchmarkComponent(b *testing.B) {
	runs := envInt(b, envBenchRuns, 20)
	core := buildGoWasm(b, "hello")
	component := buildComponent(b, "hello")
	for _, kind := range daemonKinds {
		b.Run(string(kind), func(b *testing.B) {
			d := sharedDaemon(b, kind)
			ns := newNamespace(b, d)
			refs := map[string]string{
				caseCoreModule: importWasmImage(b, d, ns, "docker.io/enarx-bench/hello:latest", core, false),
				caseComponent:  importWasmImage(b, d, ns, "docker.io/enarx-bench/hello-component:latest", component, false),
			}
			warm := moduleCachePolicy(b, filepath.Join(benchDir(b), "warm"))
			args := func(c string) []string {
				return []string{"run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", warm, refs[c], uniqueID("bench")}
			}
			cases := []string{caseCoreModule, caseComponent}
			for _, c := range cases { // fill the cache, unmeasured
				timedCtr(b, d, ns, "Hello from a Keep!", args(c)...)
			}
			samples := map[string][]float64{}
			for i := 0; i < runs; i++ {
				for _, c := range cases {
					samples[c] = append(samples[c], timedCtr(b, d, ns, "Hello from a Keep!", args(c)...))
				}
			}
			for _, c := range cases {
				record(b, sampled(benchResult{Group: groupComponent, Daemon: d.Name, Case: c, Param: "ctr-run", Unit: "ms"}, samples[c]))
			}
		})
	}
	b.Run("enarx-run", func(b *testing.B) {
		bin := requireBinaries(b)
		cache := filepath.Join(benchDir(b), "enarx-run-cache")
		files := map[string]string{caseCoreModule: core, caseComponent: component}
		run := func(c string) (wall, cpu float64) {
			cmd := exec.Command(filepath.Join(bin, enarxBinary), "run", "--module-cache", cache, files[c])
			began := time.Now()
			out, err := cmd.CombinedOutput()
			wall = msSince(began)
			if err != nil || !strings.Contains(string(out), "Hello from a Keep!") {
				b.Fatalf("enarx run %s: %v\n%s", files[c], err, out)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			cpu = float64(ru.Utime.Usec+ru.Stime.Usec)/1000 + float64(ru.Utime.Sec+ru.Stime.Sec)*1000
			return wall, cpu
		}
		cases := []string{caseCoreModule, caseComponent}
		for _, c := range cases {
			run(c)
		}
		wall, cpu := map[string][]float64{}, map[string][]float64{}
		for i := 0; i < runs; i++ {
			for _, c := range cases {
				w, u := run(c)
				wall[c] = append(wall[c], w)
				cpu[c] = append(cpu[c], u)
			}
		}
		for _, c := range cases {
			record(b, sampled(benchResult{Group: groupComponent, Case: c, Param: "enarx-run", Unit: "ms"}, wall[c]))
			record(b, sampled(benchResult{Group: groupComponent, Case: c, Param: "enarx-run-cpu", Unit: "ms"}, cpu[c]))
		}
	})
}

// componentRows are the component benchmark's rows of the report.
func componentRows(results []benchResult) []benchRow {
	var rows []benchRow
	row := func(sec, measure string, core, comp benchResult) benchRow {
		return benchRow{section: sec, measure: measure, ours: fmtMs(comp), peer: fmtMs(core),
			ratio: fmt.Sprintf("%.2f×", comp.Median/core.Median)}
	}
	for _, kind := range daemonKinds {
		core, ok1 := find(results, groupComponent, string(kind), caseCoreModule, "ctr-run")
		comp, ok2 := find(results, groupComponent, string(kind), caseComponent, "ctr-run")
		if ok1 && ok2 {
			rows = append(rows, row(fmt.Sprintf("hello as a component vs as a core module, warm cache (median of %d)", comp.N),
				fmt.Sprintf("`ctr run --rm`, %s", kind), core, comp))
		}
	}
	for _, p := range []struct{ param, measure string }{{"enarx-run", "`enarx run` wall time"}, {"enarx-run-cpu", "`enarx run` CPU (user + system, enarx and its Keep)"}} {
		core, ok1 := find(results, groupComponent, "", caseCoreModule, p.param)
		comp, ok2 := find(results, groupComponent, "", caseComponent, p.param)
		if ok1 && ok2 {
			rows = append(rows, row(fmt.Sprintf("hello as a component vs as a core module, warm cache (median of %d)", comp.N), p.measure, core, comp))
		}
	}
	return rows
}
