package lifecycle

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
)

// exampleStatus stands for a stopped task's exit status in Table.
const exampleStatus = 42

// Table renders the model as the markdown table of
// docs/reliability.md: one row per operation, one column per
// phase, each cell the answer and the phase it leads to.
func Table() string {
	columns := []struct {
		name string
		task Task
	}{
		{"none / deleted", Task{Fixture: Fixture{Kind: Sleeper}, Phase: Deleted, Gen: 1}},
		{"created", Task{Fixture: Fixture{Kind: Sleeper}, Phase: Created, Gen: 1}},
		{"running", Task{Fixture: Fixture{Kind: Sleeper}, Phase: Running, Gen: 1}},
		{"stopped (status *s*)", Task{Fixture: Fixture{Kind: Sleeper}, Phase: Stopped, Gen: 1, Status: exampleStatus}},
	}
	rows := []struct {
		name string
		op   Op
		// fixture, when set, replaces the task's.
		fixture *Fixture
	}{
		{"Create", Op{Kind: Create}, nil},
		{"Create (module missing)", Op{Kind: Create}, &Fixture{Kind: Broken}},
		{"Start", Op{Kind: Start}, nil},
		{"Kill(*n*)", Op{Kind: Kill, Signal: SIGTERM}, nil},
		{"Wait", Op{Kind: Wait}, nil},
		{"State", Op{Kind: State}, nil},
		{"Delete", Op{Kind: Delete}, nil},
		{"Pids", Op{Kind: Pids}, nil},
		{"CloseIO", Op{Kind: CloseIO}, nil},
		{"Stats", Op{Kind: Stats}, nil},
		{"Pause, Resume, Exec, Update, Checkpoint", Op{Kind: Pause}, nil},
		{"*Exit(s)* (the Keep exits)", Op{Kind: Exit, Status: exampleStatus}, nil},
	}
	var b strings.Builder
	b.WriteString("| operation |")
	for _, c := range columns {
		fmt.Fprintf(&b, " %s |", c.name)
	}
	b.WriteString("\n|---|")
	for range columns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.name)
		for _, c := range columns {
			t := c.task
			if r.fixture != nil {
				t.Fixture = *r.fixture
			}
			if r.op.Kind == Exit && (t.Phase == Created || t.Phase == Running) {
				t.Exits = t.Exits.With(exampleStatus)
			}
			fmt.Fprintf(&b, " %s |", cell(Model{Tasks: []Task{t}}, r.op))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// cell describes what op does to the one task of m.
func cell(m Model, op Op) string {
	before := m.Tasks[0]
	a, after := m.Apply(op)
	now := after.Tasks[0]
	if op.Kind == Exit {
		if a.Code != codes.OK {
			return "-"
		}
		return "→ stopped (*s*)"
	}
	var parts []string
	switch {
	case a.Code != codes.OK && a.Says != "":
		parts = append(parts, fmt.Sprintf("%s %q", errdefsName(a.Code), a.Says))
	case a.Code != codes.OK:
		parts = append(parts, errdefsName(a.Code))
	case a.Blocks:
		parts = append(parts, "blocks until *Exit(s)*, then OK *s*")
	case op.Kind == Wait || op.Kind == Delete || (op.Kind == State && a.Phase == Stopped):
		status := fmt.Sprint(a.ExitStatus)
		if a.ExitStatus == exampleStatus {
			status = "*s*"
		}
		if op.Kind == State {
			parts = append(parts, "OK stopped "+status)
		} else {
			parts = append(parts, "OK "+status)
		}
	case op.Kind == State:
		parts = append(parts, "OK "+a.Phase.String())
	case op.Kind == Pids:
		if a.Pids == 0 {
			parts = append(parts, "OK []")
		} else {
			parts = append(parts, "OK [Keep]")
		}
	default:
		parts = append(parts, "OK")
	}
	if now.Phase != before.Phase {
		p := "→ " + now.Phase.String()
		if now.Gen != before.Gen {
			p += " (new task)"
		}
		parts = append(parts, p)
	}
	if added := now.Exits.List(); op.Kind == Kill && len(added) > len(before.Exits.List()) {
		parts = append(parts, "*Exit(128+n)* pending")
	}
	return strings.Join(parts, " ")
}

// errdefsName is the containerd errdefs class of a gRPC code.
func errdefsName(c codes.Code) string {
	switch c {
	case codes.Unimplemented:
		return "NotImplemented"
	default:
		return c.String()
	}
}
