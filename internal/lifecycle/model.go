// Package lifecycle is the task lifecycle of the enarx runtime written down
// as an executable model: what every task API request answers in every state
// of a task, and how it changes the state. docs/reliability.md is
// the same model as a table.
//
// The model is deterministic: Model.Apply maps a state and an operation to an
// answer and a new state. What the runtime does not decide itself (when a
// Keep that was signalled, or whose workload ends by itself, actually exits)
// is an operation too, Exit, which only the environment performs. A test
// that drives the real shim cannot see when Exit happens, so it follows the
// model with a Tracker: the set of states the shim may be in, narrowed by
// every answer it gets.
//
// The invariants the model keeps (model_test.go checks them on every
// sequence of operations up to a length):
//
//   - an exit is never lost: a task leaves created or running only through
//     Exit (or Delete of a created task, which kills it first), and from then
//     until Delete every answer that carries an exit status carries the same
//     one; a Wait that blocked gets it too;
//   - a deleted task never reappears: every request on it but Create answers
//     NotFound and changes nothing; Create makes a new task (a new
//     generation), never the old one back;
//   - Kill on a stopped task is a clear error: NotFound, "process already
//     finished", as containerd's runc shim answers, and nothing changes.
package lifecycle

import (
	"fmt"
	"math/bits"
	"strings"

	"google.golang.org/grpc/codes"
)

// Phase is where a task is in its life.
type Phase uint8

const (
	// None: there is no task with this ID; none was ever created, or
	// every Create failed.
	None Phase = iota
	// Created: the Keep is ready (module compiled, attested) and waits
	// for Start.
	Created
	// Running: the workload runs.
	Running
	// Stopped: the Keep has exited and its status is recorded.
	Stopped
	// Deleted: the task was deleted. As None, but it existed once.
	Deleted
)

var phaseNames = [...]string{"none", "created", "running", "stopped", "deleted"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", p)
}

// Exists reports whether a task in phase p is known to the shim (and to
// containerd): created, running or stopped.
func (p Phase) Exists() bool { return p == Created || p == Running || p == Stopped }

// FixtureKind is what a task's workload does.
type FixtureKind uint8

const (
	// Sleeper runs until it is signalled.
	Sleeper FixtureKind = iota
	// Exiter exits with its Fixture's Status as soon as it is started.
	Exiter
	// Broken cannot be created (its module is missing): Create fails
	// with InvalidArgument and leaves no task.
	Broken
)

// Fixture is the workload of a task ID: every task created with that ID
// runs it.
type Fixture struct {
	Kind   FixtureKind
	Status int // the exit status of an Exiter (0-255)
}

func (f Fixture) String() string {
	switch f.Kind {
	case Sleeper:
		return "sleeper"
	case Exiter:
		return fmt.Sprintf("exiter(%d)", f.Status)
	case Broken:
		return "broken"
	}
	return fmt.Sprintf("fixture(%d)", f.Kind)
}

// OpKind is an operation: a task API request, or Exit.
type OpKind uint8

const (
	Create OpKind = iota
	Start
	Kill
	Wait
	State
	Delete
	Pids
	CloseIO
	Stats
	Pause
	Resume
	Exec
	Update
	Checkpoint
	// Exit is not a request: the task's Keep exits with Op.Status. Only
	// the environment performs it, when the model allows it (Exits).
	Exit
)

var opNames = [...]string{"Create", "Start", "Kill", "Wait", "State", "Delete", "Pids", "CloseIO", "Stats",
	"Pause", "Resume", "Exec", "Update", "Checkpoint", "Exit"}

func (k OpKind) String() string {
	if int(k) < len(opNames) {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", k)
}

// Requests are the task API requests of the model, every OpKind but Exit.
var Requests = []OpKind{Create, Start, Kill, Wait, State, Delete, Pids, CloseIO, Stats, Pause, Resume, Exec, Update, Checkpoint}

// Unsupported are the requests the enarx runtime refuses for every task:
// a Keep cannot be frozen, checkpointed, exec'd into, or resized.
var Unsupported = []OpKind{Pause, Resume, Exec, Update, Checkpoint}

// The signals of the model and what a Keep does with each, created or
// running: it exits with 128+signal (SIGINT and SIGTERM interrupt the
// engine; SIGKILL cannot be caught).
const (
	SIGINT  = 2
	SIGKILL = 9
	SIGTERM = 15
)

// Signals are the signals Kill sends in the model.
var Signals = []int{SIGINT, SIGKILL, SIGTERM}

// Op is one operation on task Task (an index into Model.Tasks).
type Op struct {
	Kind   OpKind
	Task   int
	Signal int // Kill: one of Signals
	Status int // Exit: the exit status
}

func (o Op) String() string {
	switch o.Kind {
	case Kill:
		return fmt.Sprintf("Kill(%d, sig %d)", o.Task, o.Signal)
	case Exit:
		return fmt.Sprintf("Exit(%d, status %d)", o.Task, o.Status)
	}
	return fmt.Sprintf("%s(%d)", o.Kind, o.Task)
}

// Answer is what a request answers. Code is the gRPC (ttrpc) status code,
// the errdefs class of containerd: OK, NotFound, AlreadyExists,
// FailedPrecondition, InvalidArgument, Unimplemented.
type Answer struct {
	Code codes.Code
	// Says is a fragment the error's message contains (the part a user
	// reads): empty when the model makes no promise about the words.
	// In an answer got from the shim, it is the whole message.
	Says string
	// Phase is the phase State reports (Created, Running or Stopped).
	Phase Phase
	// ExitStatus: Wait and Delete, and State of a stopped task.
	ExitStatus int
	// Pids is how many processes Pids lists.
	Pids int
	// Blocks: Wait answers only once the task has stopped, with the
	// status the task's Exit brings.
	Blocks bool
}

func (a Answer) String() string {
	if a.Code != codes.OK {
		if a.Says != "" {
			return fmt.Sprintf("%v %q", a.Code, a.Says)
		}
		return a.Code.String()
	}
	var parts []string
	if a.Blocks {
		parts = append(parts, "blocks until exit")
	}
	if a.Phase != None {
		parts = append(parts, a.Phase.String())
	}
	if a.Phase == Stopped || a.ExitStatus != 0 {
		parts = append(parts, fmt.Sprintf("status %d", a.ExitStatus))
	}
	if a.Pids != 0 {
		parts = append(parts, fmt.Sprintf("%d pids", a.Pids))
	}
	if len(parts) == 0 {
		return "OK"
	}
	return "OK " + strings.Join(parts, ", ")
}

// Matches reports whether got, the shim's answer to op, is this answer: the
// same code, a message containing Says, and what op's answer carries.
func (a Answer) Matches(op Op, got Answer) bool {
	if a.Code != got.Code || !strings.Contains(got.Says, a.Says) {
		return false
	}
	if a.Code != codes.OK {
		return true
	}
	switch op.Kind {
	case State:
		return a.Phase == got.Phase && (a.Phase != Stopped || a.ExitStatus == got.ExitStatus)
	case Wait:
		// A Wait that returned did not block (or no longer does).
		return !a.Blocks && a.ExitStatus == got.ExitStatus
	case Delete:
		return a.ExitStatus == got.ExitStatus
	case Pids:
		return a.Pids == got.Pids
	}
	return true
}

// StatusSet is a set of exit statuses (0-255).
type StatusSet [4]uint64

// With returns s with n added.
func (s StatusSet) With(n int) StatusSet {
	s[n/64&3] |= 1 << (n % 64)
	return s
}

// Has reports whether n is in s.
func (s StatusSet) Has(n int) bool { return n >= 0 && n < 256 && s[n/64]&(1<<(n%64)) != 0 }

// Empty reports whether s has no status.
func (s StatusSet) Empty() bool { return s == StatusSet{} }

// List returns the statuses of s in order.
func (s StatusSet) List() []int {
	var out []int
	for i, w := range s {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			out = append(out, i*64+b)
			w &^= 1 << b
		}
	}
	return out
}

// Task is the state of one task ID.
type Task struct {
	Fixture Fixture
	Phase   Phase
	// Gen counts the successful Creates of this ID: each is a new task.
	Gen int
	// Exits are the statuses the Keep may exit with on its own from now
	// on (Exit): a signal it was sent, or its workload's end. Empty: it
	// runs until it is signalled.
	Exits StatusSet
	// Status is the exit status of a stopped task.
	Status int
}

func (t Task) String() string {
	s := fmt.Sprintf("%s#%d %s", t.Fixture, t.Gen, t.Phase)
	switch {
	case t.Phase == Stopped:
		s += fmt.Sprintf(" (%d)", t.Status)
	case !t.Exits.Empty():
		s += fmt.Sprintf(" (exits %v)", t.Exits.List())
	}
	return s
}

// Model is the state of a set of task IDs served by one runtime.
type Model struct {
	Tasks []Task
}

// New returns the model of task IDs running fixtures, none created yet.
func New(fixtures ...Fixture) Model {
	m := Model{Tasks: make([]Task, len(fixtures))}
	for i, f := range fixtures {
		m.Tasks[i] = Task{Fixture: f}
	}
	return m
}

func (m Model) String() string {
	parts := make([]string, len(m.Tasks))
	for i, t := range m.Tasks {
		parts[i] = fmt.Sprintf("%d: %s", i, t)
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// Key identifies the state m is in.
func (m Model) Key() string {
	var b strings.Builder
	for _, t := range m.Tasks {
		fmt.Fprintf(&b, "%d/%d/%d/%x/%d;", t.Fixture.Kind, t.Phase, t.Gen, t.Exits, t.Status)
	}
	return b.String()
}

func (m Model) with(i int, t Task) Model {
	tasks := append([]Task(nil), m.Tasks...)
	tasks[i] = t
	return Model{Tasks: tasks}
}

// Exits lists the Exit operations the environment may perform in state m.
func (m Model) Exits() []Op {
	var ops []Op
	for i, t := range m.Tasks {
		if t.Phase == Created || t.Phase == Running {
			for _, s := range t.Exits.List() {
				ops = append(ops, Op{Kind: Exit, Task: i, Status: s})
			}
		}
	}
	return ops
}

// What the clear errors say. The shim's messages contain these words, and so
// do containerd's when it answers for the shim (a task it has no record of).
const (
	SaysNotFound        = "not found"
	SaysAlreadyExists   = "already exists"
	SaysAlreadyFinished = "already finished"
	SaysRunning         = "running"
	SaysStopped         = "stopped"
	SaysNotSupported    = "not supported"
)

// Apply performs op in state m and returns the answer and the new state.
//
// Every request on a task ID with no task (None, Deleted) but Create answers
// NotFound and changes nothing. The rest:
//
//	          created                 running                 stopped(s)
//	Create    AlreadyExists           AlreadyExists           AlreadyExists
//	Start     OK → running            FailedPrecondition      FailedPrecondition
//	Kill(n)   OK, exits 128+n         OK, exits 128+n         NotFound "already finished"
//	Wait      blocks until exit       blocks until exit       OK s
//	State     OK created              OK running              OK stopped s
//	Delete    OK 137 → deleted        FailedPrecondition      OK s → deleted
//	Pids      OK [keep]               OK [keep]               FailedPrecondition
//	CloseIO   OK                      OK                      OK
//	Stats     OK                      OK                      OK
//	Pause...  Unimplemented           Unimplemented           Unimplemented
//	Exit(s)   → stopped(s)            → stopped(s)            -
//
// Create on None or Deleted: OK → created (a new generation), or
// InvalidArgument for a Broken fixture, changing nothing.
func (m Model) Apply(op Op) (Answer, Model) {
	if op.Task < 0 || op.Task >= len(m.Tasks) {
		return Answer{Code: codes.InvalidArgument, Says: "no such task index"}, m
	}
	t := m.Tasks[op.Task]
	if op.Kind == Exit {
		if (t.Phase != Created && t.Phase != Running) || !t.Exits.Has(op.Status) {
			return Answer{Code: codes.FailedPrecondition, Says: "no such exit pending"}, m
		}
		t.Phase, t.Status, t.Exits = Stopped, op.Status, StatusSet{}
		return Answer{}, m.with(op.Task, t)
	}
	if !t.Phase.Exists() {
		if op.Kind != Create {
			return Answer{Code: codes.NotFound, Says: SaysNotFound}, m
		}
		if t.Fixture.Kind == Broken {
			return Answer{Code: codes.InvalidArgument}, m
		}
		t.Phase, t.Gen, t.Exits, t.Status = Created, t.Gen+1, StatusSet{}, 0
		return Answer{}, m.with(op.Task, t)
	}
	switch op.Kind {
	case Create:
		return Answer{Code: codes.AlreadyExists, Says: SaysAlreadyExists}, m
	case Start:
		switch t.Phase {
		case Running:
			return Answer{Code: codes.FailedPrecondition, Says: SaysRunning}, m
		case Stopped:
			return Answer{Code: codes.FailedPrecondition, Says: SaysStopped}, m
		}
		t.Phase = Running
		if t.Fixture.Kind == Exiter {
			t.Exits = t.Exits.With(t.Fixture.Status)
		}
		return Answer{}, m.with(op.Task, t)
	case Kill:
		if t.Phase == Stopped {
			return Answer{Code: codes.NotFound, Says: SaysAlreadyFinished}, m
		}
		t.Exits = t.Exits.With(128 + op.Signal)
		return Answer{}, m.with(op.Task, t)
	case Wait:
		if t.Phase == Stopped {
			return Answer{ExitStatus: t.Status}, m
		}
		return Answer{Blocks: true}, m
	case State:
		a := Answer{Phase: t.Phase}
		if t.Phase == Stopped {
			a.ExitStatus = t.Status
		}
		return a, m
	case Delete:
		switch t.Phase {
		case Running:
			return Answer{Code: codes.FailedPrecondition, Says: SaysRunning}, m
		case Created:
			// The Keep is killed, and its exit recorded, first.
			t.Status = 128 + SIGKILL
		}
		status := t.Status
		t.Phase, t.Exits, t.Status = Deleted, StatusSet{}, 0
		return Answer{ExitStatus: status}, m.with(op.Task, t)
	case Pids:
		if t.Phase == Stopped {
			// Not an empty list: containerd 2.x deletes, on restart, a
			// task whose shim lists no processes, and its exit status
			// with it (docs/reliability.md).
			return Answer{Code: codes.FailedPrecondition, Says: SaysStopped}, m
		}
		return Answer{Pids: 1}, m
	case CloseIO, Stats:
		return Answer{}, m
	case Pause, Resume, Exec, Update, Checkpoint:
		return Answer{Code: codes.Unimplemented, Says: SaysNotSupported}, m
	}
	return Answer{Code: codes.Unimplemented, Says: "unknown operation"}, m
}
