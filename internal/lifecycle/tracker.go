package lifecycle

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
)

// Tracker follows a real runtime with the model. The runtime's Keeps exit
// when they will, not when the model says, so the tracker holds every state
// the runtime may be in: before each request, any pending Exit may have
// happened; after it, only the states whose answer is the one the runtime
// gave remain.
type Tracker struct {
	states []Model
}

// NewTracker starts from state m.
func NewTracker(m Model) *Tracker { return &Tracker{states: []Model{m}} }

// States returns the states the runtime may be in now, pending exits not
// taken.
func (tr *Tracker) States() []Model { return tr.states }

// Closure returns the states reachable from tr's by Exit operations alone.
func (tr *Tracker) Closure() []Model {
	seen := map[string]bool{}
	var out []Model
	queue := append([]Model(nil), tr.states...)
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if k := m.Key(); !seen[k] {
			seen[k] = true
			out = append(out, m)
			for _, e := range m.Exits() {
				_, next := m.Apply(e)
				queue = append(queue, next)
			}
		}
	}
	return out
}

// Expect returns the answers the model allows for op now, each once.
func (tr *Tracker) Expect(op Op) []Answer {
	seen := map[Answer]bool{}
	var out []Answer
	for _, m := range tr.Closure() {
		a, _ := m.Apply(op)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// Observe narrows the states to those in which op answers got, and applies
// op. It returns an error naming what the model allows when no state
// answers got: the runtime broke the model.
func (tr *Tracker) Observe(op Op, got Answer) error {
	var next []Model
	seen := map[string]bool{}
	for _, m := range tr.Closure() {
		want, after := m.Apply(op)
		if want.Matches(op, got) {
			if k := after.Key(); !seen[k] {
				seen[k] = true
				next = append(next, after)
			}
		}
	}
	if len(next) == 0 {
		var allowed []string
		for _, a := range tr.Expect(op) {
			allowed = append(allowed, a.String())
		}
		return fmt.Errorf("%s answered %s; the model allows %s in %s", op, got, strings.Join(allowed, " or "), tr.describe())
	}
	tr.states = next
	return nil
}

// Advance applies op without looking at its answer (a Wait whose answer
// comes later: it changes no state).
func (tr *Tracker) Advance(op Op) {
	var next []Model
	seen := map[string]bool{}
	for _, m := range tr.states {
		_, after := m.Apply(op)
		if k := after.Key(); !seen[k] {
			seen[k] = true
			next = append(next, after)
		}
	}
	tr.states = next
}

// Task returns task i as in every possible state, with the phases it may be
// in now (pending exits taken).
func (tr *Tracker) Task(i int) (Task, []Phase) {
	phases := map[Phase]bool{}
	for _, m := range tr.Closure() {
		phases[m.Tasks[i].Phase] = true
	}
	var list []Phase
	for p := range phases {
		list = append(list, p)
	}
	sort.Slice(list, func(a, b int) bool { return list[a] < list[b] })
	return tr.states[0].Tasks[i], list
}

// MayBlockForever reports whether Wait on task i may block with no exit
// pending: a sleeper created or running, never signalled.
func (tr *Tracker) MayBlockForever(i int) bool {
	for _, m := range tr.Closure() {
		t := m.Tasks[i]
		if (t.Phase == Created || t.Phase == Running) && t.Exits.Empty() {
			return true
		}
	}
	return false
}

func (tr *Tracker) describe() string {
	var s []string
	for _, m := range tr.states {
		s = append(s, m.String())
	}
	return strings.Join(s, " or ")
}

// Generate returns n requests for the tasks of m, drawn from kinds with rng.
// The draw follows a model of its own in which every exit happens at once,
// so that it creates what exists not, starts what is created and so on more
// often than not, and the sequence depends on rng alone: a seed replays it.
func Generate(rng *rand.Rand, m Model, n int, kinds []OpKind) []Op {
	allowed := map[OpKind]bool{}
	for _, k := range kinds {
		allowed[k] = true
	}
	// What is worth doing in each phase, most likely first.
	useful := map[Phase][]OpKind{
		None:    {Create},
		Deleted: {Create},
		Created: {Start, Kill, Delete},
		Running: {Kill, Wait},
		Stopped: {Delete, Wait, State},
	}
	// The rest are drawn by weight: each unsupported request a third as
	// often as the others.
	var weighted []OpKind
	for _, k := range kinds {
		weighted = append(weighted, k)
		if !isUnsupported(k) {
			weighted = append(weighted, k, k)
		}
	}
	var ops []Op
	for len(ops) < n {
		i := rng.Intn(len(m.Tasks))
		phase := m.Tasks[i].Phase
		var kind OpKind
		// A broken task is created in vain: no more often than the rest.
		if candidates := filterKinds(useful[phase], allowed); len(candidates) > 0 && m.Tasks[i].Fixture.Kind != Broken && rng.Intn(100) < 65 {
			kind = candidates[rng.Intn(len(candidates))]
		} else {
			kind = weighted[rng.Intn(len(weighted))]
		}
		op := Op{Kind: kind, Task: i}
		if kind == Kill {
			op.Signal = Signals[rng.Intn(len(Signals))]
		}
		ops = append(ops, op)
		_, m = m.Apply(op)
		for {
			exits := m.Exits()
			if len(exits) == 0 {
				break
			}
			_, m = m.Apply(exits[0])
		}
	}
	return ops
}

func isUnsupported(k OpKind) bool {
	for _, u := range Unsupported {
		if k == u {
			return true
		}
	}
	return false
}

func filterKinds(kinds []OpKind, allowed map[OpKind]bool) []OpKind {
	var out []OpKind
	for _, k := range kinds {
		if allowed[k] {
			out = append(out, k)
		}
	}
	return out
}

// Walk is a fixed sequence that performs every operation of the table in
// every phase: on a sleeper (task 0), an exiter with status 7 (task 1) and a
// broken task (task 2).
func Walk() (Model, []Op) {
	m := New(Fixture{Kind: Sleeper}, Fixture{Kind: Exiter, Status: 7}, Fixture{Kind: Broken})
	var ops []Op
	add := func(task int, kinds ...OpKind) {
		for _, k := range kinds {
			op := Op{Kind: k, Task: task}
			if k == Kill {
				op.Signal = SIGTERM
			}
			ops = append(ops, op)
		}
	}
	all := []OpKind{State, Pids, CloseIO, Stats, Pause, Resume, Exec, Update, Checkpoint}
	// No task yet, and a Create that fails.
	add(2, Create, State)
	add(0, Start, Kill, Wait, Delete)
	add(0, all...)
	// Created: a Wait that blocks until the end, then running.
	add(0, Create, Create, Wait)
	add(0, all...)
	add(0, Start, Start, Delete, Create, Wait)
	add(0, all...)
	// Killed, stopped with 143.
	add(0, Kill, Wait, Kill, Start, Create)
	add(0, all...)
	add(0, Wait, Delete)
	// Deleted: nothing answers but Create, which makes a new task.
	add(0, Start, Kill, Wait, Delete)
	add(0, all...)
	// Created, then deleted (killed: 137); created, then killed.
	add(0, Create, Delete, State, Create, Kill, Wait, Delete)
	// The exiter stops by itself.
	add(1, Create, Start, Wait, State, Start, Kill, Delete, State)
	return m, ops
}
