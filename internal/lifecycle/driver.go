package lifecycle

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc/codes"
)

// Environment variables of the randomized tests.
const (
	// EnvSeed is the seed of the first sequence; sequence k uses seed+k.
	EnvSeed = "LIFECYCLE_SEED"
	// EnvOps is the number of requests of a sequence.
	EnvOps = "LIFECYCLE_OPS"
	// EnvSeqs is the number of sequences.
	EnvSeqs = "LIFECYCLE_SEQS"
	// EnvVerbose=1 logs every sequence's transcript, not only a failing one's.
	EnvVerbose = "LIFECYCLE_VERBOSE"
)

// Settings reads the seed, the number of sequences and of requests per
// sequence from the environment, with defaults. The default seed is the
// time.
func Settings(t testing.TB, seqs, ops int) (seed int64, nseqs, nops int) {
	t.Helper()
	seed = time.Now().UnixNano() % 1_000_000_000
	if v := os.Getenv(EnvSeed); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvSeed, v, err)
		}
		seed = s
	}
	read := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	return seed, read(EnvSeqs, seqs), read(EnvOps, ops)
}

// Fixtures draws the workloads of n task IDs: at least one sleeper and one
// exiter, and, when n > 2, one broken.
func Fixtures(rng *rand.Rand, n int) []Fixture {
	fs := []Fixture{{Kind: Sleeper}, {Kind: Exiter, Status: rng.Intn(126)}}
	if n > 2 {
		fs = append(fs, Fixture{Kind: Broken})
	}
	for len(fs) < n {
		if rng.Intn(2) == 0 {
			fs = append(fs, Fixture{Kind: Sleeper})
		} else {
			fs = append(fs, Fixture{Kind: Exiter, Status: rng.Intn(126)})
		}
	}
	rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	return fs
}

// Report is what a request reported besides its answer.
type Report struct {
	Pid      uint32    // Create, State, Pids (the process listed)
	ExitedAt time.Time // Wait, Delete, State of a stopped task
}

// Event is a task event the runtime published.
type Event struct {
	Topic      string // "/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"
	Task       int
	Pid        uint32
	ExitStatus int
	ExitedAt   time.Time
}

// Runtime is the real runtime Run drives: the shim's task service, or
// containerd with the shim behind it.
type Runtime interface {
	// Do performs request op and returns its answer: the code and
	// message of its error, or what it returned.
	Do(ctx context.Context, op Op) (Answer, Report)
	// Events returns the task events published so far, in order.
	Events() []Event
}

// Listed is one task a Lister lists: its State answer.
type Listed struct {
	Answer
	Report
}

// Lister is a Runtime that lists its tasks (`ctr tasks ls`): a task it does
// not list answers State with NotFound.
type Lister interface {
	List(ctx context.Context) (map[int]Listed, error)
}

// Options tune Run.
type Options struct {
	// Replay says how to run this sequence again (in failure messages).
	Replay string
	// Settle is how long Run lets an asynchronous Wait reach the runtime
	// before the next request.
	Settle time.Duration
	// Timeout bounds each request, and the wait for events.
	Timeout time.Duration
}

// incarnation is one task: one successful Create of a task ID.
type incarnation struct {
	task, gen int
	pid       uint32
	started   bool
	// The exit, once a request reported it.
	exited  bool
	status  int
	at      time.Time
	source  string
	deleted int // the step that deleted it, 0 if none
}

type pendingWait struct {
	task, gen, step int
	done            chan struct{}
	answer          Answer
	report          Report
}

type driver struct {
	t          testing.TB
	rt         Runtime
	tr         *Tracker
	o          Options
	step       int
	transcript []string
	lives      map[[2]int]*incarnation
	waits      []*pendingWait
	counts     map[string]int
}

// Run drives rt with ops from state m, follows it with a Tracker and checks
// every answer against the model and the invariants: every exit is reported
// with one status and time by State, Wait, Delete and exactly one TaskExit
// event; a deleted task never reappears; Kill on a stopped task is a clear
// error. At the end it kills and deletes every task (checked too) and waits
// for the asynchronous Waits and the events.
func Run(t testing.TB, rt Runtime, m Model, ops []Op, o Options) {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	d := &driver{t: t, rt: rt, tr: NewTracker(m), o: o, lives: map[[2]int]*incarnation{}, counts: map[string]int{}}
	for _, op := range ops {
		d.do(op)
	}
	// Drain: every task killed, waited for and deleted, then gone.
	for i := range m.Tasks {
		_, phases := d.tr.Task(i)
		live := false
		for _, p := range phases {
			live = live || p.Exists()
		}
		if live {
			d.do(Op{Kind: Kill, Task: i, Signal: SIGKILL})
			d.do(Op{Kind: Wait, Task: i})
			d.do(Op{Kind: Delete, Task: i})
		}
		d.do(Op{Kind: State, Task: i})
	}
	d.list()
	d.checkWaits()
	d.checkEvents()
	var requests, errors []string
	for k, v := range d.counts {
		if strings.HasPrefix(k, "code ") {
			errors = append(errors, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "code "), v))
		} else {
			requests = append(requests, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(requests)
	sort.Strings(errors)
	if os.Getenv(EnvVerbose) == "1" {
		t.Logf("transcript:\n%s", strings.Join(d.transcript, "\n"))
	}
	t.Logf("%d requests (%s), %d tasks created; errors: %s", d.step, strings.Join(requests, ", "), len(d.lives), strings.Join(errors, ", "))
}

func (d *driver) fail(format string, args ...any) {
	d.t.Helper()
	d.t.Fatalf("%s\n\ntranscript:\n%s\n\nreplay: %s", fmt.Sprintf(format, args...), strings.Join(d.transcript, "\n"), d.o.Replay)
}

func (d *driver) gen(i int) int { return d.tr.States()[0].Tasks[i].Gen }

func (d *driver) life(i int) *incarnation {
	key := [2]int{i, d.gen(i)}
	l := d.lives[key]
	if l == nil {
		l = &incarnation{task: i, gen: key[1]}
		d.lives[key] = l
	}
	return l
}

// exit records an exit that source reported for the current incarnation
// of task i.
func (d *driver) exit(l *incarnation, status int, at time.Time, source string) {
	d.t.Helper()
	if at.IsZero() {
		d.fail("%s reported exit status %d without a time", source, status)
	}
	if !l.exited {
		l.exited, l.status, l.at, l.source = true, status, at, source
		return
	}
	if l.status != status || !l.at.Equal(at) {
		d.fail("task %d#%d: %s reports exit %d at %s, %s reported %d at %s: the exit is recorded twice",
			l.task, l.gen, source, status, at.Format(time.RFC3339Nano), l.source, l.status, l.at.Format(time.RFC3339Nano))
	}
}

func (d *driver) do(op Op) {
	d.t.Helper()
	d.step++
	d.counts[op.Kind.String()]++
	if op.Kind == Wait && d.tr.MayBlockForever(op.Task) {
		d.waitAsync(op)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	began := time.Now()
	got, rep := d.rt.Do(ctx, op)
	cancel()
	line := fmt.Sprintf("%4d %-22s → %s (%v)", d.step, op, got, time.Since(began).Round(time.Millisecond))
	if rep.Pid != 0 {
		line += fmt.Sprintf(" pid %d", rep.Pid)
	}
	d.transcript = append(d.transcript, line)
	if got.Code != codes.OK {
		d.counts["code "+got.Code.String()]++
	}
	if err := d.tr.Observe(op, got); err != nil {
		d.fail("%v", err)
	}
	d.record(op, got, rep, "")
	d.list()
}

// record checks what a request reported against the incarnation it
// concerns.
func (d *driver) record(op Op, got Answer, rep Report, how string) {
	d.t.Helper()
	if got.Code != codes.OK {
		return
	}
	l := d.life(op.Task)
	source := fmt.Sprintf("%s%s at step %d", how, op.Kind, d.step)
	samePid := func() {
		if rep.Pid != l.pid {
			d.fail("%s: pid %d, the task's is %d", source, rep.Pid, l.pid)
		}
	}
	switch op.Kind {
	case Create:
		if rep.Pid == 0 {
			d.fail("Create reported no pid")
		}
		l.pid = rep.Pid
	case Start:
		l.started = true
		samePid()
	case State:
		samePid()
		if got.Phase == Stopped {
			d.exit(l, got.ExitStatus, rep.ExitedAt, source)
		}
	case Pids:
		if got.Pids == 1 {
			samePid()
		}
	case Wait:
		d.exit(l, got.ExitStatus, rep.ExitedAt, source)
	case Delete:
		samePid()
		d.exit(l, got.ExitStatus, rep.ExitedAt, source)
		l.deleted = d.step
	}
}

// list compares the runtime's list of tasks with the model.
func (d *driver) list() {
	d.t.Helper()
	lister, ok := d.rt.(Lister)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	listed, err := lister.List(ctx)
	cancel()
	if err != nil {
		d.fail("list tasks: %v", err)
	}
	for i := range d.tr.States()[0].Tasks {
		op := Op{Kind: State, Task: i}
		got, ok := listed[i]
		if !ok {
			got = Listed{Answer: Answer{Code: codes.NotFound, Says: "not found (not listed)"}}
		}
		if err := d.tr.Observe(op, got.Answer); err != nil {
			d.fail("tasks ls after step %d: %v", d.step, err)
		}
		d.record(op, got.Answer, got.Report, "tasks ls: ")
	}
}

func (d *driver) waitAsync(op Op) {
	w := &pendingWait{task: op.Task, gen: d.gen(op.Task), step: d.step, done: make(chan struct{})}
	d.waits = append(d.waits, w)
	d.transcript = append(d.transcript, fmt.Sprintf("%4d %-22s → (blocks: answer checked at the end)", d.step, op))
	d.tr.Advance(op)
	go func() {
		defer close(w.done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		w.answer, w.report = d.rt.Do(ctx, op)
	}()
	time.Sleep(d.o.Settle)
}

// checkWaits checks the answers of the Waits that blocked: each is the exit
// of the task it was sent to. One that reached the runtime only after that
// task was deleted may answer NotFound, or the exit of the next task with
// the same ID.
func (d *driver) checkWaits() {
	d.t.Helper()
	own, late := 0, 0
	for _, w := range d.waits {
		select {
		case <-w.done:
		case <-time.After(d.o.Timeout):
			d.fail("Wait(%d) sent at step %d has not returned though every task was deleted", w.task, w.step)
		}
		l := d.lives[[2]int{w.task, w.gen}]
		what := fmt.Sprintf("Wait(%d) sent at step %d to task %d#%d", w.task, w.step, w.task, w.gen)
		if l == nil || !l.exited {
			d.fail("%s: no exit recorded for the task", what)
		}
		switch {
		case w.answer.Code == codes.OK && w.answer.ExitStatus == l.status && w.report.ExitedAt.Equal(l.at):
			own++
		case l.deleted > w.step && w.answer.Code == codes.NotFound:
			late++
		case l.deleted > w.step && w.answer.Code == codes.OK && d.laterExit(w):
			late++
		default:
			d.fail("%s answered %s (exited at %s); the task exited with %d at %s",
				what, w.answer, w.report.ExitedAt.Format(time.RFC3339Nano), l.status, l.at.Format(time.RFC3339Nano))
		}
	}
	if len(d.waits) > 0 {
		d.t.Logf("%d blocking Waits: %d answered the exit, %d reached the runtime after the task was deleted", len(d.waits), own, late)
	}
}

func (d *driver) laterExit(w *pendingWait) bool {
	for key, l := range d.lives {
		if key[0] == w.task && key[1] > w.gen && l.exited && l.status == w.answer.ExitStatus && l.at.Equal(w.report.ExitedAt) {
			return true
		}
	}
	return false
}

// checkEvents checks that every task published its create, start (when it
// was started), exit (with the status and time recorded) and delete events,
// each once and in that order, and that no event names another task.
func (d *driver) checkEvents() {
	d.t.Helper()
	type key struct {
		task int
		pid  uint32
	}
	want := map[key]*incarnation{}
	for _, l := range d.lives {
		if l.pid != 0 {
			want[key{l.task, l.pid}] = l
		}
	}
	complete := func(events []Event) bool {
		seen := map[key]map[string]int{}
		for _, e := range events {
			k := key{e.Task, e.Pid}
			if seen[k] == nil {
				seen[k] = map[string]int{}
			}
			seen[k][e.Topic]++
		}
		for k := range want {
			if seen[k]["/tasks/delete"] == 0 || seen[k]["/tasks/exit"] == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(d.o.Timeout)
	for !complete(d.rt.Events()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // time for a duplicate to arrive
	events := d.rt.Events()
	order := map[key][]string{}
	for _, e := range events {
		k := key{e.Task, e.Pid}
		l := want[k]
		if l == nil {
			d.fail("event %s for task %d pid %d (status %d), which no request created", e.Topic, e.Task, e.Pid, e.ExitStatus)
		}
		order[k] = append(order[k], e.Topic)
		if e.Topic == "/tasks/exit" {
			if !l.exited {
				d.fail("task %d#%d: exit event with status %d, but no request reported its exit", l.task, l.gen, e.ExitStatus)
			}
			if e.ExitStatus != l.status || !e.ExitedAt.Equal(l.at) {
				d.fail("task %d#%d: exit event with status %d at %s, %s reported %d at %s",
					l.task, l.gen, e.ExitStatus, e.ExitedAt.Format(time.RFC3339Nano), l.source, l.status, l.at.Format(time.RFC3339Nano))
			}
		}
	}
	for k, l := range want {
		got := strings.Join(order[k], " ")
		expect := "/tasks/create /tasks/exit /tasks/delete"
		if l.started {
			expect = "/tasks/create /tasks/start /tasks/exit /tasks/delete"
		}
		if got != expect {
			d.fail("task %d#%d (pid %d): events %q, want %q", l.task, l.gen, l.pid, got, expect)
		}
	}
}

// PhaseOf is the phase a task API State answer reports.
func PhaseOf(s tasktypes.Status) Phase {
	switch s {
	case tasktypes.Status_CREATED:
		return Created
	case tasktypes.Status_RUNNING:
		return Running
	case tasktypes.Status_STOPPED:
		return Stopped
	}
	return None
}
