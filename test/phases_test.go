package test

// BenchmarkStartupPhases: where the time of one warm `ctr run --rm` goes.
//
// Each run is traced with the kernel's own scheduler events (a private
// tracefs instance: sched_process_fork, sched_process_exec,
// sched_process_exit, with thread group ids), which cost the traced
// processes nothing measurable, unlike strace's ptrace stops; and with
// page_fault_user and sched_stat_runtime, for what each process costs in
// page faults and CPU time. Every process
// exec'd below ctr and the daemon is given a role from its binary and its
// parent (the shim's `start`, the server it forks, the Keep or runc, `shim
// delete`), and the shim's own log adds what happens inside the server
// (the "keep started" and "keep ready" lines: exec, cgroup placement, the
// Keep from config to ready, cache load, attestation, confinement, labels).
// The medians over BENCH_PHASE_RUNS runs (default 10) go to $BENCH_PHASES, a
// Markdown file (PHASES.md, which BENCHMARKS.md points to); without
// BENCH_PHASES the benchmark is skipped, so that the other benchmarks' runs do
// not trace. scripts/bench.sh runs it on daemons at log level debug
// (ENARX_E2E_DEBUG=1), for the shim's "keep started" line.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envPhaseRuns = "BENCH_PHASE_RUNS"
	envPhases    = "BENCH_PHASES"
	tracefsDir   = "/sys/kernel/tracing"
)

// schedTrace is a private tracefs instance recording process fork, exec
// and exit.
type schedTrace struct{ dir string }

func newSchedTrace(b testing.TB) *schedTrace {
	b.Helper()
	if _, err := os.Stat(filepath.Join(tracefsDir, "instances")); err != nil {
		if err := unix.Mount("nodev", tracefsDir, "tracefs", 0, ""); err != nil {
			b.Skipf("no tracefs at %s: %v", tracefsDir, err)
		}
	}
	dir := filepath.Join(tracefsDir, "instances", fmt.Sprintf("enarx-phases-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		b.Skipf("tracefs instance: %v", err)
	}
	b.Cleanup(func() { _ = os.Remove(dir) })
	t := &schedTrace{dir: dir}
	for file, value := range map[string]string{
		"trace_clock":                            "mono",
		"buffer_size_kb":                         "8192",
		"options/record-tgid":                    "1",
		"events/sched/sched_process_fork/enable": "1",
		"events/sched/sched_process_exec/enable": "1",
		"events/sched/sched_process_exit/enable": "1",
		"tracing_on":                             "0",
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			b.Fatalf("tracefs %s: %v", file, err)
		}
	}
	// What each process costs: its page faults (on this machine class each
	// costs tens of µs) and its CPU time. A kernel without these events
	// leaves those rows empty.
	for _, file := range []string{"events/exceptions/page_fault_user/enable", "events/sched/sched_stat_runtime/enable"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte("1"), 0o644); err != nil {
			b.Logf("tracefs %s: %v: no such rows", file, err)
		}
	}
	return t
}

func (t *schedTrace) set(b testing.TB, file, value string) {
	b.Helper()
	if err := os.WriteFile(filepath.Join(t.dir, file), []byte(value), 0o644); err != nil {
		b.Fatalf("tracefs %s: %v", file, err)
	}
}

// record runs f with tracing on and returns the events.
func (t *schedTrace) record(b testing.TB, f func()) []schedEvent {
	b.Helper()
	t.set(b, "trace", "")
	t.set(b, "tracing_on", "1")
	f()
	t.set(b, "tracing_on", "0")
	data, err := os.ReadFile(filepath.Join(t.dir, "trace"))
	if err != nil {
		b.Fatal(err)
	}
	return parseSchedTrace(string(data))
}

// schedEvent is one line of the trace.
type schedEvent struct {
	at    float64 // ms, CLOCK_MONOTONIC
	tgid  int     // of the thread the event happened on
	kind  string  // fork, exec, exit; fault (a user page fault); runtime (CPU time)
	child int     // fork: the new task; exec: the pid after exec
	file  string  // exec: the binary
	cpu   float64 // runtime: ms of CPU the thread ran
}

// "ctr-1234  (   1234) [001] ..... 5678.123456: sched_process_exec: filename=/usr/bin/ctr pid=1234 old_pid=1234"
// "ctr-1234  (   1234) [001] ..... 5678.123456: page_fault_user: address=0x7f... ip=0x... error_code=0x6"
// "ctr-1234  (   1234) [001] ..... 5678.123456: sched_stat_runtime: comm=ctr pid=1235 runtime=81234 [ns]"
var schedLine = regexp.MustCompile(`^\s*.+?-(\d+)\s+\(\s*(\d+|-+)\)\s+\[\d+\]\s+\S+\s+([0-9.]+): (?:sched_process_(fork|exec|exit)|(page_fault_user)|sched_stat_(runtime)): (.*)$`)

func parseSchedTrace(s string) []schedEvent {
	var evs []schedEvent
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := schedLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[3], 64)
		tgid, err := strconv.Atoi(m[2])
		if err != nil {
			tgid, _ = strconv.Atoi(m[1])
		}
		e := schedEvent{at: at * 1000, tgid: tgid, kind: m[4] + m[6]}
		if m[5] != "" {
			e.kind = "fault"
		}
		fields := map[string]string{}
		for _, kv := range strings.Fields(m[7]) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				fields[k] = v
			}
		}
		switch e.kind {
		case "fork":
			e.child, _ = strconv.Atoi(fields["child_pid"])
		case "exec":
			e.child, _ = strconv.Atoi(fields["pid"])
			e.file = fields["filename"]
			e.tgid = e.child
		case "runtime":
			// Accounted to the task running when the event fires, which
			// is the one whose time it is (the tick or switch of curr).
			ns, _ := strconv.ParseFloat(fields["runtime"], 64)
			e.cpu = ns / 1e6
		}
		evs = append(evs, e)
	}
	return evs
}

// phaseProc is a process that exec'd during a run.
type phaseProc struct {
	pid       int
	parent    int // the thread group that forked it
	file      string
	forked    float64
	exec      float64
	exit      float64
	role      string
	execCount int
	cost      // from its fork on
}

// cost is what a process cost during a run.
type cost struct {
	faults float64 // user page faults
	cpu    float64 // ms of CPU
}

// add counts e when it is a page fault or CPU time.
func (c *cost) add(e schedEvent) {
	switch e.kind {
	case "fault":
		c.faults++
	case "runtime":
		c.cpu += e.cpu
	}
}

// processes are the exec'd processes of a trace, with when each was forked,
// exec'd and ended (its last thread's exit).
func processes(evs []schedEvent) map[int]*phaseProc {
	forkOf := map[int]schedEvent{}
	lastExit := map[int]float64{}
	procs := map[int]*phaseProc{}
	for _, e := range evs {
		switch e.kind {
		case "fork":
			forkOf[e.child] = e
		case "exit":
			if e.at > lastExit[e.tgid] {
				lastExit[e.tgid] = e.at
			}
		case "exec":
			p := procs[e.child]
			if p == nil {
				p = &phaseProc{pid: e.child}
				if f, ok := forkOf[e.child]; ok {
					p.parent, p.forked = f.tgid, f.at
				}
				procs[e.child] = p
			}
			// runc execs itself again (runc init), then the workload.
			p.execCount++
			if p.execCount == 1 {
				p.exec, p.file = e.at, e.file
			} else {
				p.file += " > " + filepath.Base(e.file)
			}
		}
	}
	for pid, p := range procs {
		p.exit = lastExit[pid]
	}
	// A process's cost, counted by thread group: its fork to its exec is
	// its own too (the pid does not change at exec).
	for _, e := range evs {
		if p := procs[e.tgid]; p != nil {
			p.add(e)
		}
	}
	return procs
}

// phaseRun is one traced run: milestones in ms after ctr's exec, and
// what each process cost ("faults NAME", "cpu NAME", their "total").
type phaseRun map[string]float64

// addCost adds c to what name cost, and to the total.
func (r phaseRun) addCost(name string, c cost) {
	for _, n := range []string{name, "total"} {
		r["faults "+n] += c.faults
		r["cpu "+n] += c.cpu
	}
}

// milestones names the moments of a run of runtime shim (its binary's base
// name) in the trace evs, under daemon pid daemonPID, ctr being the traced
// ctr's pid; keepPID, when not 0, is the run's Keep (keepPIDFromLog), which
// a spare server started before the run when it was the spare's Keep.
func milestones(evs []schedEvent, ctrPID, daemonPID int, shim string, keepPID int) (phaseRun, error) {
	procs := processes(evs)
	ctr := procs[ctrPID]
	if ctr == nil {
		return nil, fmt.Errorf("no exec of ctr (pid %d) in the trace", ctrPID)
	}
	t0 := ctr.exec
	r := phaseRun{"ctr exit": ctr.exit - t0}
	r.addCost("ctr", ctr.cost)
	// The daemon, not exec'd in the trace, during it.
	var daemon cost
	for _, e := range evs {
		if e.tgid == daemonPID {
			daemon.add(e)
		}
	}
	r.addCost("daemon", daemon)
	var shims []*phaseProc
	for _, p := range procs {
		if filepath.Base(p.file) == shim && p.parent == daemonPID {
			shims = append(shims, p)
		}
	}
	sort.Slice(shims, func(i, j int) bool { return shims[i].exec < shims[j].exec })
	if len(shims) != 2 {
		return nil, fmt.Errorf("%d execs of %s by the daemon, want 2 (start, delete)", len(shims), shim)
	}
	start, del := shims[0], shims[1]
	r["start fork"], r["start exec"], r["start exit"] = start.forked-t0, start.exec-t0, start.exit-t0
	r["delete fork"], r["delete exec"], r["delete exit"] = del.forked-t0, del.exec-t0, del.exit-t0
	r.addCost("start", start.cost)
	r.addCost("delete", del.cost)
	var serve *phaseProc
	for _, p := range procs {
		if p.parent == start.pid {
			serve = p
		}
	}
	if serve == nil {
		// A server that was not exec'd in the run: the spare, which start
		// claimed. It is the parent of the first process exec'd after
		// start's exec by a process not exec'd in the run (the daemon's
		// own children aside); what it costs is counted as the daemon's is.
		var first *phaseProc
		for _, p := range procs {
			if p.exec > start.exec && procs[p.parent] == nil && p.parent != daemonPID && p.parent != 0 && (first == nil || p.exec < first.exec) {
				first = p
			}
		}
		switch {
		case first != nil:
			serve = &phaseProc{pid: first.parent}
		case keepPID > 0 && procs[keepPID] == nil:
			// The spare's Keep, started before the run, and no next one
			// started in it: the server is not seen.
			serve = &phaseProc{pid: -1}
		default:
			return nil, fmt.Errorf("no server exec'd by %s start, and no child of one not exec'd in the run", shim)
		}
		for _, e := range evs {
			if e.tgid == serve.pid {
				serve.add(e)
			}
		}
		r["spare"] = 1
	} else {
		r["serve exec"] = serve.exec - t0
		r["spare"] = 0
	}
	r.addCost("serve", serve.cost)
	if serve.exit > 0 {
		// A server may outlive ctr, and so the trace.
		r["serve exit"] = serve.exit - t0
	}
	// The server's children: the Keep (or runc's commands), in order.
	var kids []*phaseProc
	for _, p := range procs {
		if p.parent == serve.pid {
			kids = append(kids, p)
		}
	}
	sort.Slice(kids, func(i, j int) bool { return kids[i].exec < kids[j].exec })
	if keepPID > 0 && procs[keepPID] == nil {
		// The run's Keep is the spare's, exec'd before the run: its exit
		// and what it costs during the run are its. The server's child
		// exec'd in the run is the spare's next Keep, for the next run;
		// what it costs counts with the server's children below.
		r["spare keep"] = 1
		var keep cost
		for _, e := range evs {
			if e.tgid != keepPID {
				continue
			}
			keep.add(e)
			if e.kind == "exit" && e.at-t0 > r["adopted keep exit"] {
				r["adopted keep exit"] = e.at - t0
			}
		}
		r.addCost("children", keep)
		if len(kids) > 0 {
			r["next spare keep exec"] = kids[0].exec - t0
		}
		kids = nil
	} else if keepPID > 0 {
		r["spare keep"] = 0
	}
	// Their cost, with their own children's (runc create's runc init, the
	// container's process; an inner Keep).
	for _, p := range procs {
		for q := p; q != nil && q != serve; q = procs[q.parent] {
			if q.parent == serve.pid {
				r.addCost("children", p.cost)
				break
			}
		}
	}
	for i, k := range kids {
		name := filepath.Base(k.file)
		if len(kids) > 1 {
			name = fmt.Sprintf("%s #%d", name, i+1)
		}
		r["child fork "+name], r["child exec "+name], r["child exit "+name] = k.forked-t0, k.exec-t0, k.exit-t0
	}
	return r, nil
}

// keepPIDFromLog is the PID of container id's Keep, which the shim logs
// when it is ready ("keep ready ... pid=N"), or 0.
func keepPIDFromLog(log, id string) int {
	pid := regexp.MustCompile(`\bpid=([0-9]+)\b`)
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "keep ready") && strings.Contains(line, "id="+id+" ") {
			if m := pid.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	return 0
}

// shimLogFields are the durations the shim logs for container id, by field
// name (the "keep started", "keep ready", "attestation published" and
// "task deleted" lines), in ms.
func shimLogFields(log, id string) map[string]float64 {
	out := map[string]float64{}
	field := regexp.MustCompile(`\b(\w+)=([0-9.]+(?:ns|µs|us|ms|s))\b`)
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "id="+id) {
			continue
		}
		var prefix string
		switch {
		case strings.Contains(line, "keep started"):
			prefix = "keep started: "
		case strings.Contains(line, "keep ready"):
			prefix = "keep ready: "
		case strings.Contains(line, "attestation published"):
			prefix = "attestation published: "
		case strings.Contains(line, "task deleted"):
			prefix = "task deleted: "
		default:
			continue
		}
		for _, m := range field.FindAllStringSubmatch(line, -1) {
			d, err := time.ParseDuration(strings.Replace(m[2], "us", "µs", 1))
			if err == nil {
				out[prefix+m[1]] = float64(d.Microseconds()) / 1000
			}
		}
	}
	return out
}

// BenchmarkStartupPhases traces warm `ctr run --rm` runs of the floor shim,
// runc and enarx on each daemon and reports each moment's median.
func BenchmarkStartupPhases(b *testing.B) {
	out := os.Getenv(envPhases)
	if out == "" {
		b.Skipf("set %s=FILE to trace the start-up phases", envPhases)
	}
	runs := envInt(b, envPhaseRuns, 10)
	tr := newSchedTrace(b)
	var doc strings.Builder
	for _, kind := range daemonKinds {
		b.Run(string(kind), func(b *testing.B) {
			d, ns, wasmRef, nativeRef, floorShim, _, warm := startupFixture(b, kind)
			type phaseCase struct {
				name, shim, want string
				args             func(id string) []string
			}
			cases := []phaseCase{
				{caseFloor, filepath.Base(floorShim), "floor shim", func(id string) []string {
					return []string{"run", "--rm", "--runtime", floorShim, wasmRef, id}
				}},
				{caseRunc, "containerd-shim-runc-v2", "Hello from runc!", func(id string) []string {
					return []string{"run", "--rm", "--runtime", runtimeRunc, nativeRef, id}
				}},
				{caseEnarxWarm, shimBinary, "Hello from a Keep!", func(id string) []string {
					return []string{"run", "--rm", "--runtime", runtimeEnarx, "--runtime-config-path", warm, wasmRef, id}
				}},
			}
			for _, c := range cases {
				timedCtr(b, d, ns, c.want, c.args(uniqueID("phases"))...)
			}
			samples := map[string]map[string][]float64{}
			for i := 0; i < runs; i++ {
				for _, c := range cases {
					var id string
					var logAt int64
					var ctrPID int
					var evs []schedEvent
					// A run whose greeting ctr lost is run again (runc's hello
					// loses it now and then on a loaded machine), at most twice.
					for try := 0; ; try++ {
						id = uniqueID("phases")
						logAt = d.logSize()
						var ok bool
						evs = tr.record(b, func() {
							ctrPID, ok = d.ctrTraced(b, ns, c.want, try == 2, c.args(id)...)
						})
						if ok {
							break
						}
						b.Logf("%s %s: ctr's output lacks %q: run again", d.Name, c.name, c.want)
					}
					time.Sleep(50 * time.Millisecond) // the daemon copies the shim's log
					log := d.logSince(logAt, 1000)
					r, err := milestones(evs, ctrPID, d.PID, c.shim, keepPIDFromLog(log, id))
					if err != nil {
						b.Fatalf("%s %s: %v", d.Name, c.name, err)
					}
					for k, v := range shimLogFields(log, id) {
						r[k] = v
					}
					if samples[c.name] == nil {
						samples[c.name] = map[string][]float64{}
					}
					for k, v := range r {
						samples[c.name][k] = append(samples[c.name][k], v)
					}
				}
			}
			fmt.Fprintf(&doc, "\n### %s (median of %d runs per case)\n\n", d.Name, runs)
			doc.WriteString(phaseTable(samples, []string{caseFloor, caseRunc, caseEnarxWarm}))
		})
	}
	b.Log("\n" + doc.String())
	if err := os.WriteFile(out, []byte(phasesDocument(doc.String())), 0o644); err != nil {
		b.Fatal(err)
	}
}

// phasesDocument is PHASES.md around the tables.
func phasesDocument(tables string) string {
	return `# Start-up phases

Generated by ` + "`make bench`" + ` (scripts/bench.sh, BenchmarkStartupPhases); do not edit. Generated ` +
		time.Now().UTC().Format(time.RFC3339) + `.

Where the time of one warm ` + "`ctr run --rm`" + ` of a hello goes, for the do-nothing shim (the
floor), runc with a static native hello, and enarx with a warm module cache, on each daemon.
Each run is traced with the kernel's scheduler events (a private tracefs instance:
sched_process_fork, sched_process_exec, sched_process_exit, with thread group ids;
CLOCK_MONOTONIC), which add nothing measurable to the traced processes, unlike strace's
ptrace stops. Every process exec'd below the daemon gets a role from its binary and its
parent: the shim's ` + "`start`" + ` (the daemon's first exec of the shim), the server it forks
(or, for enarx, the spare server it claimed, which was not exec'd in the run: it is the
Keep's parent, and what it costs during the run is counted as the daemon's is), the
server's children (the Keep; runc's commands), ` + "`shim delete`" + ` (the daemon's second
exec). An enarx run's Keep may be the spare's Keep, which the spare server started before
the run and the run adopted (the shim log names its PID): the trace has its exit and what
it costs during the run, not its exec, and the spare's next Keep, exec'd for the next
one once containerd has removed the run's bundle, counts with the server's children
when that is before ctr's exit. A moment is ms after ctr's exec; other rows are the time between two moments, the
median of the per-run differences. "shim log" rows are the shim's own timings for the run's
container (daemon at log level debug): *keep started* — exec (fork and exec of the Keep in
its cgroup, in the shim; for a Keep the shim started ahead, as it started, the hand-over of
its stdio and root filesystem), ready (config sent → ready: module read and digest, engine
when not made ahead, cache load, attestation, confinement); *keep ready* — keep (all of that), compile (cache
load), attest, confine, create (the whole Create request); *attestation published* — labels
(the enarx.dev labels set through containerd's API, begun as the Keep confines itself),
waited (from Create's answer until they were set; Start waits only for what is left when it comes); *task deleted* — cleanup (Delete: the rootfs unmounted, the
bundle's files and the cgroup removed). The "page faults" and "CPU ms" rows are what each
process cost from its fork to its exit (the same trace's page_fault_user and
sched_stat_runtime events, by thread group; the server's children with their own
children, so runc's container process too; the daemon during the run): on this machine
class a page fault costs tens of µs and start-up is CPU-bound, so these sums, not only the
moments, say what a change saves.
` + tables
}

// phaseRows are the table's rows: a moment (ms after ctr's exec) or, with
// "Δ", the time between two moments.
var phaseRows = []struct{ label, from, to string }{
	{"ctr exec → daemon forks `shim start`", "", "start fork"},
	{"`shim start`: fork → exec", "start fork", "start exec"},
	{"`shim start`: exec → exit (Go init, bootstrap, listen, fork+exec server)", "start exec", "start exit"},
	{"`shim start` exec → server exec", "start exec", "serve exec"},
	{"server exec → first child exec (runc: Go init, ttrpc, Create until `runc create`; enarx: until the Keep it starts ahead)", "serve exec", "child exec *1"},
	{"`shim start` exec → first child exec (through a new server, or the spare)", "start exec", "child exec *1"},
	{"first child: fork → exec", "child fork *1", "child exec *1"},
	{"first child exec → exit (the Keep or `runc create`: its whole life; a Keep started ahead waits for Create in it)", "child exec *1", "child exit *1"},
	{"last child exit → `shim delete` exec", "child exit *n", "delete exec"},
	{"`shim start` exec → the Keep's exit (the spare's Keep, exec'd before the run and adopted)", "start exec", "adopted keep exit"},
	{"the spare's Keep: exit → `shim delete` exec", "adopted keep exit", "delete exec"},
	{"the spare's next Keep (for the next run): exec", "", "next spare keep exec"},
	{"`shim delete`: fork → exec", "delete fork", "delete exec"},
	{"`shim delete`: exec → exit", "delete exec", "delete exit"},
	{"server exit", "", "serve exit"},
	{"`shim delete` exit → ctr exit", "delete exit", "ctr exit"},
	{"**ctr exec → ctr exit**", "", "ctr exit"},
}

// phaseCostProcesses are the processes whose costs during a run make
// rows, each for page faults and ms of CPU, from its fork (or, for the
// daemon, the run's start) to its exit: the label and the key of the
// samples; total is bold.
var phaseCostProcesses = []struct{ label, key string }{
	{"ctr", "ctr"},
	{"daemon", "daemon"},
	{"`shim start`", "start"},
	{"server", "serve"},
	{"the server's children (the Keep; runc's commands)", "children"},
	{"`shim delete`", "delete"},
	{"all of these", "total"},
}

// phaseCostKinds are the two costs: the samples' kind, the rows' prefix
// and the figures' format.
var phaseCostKinds = []struct{ kind, prefix, format string }{
	{"faults", "page faults: ", " | %.0f"},
	{"cpu", "CPU ms: ", " | %.1f"},
}

func phaseTable(samples map[string]map[string][]float64, cases []string) string {
	var sb strings.Builder
	sb.WriteString("| phase (ms; a moment is after ctr's exec) | " + strings.Join(cases, " | ") + " |\n|---|" + strings.Repeat("---|", len(cases)) + "\n")
	value := func(s map[string][]float64, from, to string) string {
		pick := func(name string) []float64 {
			if !strings.HasSuffix(name, "*1") && !strings.HasSuffix(name, "*n") {
				return s[name]
			}
			// The first or last child, whatever its binary.
			prefix := strings.TrimSuffix(strings.TrimSuffix(name, "*1"), "*n")
			var keys []string
			for k := range s {
				if strings.HasPrefix(k, prefix) {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				return nil
			}
			sort.Slice(keys, func(i, j int) bool { return median(s[keys[i]]) < median(s[keys[j]]) })
			if strings.HasSuffix(name, "*1") {
				return s[keys[0]]
			}
			return s[keys[len(keys)-1]]
		}
		tv := pick(to)
		if tv == nil {
			return "–"
		}
		if from == "" {
			return fmt.Sprintf("at %.1f", median(tv))
		}
		fv := pick(from)
		if fv == nil || len(fv) != len(tv) {
			return "–"
		}
		diffs := make([]float64, len(tv))
		for i := range tv {
			diffs[i] = tv[i] - fv[i]
		}
		return fmt.Sprintf("%.1f", median(diffs))
	}
	for _, row := range phaseRows {
		sb.WriteString("| " + row.label)
		for _, c := range cases {
			sb.WriteString(" | " + value(samples[c], row.from, row.to))
		}
		sb.WriteString(" |\n")
	}
	// How many runs a spare served, and how many runs' Keep was the
	// spare's (enarx), of how many.
	for _, count := range []struct{ label, key string }{
		{"runs served by the spare server, of all", "spare"},
		{"runs whose Keep was the spare's Keep, of all", "spare keep"},
	} {
		sb.WriteString("| " + count.label)
		for _, c := range cases {
			n := 0
			for _, v := range samples[c][count.key] {
				if v == 1 {
					n++
				}
			}
			sb.WriteString(fmt.Sprintf(" | %d of %d", n, len(samples[c][count.key])))
		}
		sb.WriteString(" |\n")
	}
	// What each process cost: page faults and CPU time (medians of the
	// runs' sums), and all of them together.
	for _, k := range phaseCostKinds {
		for _, p := range phaseCostProcesses {
			label := k.prefix + p.label
			if p.key == "total" {
				label = "**" + label + "**"
			}
			sb.WriteString("| " + label)
			for _, name := range cases {
				if v := samples[name][k.kind+" "+p.key]; len(v) == 0 {
					sb.WriteString(" | –")
				} else {
					sb.WriteString(fmt.Sprintf(k.format, median(v)))
				}
			}
			sb.WriteString(" |\n")
		}
	}
	// The shim's own timings (enarx only).
	var keys []string
	for _, c := range cases {
		for k := range samples[c] {
			if (strings.HasPrefix(k, "keep ") || strings.HasPrefix(k, "attestation ") || strings.HasPrefix(k, "task ")) && !contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		sb.WriteString("| shim log, " + k)
		for _, c := range cases {
			if v := samples[c][k]; len(v) > 0 {
				sb.WriteString(fmt.Sprintf(" | %.1f", median(v)))
			} else {
				sb.WriteString(" | –")
			}
		}
		sb.WriteString(" |\n")
	}
	return sb.String()
}

// ctrTraced runs ctr like timedCtr and returns its pid, and whether its
// output holds want; when it does not and last is set, the benchmark fails.
func (d *Daemon) ctrTraced(b testing.TB, ns, want string, last bool, args ...string) (int, bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultCtrTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Ctr, append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	cmd.Env = cleanEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil && strings.Contains(stdout.String(), want) {
		return cmd.Process.Pid, true
	}
	if err != nil || last {
		b.Fatalf("%s: ctr %s: %v\nstdout: %s\nstderr: %s\n%s", d.Name, strings.Join(args, " "), err, stdout.String(), stderr.String(), d.LogTail(20))
	}
	return cmd.Process.Pid, false
}

// TestPhaseCosts: the phase trace's parser gives each process its page
// faults and CPU time by thread group, from its fork on, and the server's
// children their descendants' (runc create's container process).
func TestPhaseCosts(t *testing.T) {
	trace := strings.Join([]string{
		" containerd-10 (   10) [000] ..... 1.000000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=20",
		" ctr-5 (    5) [000] ..... 0.900000: sched_process_exec: filename=/usr/bin/ctr pid=5 old_pid=5",
		" ctr-5 (    5) [000] ..... 0.900100: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" ctr-5 (    5) [000] ..... 0.900200: sched_stat_runtime: comm=ctr pid=5 runtime=2000000 [ns]",
		" containerd-20 (   20) [000] ..... 1.001000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" shim-20 (   20) [000] ..... 1.002000: sched_process_exec: filename=/bin/shim pid=20 old_pid=20",
		" shim-20 (   20) [000] ..... 1.003000: sched_stat_runtime: comm=shim pid=20 runtime=1500000 [ns]",
		" shim-20 (   20) [000] ..... 1.004000: sched_process_fork: comm=shim pid=20 child_comm=shim child_pid=30",
		" shim-20 (   20) [000] ..... 1.005000: sched_process_exit: comm=shim pid=20 prio=120",
		" server-30 (   30) [000] ..... 1.006000: sched_process_exec: filename=/bin/server pid=30 old_pid=30",
		" server-31 (   30) [001] ..... 1.007000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" server-30 (   30) [000] ..... 1.008000: sched_process_fork: comm=server pid=30 child_comm=server child_pid=40",
		" runc-40 (   40) [000] ..... 1.009000: sched_process_exec: filename=/bin/runc pid=40 old_pid=40",
		" runc-40 (   40) [000] ..... 1.010000: sched_process_fork: comm=runc pid=40 child_comm=runc child_pid=50",
		" init-50 (   50) [000] ..... 1.011000: sched_process_exec: filename=/bin/runc pid=50 old_pid=50",
		" init-50 (   50) [000] ..... 1.012000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" init-50 (   50) [000] ..... 1.013000: sched_stat_runtime: comm=init pid=50 runtime=3000000 [ns]",
		" runc-40 (   40) [000] ..... 1.014000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" containerd-10 (   10) [000] ..... 1.015000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=60",
		" shim-60 (   60) [000] ..... 1.016000: sched_process_exec: filename=/bin/shim pid=60 old_pid=60",
		" shim-60 (   60) [000] ..... 1.017000: sched_process_exit: comm=shim pid=60 prio=120",
		" containerd-11 (   10) [000] ..... 1.018000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" ctr-5 (    5) [000] ..... 1.020000: sched_process_exit: comm=ctr pid=5 prio=120",
	}, "\n")
	evs := parseSchedTrace(trace)
	r, err := milestones(evs, 5, 10, "shim", 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"faults ctr": 1, "cpu ctr": 2, "faults start": 1, "cpu start": 1.5, "faults serve": 1,
		"faults children": 2, "cpu children": 3, "faults delete": 0,
		"faults daemon": 1, "cpu daemon": 0, "faults total": 6, "cpu total": 6.5,
	} {
		if got := r[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
}

// TestPhaseSpare: a run served by the spare server, which start claimed and
// which was not exec'd in the run, finds the server as the Keep's parent
// and counts what it costs during the run.
func TestPhaseSpare(t *testing.T) {
	trace := strings.Join([]string{
		" ctr-5 (    5) [000] ..... 0.900000: sched_process_exec: filename=/usr/bin/ctr pid=5 old_pid=5",
		" containerd-10 (   10) [000] ..... 1.000000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=20",
		" shim-20 (   20) [000] ..... 1.002000: sched_process_exec: filename=/bin/shim pid=20 old_pid=20",
		" shim-20 (   20) [000] ..... 1.005000: sched_process_exit: comm=shim pid=20 prio=120",
		" server-31 (   30) [001] ..... 1.006000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" server-30 (   30) [000] ..... 1.006500: sched_stat_runtime: comm=server pid=30 runtime=4000000 [ns]",
		" server-30 (   30) [000] ..... 1.007000: sched_process_fork: comm=server pid=30 child_comm=server child_pid=40",
		" keep-40 (   40) [000] ..... 1.009000: sched_process_exec: filename=/bin/enarx-keep pid=40 old_pid=40",
		" keep-40 (   40) [000] ..... 1.010000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" keep-40 (   40) [000] ..... 1.011000: sched_process_exit: comm=keep pid=40 prio=120",
		" containerd-10 (   10) [000] ..... 1.015000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=60",
		" shim-60 (   60) [000] ..... 1.016000: sched_process_exec: filename=/bin/shim pid=60 old_pid=60",
		" shim-60 (   60) [000] ..... 1.017000: sched_process_exit: comm=shim pid=60 prio=120",
		" ctr-5 (    5) [000] ..... 1.020000: sched_process_exit: comm=ctr pid=5 prio=120",
	}, "\n")
	r, err := milestones(parseSchedTrace(trace), 5, 10, "shim", 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"spare": 1, "faults serve": 1, "cpu serve": 4, "faults children": 1} {
		if got := r[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if _, ok := r["serve exec"]; ok {
		t.Error("a spare has no exec in the run")
	}
	if got, want := r["child exec enarx-keep"], 109.0; got < want-0.01 || got > want+0.01 {
		t.Errorf("the Keep's exec at %v ms, want %v", got, want)
	}
}

// TestPhaseSpareKeep: a run whose Keep is the spare's, exec'd before the
// run, gets that Keep's exit and cost; the server's child exec'd in the
// run is the spare's next Keep, not the run's.
func TestPhaseSpareKeep(t *testing.T) {
	trace := strings.Join([]string{
		" ctr-5 (    5) [000] ..... 0.900000: sched_process_exec: filename=/usr/bin/ctr pid=5 old_pid=5",
		" containerd-10 (   10) [000] ..... 1.000000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=20",
		" shim-20 (   20) [000] ..... 1.002000: sched_process_exec: filename=/bin/shim pid=20 old_pid=20",
		" shim-20 (   20) [000] ..... 1.005000: sched_process_exit: comm=shim pid=20 prio=120",
		" keep-40 (   40) [000] ..... 1.006000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" keep-41 (   40) [000] ..... 1.007000: sched_stat_runtime: comm=keep pid=41 runtime=2000000 [ns]",
		" keep-40 (   40) [000] ..... 1.011000: sched_process_exit: comm=keep pid=40 prio=120",
		" server-30 (   30) [000] ..... 1.012000: sched_process_fork: comm=server pid=30 child_comm=server child_pid=50",
		" keep-50 (   50) [000] ..... 1.013000: sched_process_exec: filename=/bin/enarx-keep pid=50 old_pid=50",
		" keep-50 (   50) [000] ..... 1.014000: page_fault_user: address=0x1 ip=0x2 error_code=0x6",
		" containerd-10 (   10) [000] ..... 1.015000: sched_process_fork: comm=containerd pid=10 child_comm=containerd child_pid=60",
		" shim-60 (   60) [000] ..... 1.016000: sched_process_exec: filename=/bin/shim pid=60 old_pid=60",
		" shim-60 (   60) [000] ..... 1.017000: sched_process_exit: comm=shim pid=60 prio=120",
		" ctr-5 (    5) [000] ..... 1.020000: sched_process_exit: comm=ctr pid=5 prio=120",
	}, "\n")
	r, err := milestones(parseSchedTrace(trace), 5, 10, "shim", 40)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"spare": 1, "spare keep": 1, "faults children": 2, "cpu children": 2} {
		if got := r[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]float64{"adopted keep exit": 111, "next spare keep exec": 113} {
		if got := r[k]; got < want-0.01 || got > want+0.01 {
			t.Errorf("%s at %v ms, want %v", k, got, want)
		}
	}
	if _, ok := r["child exec enarx-keep"]; ok {
		t.Error("the spare's next Keep is taken for the run's")
	}
	if got := keepPIDFromLog("time=x level=info msg=\"keep ready\" attest=1ms id=abc pid=40 runtime=io\n", "abc"); got != 40 {
		t.Errorf("keepPIDFromLog = %d, want 40", got)
	}
}
