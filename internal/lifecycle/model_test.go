package lifecycle

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// history is what the invariants need to remember of a sequence, per task:
// the exit status reported for its current generation (-1: none yet).
type history []int

func (h history) key() string { return fmt.Sprint([]int(h)) }

// allOps lists every operation on the tasks of m: each request (Kill with
// each signal) and each Exit the environment may perform.
func allOps(m Model) []Op {
	var ops []Op
	for i := range m.Tasks {
		for _, k := range Requests {
			if k == Kill {
				for _, s := range Signals {
					ops = append(ops, Op{Kind: Kill, Task: i, Signal: s})
				}
				continue
			}
			ops = append(ops, Op{Kind: k, Task: i})
		}
	}
	return append(ops, m.Exits()...)
}

// checkStep checks the invariants on one step, op from m with history h,
// and returns the history after it.
func checkStep(m Model, h history, op Op) (history, error) {
	before := m.Tasks[op.Task]
	a, next := m.Apply(op)
	after := next.Tasks[op.Task]
	for i := range m.Tasks {
		if i != op.Task && next.Tasks[i] != m.Tasks[i] {
			return nil, fmt.Errorf("%s changed task %d", op, i)
		}
	}
	switch a.Code {
	case codes.Unknown, codes.Internal:
		return nil, fmt.Errorf("%s answers %v: not a clear error", op, a.Code)
	case codes.Unimplemented:
		if op.Kind == Create {
			// containerd 2.x takes it as a reason to retry with task API v2.
			return nil, fmt.Errorf("Create answers Unimplemented")
		}
	}
	if a.Code != codes.OK && next.Key() != m.Key() {
		return nil, fmt.Errorf("%s failed (%s) but changed the state", op, a)
	}
	h = append(history(nil), h...)

	// A deleted task never reappears: only Create leaves Deleted, and it
	// makes a new task.
	if !before.Phase.Exists() && op.Kind != Create && op.Kind != Exit {
		if a.Code != codes.NotFound || after != before {
			return nil, fmt.Errorf("%s on a %s task: %s, %s; want NotFound and no change", op, before.Phase, a, after)
		}
	}
	if after.Gen != before.Gen && (op.Kind != Create || after.Gen != before.Gen+1 || before.Phase.Exists()) {
		return nil, fmt.Errorf("%s: generation %d → %d", op, before.Gen, after.Gen)
	}
	if after.Gen != before.Gen {
		h[op.Task] = -1
	}

	// Phases move along the edges of the state machine only.
	if before.Phase != after.Phase {
		edge := before.Phase.String() + "→" + after.Phase.String() + " by " + op.Kind.String()
		switch edge {
		case "none→created by Create", "deleted→created by Create",
			"created→running by Start",
			"created→stopped by Exit", "running→stopped by Exit",
			"created→deleted by Delete", "stopped→deleted by Delete":
		default:
			return nil, fmt.Errorf("%s: edge %s is not in the state machine", op, edge)
		}
	}

	// Kill on a stopped task is a clear error.
	if op.Kind == Kill && before.Phase == Stopped {
		if a.Code != codes.NotFound || a.Says != SaysAlreadyFinished || after != before {
			return nil, fmt.Errorf("Kill of a stopped task: %s, want NotFound %q", a, SaysAlreadyFinished)
		}
	}

	// An exit is never lost: a task leaves created and running by Exit (or
	// Delete of a created task, which kills it), with a status it may
	// exit with; every answer carrying an exit status carries that one.
	if (before.Phase == Created || before.Phase == Running) && after.Phase != before.Phase && after.Phase != Running {
		status := after.Status
		switch {
		case op.Kind == Exit && before.Exits.Has(op.Status) && status == op.Status:
		case op.Kind == Delete && before.Phase == Created && a.ExitStatus == 128+SIGKILL:
			status = a.ExitStatus
		default:
			return nil, fmt.Errorf("%s: %s → %s with status %d", op, before, after, status)
		}
		if h[op.Task] != -1 {
			return nil, fmt.Errorf("%s: a second exit (%d after %d)", op, status, h[op.Task])
		}
		h[op.Task] = status
	}
	if before.Phase == Running && op.Kind == Delete && a.Code == codes.OK {
		return nil, fmt.Errorf("Delete of a running task succeeded: its exit would be lost")
	}
	if (before.Phase == Created || before.Phase == Running) && after.Phase == before.Phase && op.Kind == Kill {
		if !after.Exits.Has(128 + op.Signal) {
			return nil, fmt.Errorf("%s: the signal's exit is not pending: %s", op, after)
		}
	}
	carries := a.Code == codes.OK && !a.Blocks &&
		(op.Kind == Wait || op.Kind == Delete || (op.Kind == State && a.Phase == Stopped))
	if carries && (op.Kind != Delete || before.Phase == Stopped) {
		if h[op.Task] != a.ExitStatus {
			return nil, fmt.Errorf("%s answers status %d, the task exited with %d", op, a.ExitStatus, h[op.Task])
		}
	}
	if op.Kind == Wait && a.Code == codes.OK && a.Blocks != (before.Phase != Stopped) {
		return nil, fmt.Errorf("Wait on a %s task: %s", before.Phase, a)
	}
	return h, nil
}

// checkDrain checks that from m every created or running task can be made
// to exit and its status observed: Kill(SIGKILL), its Exit, then Wait.
func checkDrain(m Model, h history) error {
	for i, t := range m.Tasks {
		if t.Phase != Created && t.Phase != Running {
			continue
		}
		steps := []Op{{Kind: Kill, Task: i, Signal: SIGKILL}, {Kind: Exit, Task: i, Status: 128 + SIGKILL}, {Kind: Wait, Task: i}}
		mm, hh := m, h
		for _, op := range steps {
			var err error
			if hh, err = checkStep(mm, hh, op); err != nil {
				return fmt.Errorf("draining task %d: %w", i, err)
			}
			_, mm = mm.Apply(op)
		}
		if a, _ := mm.Apply(Op{Kind: Wait, Task: i}); a.Code != codes.OK || a.ExitStatus != 128+SIGKILL {
			return fmt.Errorf("draining task %d: Wait %s", i, a)
		}
	}
	return nil
}

// TestModelInvariants checks the invariants on every sequence of up to depth
// operations (requests and exits) from the initial state of a sleeper, an
// exiter and a broken task. States are explored once per remaining depth:
// the invariants depend on the state and the history kept in it.
func TestModelInvariants(t *testing.T) {
	depth := 8
	if testing.Short() {
		depth = 6
	}
	start := New(Fixture{Kind: Sleeper}, Fixture{Kind: Exiter, Status: 3}, Fixture{Kind: Broken})
	type node struct {
		m Model
		h history
	}
	explored := map[string]int{} // state and history → the most depth left it was explored with
	var steps, states int
	phasesSeen := map[string]bool{}
	var walk func(n node, left int, path []Op)
	walk = func(n node, left int, path []Op) {
		key := n.m.Key() + n.h.key()
		if d, ok := explored[key]; ok && d >= left {
			return
		}
		if _, ok := explored[key]; !ok {
			states++
			if err := checkDrain(n.m, n.h); err != nil {
				t.Fatalf("after %v: %v", path, err)
			}
		}
		explored[key] = left
		for _, tk := range n.m.Tasks {
			phasesSeen[tk.Fixture.String()+" "+tk.Phase.String()] = true
		}
		if left == 0 {
			return
		}
		for _, op := range allOps(n.m) {
			steps++
			h, err := checkStep(n.m, n.h, op)
			if err != nil {
				t.Fatalf("after %v: %v", path, err)
			}
			_, next := n.m.Apply(op)
			walk(node{next, h}, left-1, append(path[:len(path):len(path)], op))
		}
	}
	walk(node{start, history{-1, -1, -1}}, depth, nil)
	t.Logf("depth %d: %d states, %d steps checked", depth, states, steps)
	for _, want := range []string{"sleeper created", "sleeper running", "sleeper stopped", "sleeper deleted",
		"exiter(3) created", "exiter(3) running", "exiter(3) stopped", "exiter(3) deleted", "broken none"} {
		if !phasesSeen[want] {
			t.Errorf("the walk never reached %s", want)
		}
	}
}

// TestTrackerFollowsExits: the tracker keeps both the state before and after
// a pending exit, and an answer settles it.
func TestTrackerFollowsExits(t *testing.T) {
	tr := NewTracker(New(Fixture{Kind: Exiter, Status: 7}))
	must := func(op Op, got Answer) {
		t.Helper()
		if err := tr.Observe(op, got); err != nil {
			t.Fatal(err)
		}
	}
	must(Op{Kind: Create}, Answer{})
	must(Op{Kind: Start}, Answer{})
	if tr.MayBlockForever(0) {
		t.Fatal("a started exiter may block forever")
	}
	// Before its exit is seen, the exiter may be running or stopped, and
	// may be killed: its status is then 7 or 143.
	must(Op{Kind: State}, Answer{Phase: Running})
	must(Op{Kind: Kill, Signal: SIGTERM}, Answer{})
	if got := tr.Expect(Op{Kind: Delete}); len(got) != 3 {
		t.Errorf("Delete may answer %v, want FailedPrecondition, OK 7, OK 143", got)
	}
	if err := tr.Observe(Op{Kind: State}, Answer{Phase: Stopped, ExitStatus: 9}); err == nil {
		t.Error("status 9 accepted")
	} else {
		t.Log(err)
	}
	must(Op{Kind: Wait}, Answer{ExitStatus: 143})
	must(Op{Kind: Kill, Signal: SIGKILL}, Answer{Code: codes.NotFound, Says: "task x: process already finished: not found"})
	must(Op{Kind: Delete}, Answer{ExitStatus: 143})
	if err := tr.Observe(Op{Kind: State}, Answer{Phase: Stopped, ExitStatus: 143}); err == nil {
		t.Error("a deleted task reappeared")
	}
	must(Op{Kind: State}, Answer{Code: codes.NotFound, Says: "task x not found"})
}

// TestGenerateReplays: a seed gives the same sequence, and the sequences
// reach every phase.
func TestGenerateReplays(t *testing.T) {
	m := New(Fixture{Kind: Sleeper}, Fixture{Kind: Exiter, Status: 3}, Fixture{Kind: Broken})
	a := Generate(rand.New(rand.NewSource(7)), m, 1000, Requests)
	b := Generate(rand.New(rand.NewSource(7)), m, 1000, Requests)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("the same seed gave two sequences")
	}
	counts := map[OpKind]int{}
	for _, op := range a {
		counts[op.Kind]++
	}
	for _, k := range Requests {
		if counts[k] == 0 {
			t.Errorf("no %s in 1000 operations: %v", k, counts)
		}
	}
}

// TestTableInDocs: the table in the docs is the model's.
func TestTableInDocs(t *testing.T) {
	table := Table()
	var found []string
	for _, name := range []string{"reliability.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil {
			continue
		}
		found = append(found, name)
		if strings.Contains(string(b), table) {
			return
		}
	}
	t.Errorf("docs %v do not hold the model's table; it is:\n\n%s", found, table)
}

// TestWalkCoversTable: the fixed walk performs every request in every phase.
func TestWalkCoversTable(t *testing.T) {
	m, ops := Walk()
	covered := map[string]bool{}
	for _, op := range ops {
		phase := m.Tasks[op.Task].Phase
		if phase == None {
			phase = Deleted
		}
		covered[op.Kind.String()+" "+phase.String()] = true
		_, m = m.Apply(op)
		for len(m.Exits()) > 0 {
			_, m = m.Apply(m.Exits()[0])
		}
	}
	for _, k := range Requests {
		for _, p := range []Phase{Deleted, Created, Running, Stopped} {
			if !covered[k.String()+" "+p.String()] {
				t.Errorf("the walk never does %s on a %s task", k, p)
			}
		}
	}
}
