package test

// Load and soak (issue 8): many containers, one after another and all at
// once, with no failure, nothing left behind, and the shims' memory, file
// descriptors and threads bounded. The sizes fit `make test` on two cores;
// the environment scales them:
//
//	LOAD_CONTAINERS=200  containers per load test
//	LOAD_PARALLEL=10     `ctr` commands in flight at once
//	LOAD_DAEMON          the daemon of the load tests (default containerd-1.6)
//	SOAK_RUNS            runs of TestSoakLong (unset: it is skipped; `make soak` sets 1000)
//	SOAK_EVERY=100       runs between two samples of TestSoakLong
//	SOAK_DAEMON          the daemons of TestSoakLong: all (default), containerd-1.6 or containerd-2.4
//	SOAK_REPORT          where TestSoakLong writes its figures (Markdown), besides the test log

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	envLoadContainers = "LOAD_CONTAINERS"
	envLoadParallel   = "LOAD_PARALLEL"
	envLoadDaemon     = "LOAD_DAEMON"
	envSoakRuns       = "SOAK_RUNS"
	envSoakEvery      = "SOAK_EVERY"
	envSoakDaemon     = "SOAK_DAEMON"
	envSoakReport     = "SOAK_REPORT"
)

// Bounds of the load and soak tests.
const (
	// maxShimFDGrowth is how many more file descriptors a long-lived
	// shim may hold after a soak than before it (a connection containerd
	// happens to hold open).
	maxShimFDGrowth = 4
	// maxShimThreadGrowth is how many more threads it may have (the Go
	// runtime starts one now and then for a blocking call).
	maxShimThreadGrowth = 4
	// maxShimRSSGrowth is how much its resident memory may grow, in KiB.
	maxShimRSSGrowth = 16 << 10
)

// loadDaemon is the daemon the load tests run on.
func loadDaemon(t *testing.T) *Daemon {
	t.Helper()
	kind := daemonKind(envOr(envLoadDaemon, string(containerd16)))
	if !slices.Contains(daemonKinds, kind) {
		t.Fatalf("%s=%q: want one of %v", envLoadDaemon, kind, daemonKinds)
	}
	return sharedDaemon(t, kind)
}

// runParallel calls f(i) for i in [0, n), at most parallel at a time, and
// returns the errors.
func runParallel(n, parallel int, f func(i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, parallel)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// reportErrors fails the test with the first few of errs.
func reportErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if i == 5 {
			t.Errorf("... and %d more", len(errs)-5)
			break
		}
		t.Errorf("%s: %v", what, err)
	}
}

// ctrRun runs one `ctr` command for a load test: an error unless it exits
// 0 with want (if any) in its stdout.
func ctrRun(d *Daemon, ns, want string, args ...string) error {
	stdout, stderr, exit, err := d.exec(context.Background(), "", ns, 2*time.Minute, args...)
	switch {
	case err != nil:
		return fmt.Errorf("ctr %s: %w", strings.Join(args, " "), err)
	case exit != 0:
		return fmt.Errorf("ctr %s: exit %d: %s", strings.Join(args, " "), exit, strings.TrimSpace(stderr))
	case want != "" && !strings.Contains(stdout, want):
		return fmt.Errorf("ctr %s: stdout %q lacks %q", strings.Join(args, " "), stdout, want)
	}
	return nil
}

// memorySampler samples, every interval, our shims and Keeps whose command
// line names marker: the largest RSS of one shim, and the largest sum of
// the RSS and of the PSS of all of them, in KiB.
func memorySampler(marker string, interval time.Duration) *peakSampler {
	return startSampler(interval, func(record func(string, int64)) {
		var rss, pss, shims, keeps int64
		for _, p := range findProcesses(marker) {
			if !strings.Contains(p.Cmdline, serverBinary) && !strings.Contains(p.Cmdline, keepBinary) {
				continue
			}
			m, err := readProcMemory(p.PID)
			if err != nil {
				continue
			}
			rss += int64(m.RSS)
			pss += int64(m.PSS)
			if strings.HasSuffix(p.Cmdline, " serve") {
				shims++
				record("shim_rss", int64(m.RSS))
			} else {
				keeps++
			}
		}
		record("total_rss", rss)
		record("total_pss", pss)
		record("shims", shims)
		record("keeps", keeps)
	})
}

// assertNamespaceEmpty checks that ns has no task or container left, and
// that no cgroup of it is left on the host.
func assertNamespaceEmpty(t *testing.T, d *Daemon, ns string) {
	t.Helper()
	stopSpare(t, d, ns)
	for _, what := range []string{"tasks", "containers"} {
		if out := strings.Fields(d.mustCtr(t, ns, what, "ls", "-q")); len(out) > 0 {
			t.Errorf("%d %s left in %s: %v", len(out), what, ns, out[:min(len(out), 5)])
		}
	}
	var left []string
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns, "*"))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ns, "*"))
	for _, dir := range append(dirs, more...) {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			left = append(left, dir)
		}
	}
	if len(left) > 0 {
		t.Errorf("%d cgroups left: %v", len(left), left[:min(len(left), 5)])
	}
}

// TestLoadRunRm runs LOAD_CONTAINERS (200) `ctr run --rm` of the hello
// fixture, LOAD_PARALLEL (10) at a time, each in a shim of its own, with a
// warm module cache: every one greets, nothing is left (processes, tasks,
// containers, cgroups), and no shim's memory goes past maxShimRSS.
func TestLoadRunRm(t *testing.T) {
	d := loadDaemon(t)
	n, parallel := envInt(t, envLoadContainers, 200), envInt(t, envLoadParallel, 10)
	ns := newNamespace(t, d)
	ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
	policy := moduleCachePolicy(t, filepath.Join(benchDir(t), "cache"))
	prefix := uniqueID("load")
	run := func(i int) error {
		return ctrRun(d, ns, "Hello from a Keep!", "run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", policy, ref, fmt.Sprintf("%s-%d", prefix, i))
	}
	if err := ctrRun(d, ns, "Hello from a Keep!", "run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", policy, ref, prefix+"-warm"); err != nil {
		t.Fatalf("filling the module cache: %v", err)
	}
	sampler := memorySampler(prefix, 100*time.Millisecond)
	began := time.Now()
	errs := runParallel(n, parallel, run)
	wall := time.Since(began)
	peak, samples := sampler.stop()
	t.Logf("%s: %d `ctr run --rm` hello, %d at a time: %v (%.1f/s), %d failed; peak: one shim %d KiB RSS, all shims and Keeps %d KiB RSS, %d KiB PSS, %d shims and %d Keeps at once (%d samples)",
		d.Name, n, parallel, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), len(errs),
		peak["shim_rss"], peak["total_rss"], peak["total_pss"], peak["shims"], peak["keeps"], samples)
	reportErrors(t, "run", errs)
	if peak["shim_rss"] > maxShimRSS {
		t.Errorf("a shim's RSS reached %d KiB, want at most %d", peak["shim_rss"], maxShimRSS)
	}
	assertNoLeftovers(t, prefix)
	assertNamespaceEmpty(t, d, ns)
}

// TestLoadAllAtOnce starts LOAD_CONTAINERS (200) sleeping containers with
// `ctr run -d`, LOAD_PARALLEL (10) at a time, all in one shim (a pod's:
// the io.kubernetes.cri.sandbox-id annotation), measures the shim and the
// Keeps once all run, then kills and removes them all: no failure, and
// nothing left — the shim exits with its last container.
func TestLoadAllAtOnce(t *testing.T) {
	d := loadDaemon(t)
	n, parallel := envInt(t, envLoadContainers, 200), envInt(t, envLoadParallel, 10)
	ns := newNamespace(t, d)
	ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
	policy := moduleCachePolicy(t, filepath.Join(benchDir(t), "cache"))
	if err := ctrRun(d, ns, "sleeping", "run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", policy, ref, uniqueID("warm"), "/app.wasm", "0s"); err != nil {
		t.Fatalf("filling the module cache: %v", err)
	}
	prefix := uniqueID("many")
	group := prefix + "-pod" // the shim's command line names it
	id := func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
	var started atomic.Int32
	t.Cleanup(func() {
		// What a failure left running: cleanNamespace removes the rest.
		if t.Failed() {
			ids := make([]string, started.Load())
			for i := range ids {
				ids[i] = id(i)
			}
			runParallel(len(ids), parallel, func(i int) error {
				_, _, _, _ = d.exec(context.Background(), "", ns, time.Minute, "tasks", "kill", "-s", "SIGKILL", ids[i])
				return nil
			})
		}
	})

	sampler := memorySampler(prefix, 200*time.Millisecond)
	began := time.Now()
	errs := runParallel(n, parallel, func(i int) error {
		started.Add(1)
		return ctrRun(d, ns, "", append(append([]string{"run", "-d", "--runtime", runtimeEnarx, "--runtime-config-path", policy}, groupOpt(group)...), ref, id(i), "/app.wasm", "1h")...)
	})
	startWall := time.Since(began)
	reportErrors(t, "start", errs)
	if len(errs) > 0 {
		sampler.stop()
		t.FailNow()
	}
	pids := taskPIDs(t, d, ns)
	running := 0
	for i := 0; i < n; i++ {
		if _, ok := pids[id(i)]; ok {
			running++
		}
	}
	shim := shimServing(group)
	if running != n || shim == 0 {
		sampler.stop()
		t.Fatalf("%d of %d containers running, shim pid %d", running, n, shim)
	}
	time.Sleep(2 * time.Second) // the Keeps reach their sleep
	var keepsPSS, keepsRSS int64
	for i := 0; i < n; i++ {
		if m, err := readProcMemory(pids[id(i)]); err == nil {
			keepsPSS += int64(m.PSS)
			keepsRSS += int64(m.RSS)
		}
		if parentPID(pids[id(i)]) != shim {
			t.Errorf("the Keep of %s (pid %d) is not a child of the group's shim %d", id(i), pids[id(i)], shim)
		}
	}
	shimMem, _ := readProcMemory(shim)
	fds, _ := openFDs(shim)
	threads, _ := procStatusKiB(shim, "Threads")

	began = time.Now()
	errs = runParallel(n, parallel, func(i int) error {
		if err := ctrRun(d, ns, "", "tasks", "kill", "-s", "SIGKILL", id(i)); err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			// ctr tasks rm refuses a task that is still running.
			err := ctrRun(d, ns, "", "tasks", "rm", id(i))
			if err == nil || time.Now().After(deadline) {
				if err != nil {
					return err
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		return ctrRun(d, ns, "", "containers", "rm", id(i))
	})
	stopWall := time.Since(began)
	peak, samples := sampler.stop()
	t.Logf("%s: %d sleeping containers in one shim: started in %v, stopped and removed in %v, %d failed", d.Name, n,
		startWall.Round(time.Millisecond), stopWall.Round(time.Millisecond), len(errs))
	t.Logf("with all %d running: shim RSS %d KiB, PSS %d KiB, %d fds, %d threads; Keeps RSS %d KiB (%d KiB each), PSS %d KiB (%d KiB each); peak of shim and Keeps: RSS %d KiB, PSS %d KiB (%d samples)",
		n, shimMem.RSS, shimMem.PSS, fds, threads, keepsRSS, keepsRSS/int64(n), keepsPSS, keepsPSS/int64(n), peak["total_rss"], peak["total_pss"], samples)
	reportErrors(t, "stop", errs)
	if int64(shimMem.RSS) > maxShimRSS {
		t.Errorf("the shim of %d containers has %d KiB RSS, want at most %d", n, shimMem.RSS, maxShimRSS)
	}
	assertNoLeftovers(t, prefix)
	assertNoLeftovers(t, group)
	assertNamespaceEmpty(t, d, ns)
}

// shimFigures is what the soak samples of a shim.
type shimFigures struct {
	Run     int   // runs done when sampled
	FDs     int   // open file descriptors
	Threads int64 // threads
	RSS     int64 // VmRSS, KiB
	Elapsed time.Duration
}

func sampleShim(pid, run int, began time.Time) (shimFigures, error) {
	f := shimFigures{Run: run, Elapsed: time.Since(began)}
	var err error
	if f.FDs, err = openFDs(pid); err != nil {
		return f, err
	}
	if f.Threads, err = procStatusKiB(pid, "Threads"); err != nil {
		return f, err
	}
	f.RSS, err = procStatusKiB(pid, "VmRSS")
	return f, err
}

// soak runs `runs` sequential `ctr run --rm` of the hello fixture in one
// long-lived shim (a pod's, kept alive by a sleeping member after the one
// that started it is gone), samples the
// shim's open file descriptors, threads and RSS before, every `every`
// runs and after, and fails if they grew beyond the bounds. It returns the
// samples and the failures.
func soak(t *testing.T, d *Daemon, runs, every int) ([]shimFigures, int) {
	t.Helper()
	ns := newNamespace(t, d)
	helloRef := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
	sleepRef := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
	policy := moduleCachePolicy(t, filepath.Join(benchDir(t), "cache"))
	group := uniqueID("soak-pod")
	// The first member starts the shim, whose log is the FIFO of its
	// bundle; it goes before the runs, as a pod's containers come and go,
	// and the second keeps the shim alive.
	starter, member := uniqueID("soak-starter"), uniqueID("soak-member")
	for _, id := range []string{starter, member} {
		d.mustCtr(t, ns, append(append([]string{"run", "-d", "--runtime", runtimeEnarx, "--runtime-config-path", policy}, groupOpt(group)...), sleepRef, id, "/app.wasm", "24h")...)
		waitStatus(t, d, ns, id, "RUNNING")
	}
	shim := shimServing(group)
	if shim == 0 {
		t.Fatalf("no shim serves group %s", group)
	}
	d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", starter)
	waitStatus(t, d, ns, starter, "STOPPED")
	d.mustCtr(t, ns, "tasks", "rm", starter)
	d.mustCtr(t, ns, "containers", "rm", starter)
	prefix := uniqueID("soak")
	run := func(i int) error {
		return ctrRun(d, ns, "Hello from a Keep!", append(append([]string{"run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", policy}, groupOpt(group)...), helloRef, fmt.Sprintf("%s-%d", prefix, i))...)
	}
	// Warm up: the module cache, the shim's connections to containerd,
	// the Go runtime's heap and threads.
	for i := 0; i < 10; i++ {
		if err := ctrRun(d, ns, "Hello from a Keep!", append(append([]string{"run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", policy}, groupOpt(group)...), helloRef, fmt.Sprintf("%s-w%d", prefix, i))...); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}
	began := time.Now()
	first, err := sampleShim(shim, 0, began)
	if err != nil {
		t.Fatalf("shim %d: %v", shim, err)
	}
	samples := []shimFigures{first}
	t.Logf("%s: shim %d after the warm-up: fds %d, threads %d, RSS %d KiB", d.Name, shim, first.FDs, first.Threads, first.RSS)
	var failures []error
	for i := 1; i <= runs; i++ {
		if err := run(i); err != nil {
			failures = append(failures, err)
		}
		if i%every == 0 || i == runs {
			s, err := sampleShim(shim, i, began)
			if err != nil {
				t.Fatalf("shim %d after %d runs: %v (did it exit?)", shim, i, err)
			}
			samples = append(samples, s)
			t.Logf("%s: after %d runs (%v): shim fds %d, threads %d, RSS %d KiB", d.Name, i, s.Elapsed.Round(time.Second), s.FDs, s.Threads, s.RSS)
		}
	}
	reportErrors(t, "run", failures)
	last := samples[len(samples)-1]
	if last.FDs > first.FDs+maxShimFDGrowth {
		t.Errorf("shim fds: %d before, %d after %d runs: a leak", first.FDs, last.FDs, runs)
	}
	if last.Threads > first.Threads+maxShimThreadGrowth {
		t.Errorf("shim threads: %d before, %d after %d runs", first.Threads, last.Threads, runs)
	}
	if last.RSS > first.RSS+maxShimRSSGrowth {
		t.Errorf("shim RSS: %d KiB before, %d KiB after %d runs: grew more than %d KiB", first.RSS, last.RSS, runs, maxShimRSSGrowth)
	}
	if got := shimServing(group); got != shim {
		t.Errorf("the group's shim is now %d, want %d still", got, shim)
	}
	d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", member)
	waitStatus(t, d, ns, member, "STOPPED")
	d.mustCtr(t, ns, "tasks", "rm", member)
	d.mustCtr(t, ns, "containers", "rm", member)
	assertNoLeftovers(t, prefix)
	assertNoLeftovers(t, group)
	assertNamespaceEmpty(t, d, ns)
	return samples, len(failures)
}

// TestSoakShort is the soak of `make test`: 100 runs in one shim, sampled
// every 25.
func TestSoakShort(t *testing.T) {
	soak(t, loadDaemon(t), 100, 25)
}

// TestSoakLong is `make soak` (scripts/soak.sh): SOAK_RUNS runs in one
// shim on each daemon of SOAK_DAEMON, sampled every SOAK_EVERY, with the
// figures written to SOAK_REPORT.
func TestSoakLong(t *testing.T) {
	if os.Getenv(envSoakRuns) == "" {
		t.Skipf("%s is not set: run make soak", envSoakRuns)
	}
	runs, every := envInt(t, envSoakRuns, 1000), envInt(t, envSoakEvery, 100)
	kinds := daemonKinds
	if k := os.Getenv(envSoakDaemon); k != "" && k != "all" {
		kinds = []daemonKind{daemonKind(k)}
	}
	var report strings.Builder
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			d := sharedDaemon(t, kind)
			samples, failures := soak(t, d, runs, every)
			took := samples[len(samples)-1].Elapsed
			fmt.Fprintf(&report, "\n## %s (%s)\n\n%d sequential `ctr run --rm` of hello in one shim, %d failed, in %v (%.1f runs/s, %.0f ms a run).\n\n",
				d.Name, d.Version, runs, failures, took.Round(time.Second), float64(runs)/took.Seconds(), float64(took.Milliseconds())/float64(runs))
			report.WriteString("| runs | open fds | threads | RSS (KiB) | elapsed |\n|---:|---:|---:|---:|---:|\n")
			for _, s := range samples {
				fmt.Fprintf(&report, "| %d | %d | %d | %d | %v |\n", s.Run, s.FDs, s.Threads, s.RSS, s.Elapsed.Round(time.Second))
			}
			first, last := samples[0], samples[len(samples)-1]
			fmt.Fprintf(&report, "\nGrowth: fds %+d (bound %d), threads %+d (bound %d), RSS %+d KiB (bound %d KiB).\n",
				last.FDs-first.FDs, maxShimFDGrowth, last.Threads-first.Threads, maxShimThreadGrowth, last.RSS-first.RSS, maxShimRSSGrowth)
		})
	}
	fmt.Print(report.String())
	if path := os.Getenv(envSoakReport); path != "" {
		doc := "# Soak\n\nGenerated by `make soak` (scripts/soak.sh); do not edit. A shim serving a pod (a sleeping member keeps it alive;\n" +
			"the member that started it, whose bundle holds the shim's log FIFO, is gone) runs the hello fixture again and\n" +
			"again, one `ctr run --rm` at a time, with a warm module cache; its open file\n" +
			"descriptors (/proc/PID/fd), threads and VmRSS are sampled after 10 warm-up runs, then every " + fmt.Sprint(every) + " runs.\n" +
			"Generated " + time.Now().UTC().Format(time.RFC3339) + ".\n" + report.String()
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
