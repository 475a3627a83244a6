package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/enarx/containerd-shim-enarx/internal/lifecycle"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// shimRuntime is the task service driven directly, as containerd drives it,
// for lifecycle.Run. Its Keeps run the fake engine: a sleeper blocks in a
// host call, an exiter returns its status.
type shimRuntime struct {
	h       *harness
	ids     []string
	bundles []string
	index   map[string]int
}

// newShimRuntime makes a bundle per fixture. With cgroups (root), each
// task has a cgroup of its own, as containerd gives it, so that Stats
// answers.
func newShimRuntime(t *testing.T, h *harness, fixtures []lifecycle.Fixture, cgroups bool) *shimRuntime {
	rt := &shimRuntime{h: h, index: map[string]int{}}
	for i, f := range fixtures {
		id := keeptest.ID(t)
		var bundle string
		module := "/app.wasm"
		switch f.Kind {
		case lifecycle.Sleeper:
			bundle, _ = newBundle(t, "block")
		case lifecycle.Exiter:
			bundle, _ = newBundle(t, fmt.Sprintf("exit %d", f.Status))
		case lifecycle.Broken:
			bundle, _ = newBundle(t, "exit 0")
			module = "/missing.wasm"
		}
		spec := specs.Spec{
			Version: specs.Version,
			Process: &specs.Process{Args: []string{module}, Env: []string{"PATH=/"}, Cwd: "/"},
			Root:    &specs.Root{Path: "rootfs"},
		}
		if cgroups {
			spec.Linux = &specs.Linux{CgroupsPath: cgrouptest.Path(t, id)}
		}
		b, err := json.Marshal(&spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		rt.ids = append(rt.ids, id)
		rt.bundles = append(rt.bundles, bundle)
		rt.index[id] = i
	}
	return rt
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func (rt *shimRuntime) Do(ctx context.Context, op lifecycle.Op) (lifecycle.Answer, lifecycle.Report) {
	svc, id := rt.h.svc, rt.ids[op.Task]
	var a lifecycle.Answer
	var rep lifecycle.Report
	var err error
	switch op.Kind {
	case lifecycle.Create:
		var r *taskapi.CreateTaskResponse
		if r, err = svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: rt.bundles[op.Task]}); err == nil {
			rep.Pid = r.Pid
		}
	case lifecycle.Start:
		var r *taskapi.StartResponse
		if r, err = svc.Start(ctx, &taskapi.StartRequest{ID: id}); err == nil {
			rep.Pid = r.Pid
		}
	case lifecycle.Kill:
		_, err = svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(op.Signal)})
	case lifecycle.Wait:
		var r *taskapi.WaitResponse
		if r, err = svc.Wait(ctx, &taskapi.WaitRequest{ID: id}); err == nil {
			a.ExitStatus, rep.ExitedAt = int(r.ExitStatus), timeOf(r.ExitedAt)
		}
	case lifecycle.State:
		var r *taskapi.StateResponse
		if r, err = svc.State(ctx, &taskapi.StateRequest{ID: id}); err == nil {
			a.Phase, rep.Pid = lifecycle.PhaseOf(r.Status), r.Pid
			if a.Phase == lifecycle.Stopped {
				a.ExitStatus, rep.ExitedAt = int(r.ExitStatus), timeOf(r.ExitedAt)
			}
		}
	case lifecycle.Delete:
		var r *taskapi.DeleteResponse
		if r, err = svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err == nil {
			a.ExitStatus, rep.Pid, rep.ExitedAt = int(r.ExitStatus), r.Pid, timeOf(r.ExitedAt)
		}
	case lifecycle.Pids:
		var r *taskapi.PidsResponse
		if r, err = svc.Pids(ctx, &taskapi.PidsRequest{ID: id}); err == nil {
			a.Pids = len(r.Processes)
			if len(r.Processes) > 0 {
				rep.Pid = r.Processes[0].Pid
			}
		}
	case lifecycle.CloseIO:
		_, err = svc.CloseIO(ctx, &taskapi.CloseIORequest{ID: id, Stdin: true})
	case lifecycle.Stats:
		_, err = svc.Stats(ctx, &taskapi.StatsRequest{ID: id})
	case lifecycle.Pause:
		_, err = svc.Pause(ctx, &taskapi.PauseRequest{ID: id})
	case lifecycle.Resume:
		_, err = svc.Resume(ctx, &taskapi.ResumeRequest{ID: id})
	case lifecycle.Exec:
		_, err = svc.Exec(ctx, &taskapi.ExecProcessRequest{ID: id, ExecID: "probe"})
	case lifecycle.Update:
		_, err = svc.Update(ctx, &taskapi.UpdateTaskRequest{ID: id})
	case lifecycle.Checkpoint:
		_, err = svc.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: id, Path: "/nonexistent"})
	default:
		panic(fmt.Sprintf("shimRuntime: %s", op))
	}
	if err != nil {
		st := status.Convert(err)
		return lifecycle.Answer{Code: st.Code(), Says: st.Message()}, lifecycle.Report{}
	}
	return a, rep
}

func (rt *shimRuntime) Events() []lifecycle.Event {
	rt.h.events.mu.Lock()
	received := append([]receivedEvent(nil), rt.h.events.events...)
	rt.h.events.mu.Unlock()
	var out []lifecycle.Event
	for _, r := range received {
		e := lifecycle.Event{Topic: r.envelope.GetTopic()}
		var id string
		switch e.Topic {
		case TopicTaskCreate:
			var m eventstypes.TaskCreate
			unmarshalEvent(r, &m)
			id, e.Pid = m.ContainerID, m.Pid
		case TopicTaskStart:
			var m eventstypes.TaskStart
			unmarshalEvent(r, &m)
			id, e.Pid = m.ContainerID, m.Pid
		case TopicTaskExit:
			var m eventstypes.TaskExit
			unmarshalEvent(r, &m)
			id, e.Pid, e.ExitStatus, e.ExitedAt = m.ContainerID, m.Pid, int(m.ExitStatus), timeOf(m.ExitedAt)
		case TopicTaskDelete:
			var m eventstypes.TaskDelete
			unmarshalEvent(r, &m)
			id, e.Pid, e.ExitStatus, e.ExitedAt = m.ContainerID, m.Pid, int(m.ExitStatus), timeOf(m.ExitedAt)
		default:
			continue
		}
		i, ok := rt.index[id]
		if !ok {
			continue
		}
		e.Task = i
		out = append(out, e)
	}
	return out
}

func unmarshalEvent(r receivedEvent, m proto.Message) {
	_ = proto.Unmarshal(r.envelope.GetEvent().GetValue(), m)
}

// TestServiceRandomLifecycle drives the task service through random
// sequences of requests over four task IDs (a sleeper, an exiter, a broken
// one and one more) and checks every answer against the lifecycle model
// and its invariants (internal/lifecycle). LIFECYCLE_SEED, LIFECYCLE_SEQS and
// LIFECYCLE_OPS choose the sequences; a failure says how to replay it.
func TestServiceRandomLifecycle(t *testing.T) {
	seed, seqs, ops := lifecycle.Settings(t, 6, 40)
	t.Logf("%s=%d, %d sequences of %d requests", lifecycle.EnvSeed, seed, seqs, ops)
	withCgroups := cgrouptest.Available()
	kinds := lifecycleKinds(withCgroups)
	for k := 0; k < seqs; k++ {
		s := seed + int64(k)
		t.Run(fmt.Sprintf("seed-%d", s), func(t *testing.T) {
			rng := rand.New(rand.NewSource(s))
			fixtures := lifecycle.Fixtures(rng, 4)
			m := lifecycle.New(fixtures...)
			seq := lifecycle.Generate(rng, m, ops, kinds)
			t.Logf("tasks %v", fixtures)
			h := newHarness(t)
			rt := newShimRuntime(t, h, fixtures, withCgroups)
			lifecycle.Run(t, rt, m, seq, lifecycle.Options{
				Replay: fmt.Sprintf("%s=%d %s=1 %s=%d go test ./shim -run 'TestServiceRandomLifecycle/seed-%d$'",
					lifecycle.EnvSeed, s, lifecycle.EnvSeqs, lifecycle.EnvOps, ops, s),
				Settle:  2 * time.Millisecond,
				Timeout: 20 * time.Second,
			})
			rt.noKeepLeft(t)
		})
	}
}

// TestServiceLifecycleWalk performs every request of the lifecycle table
// in every phase (lifecycle.Walk) and checks the answers.
func TestServiceLifecycleWalk(t *testing.T) {
	withCgroups := cgrouptest.Available()
	m, ops := lifecycle.Walk()
	if !withCgroups {
		ops = withoutKind(ops, lifecycle.Stats)
	}
	h := newHarness(t)
	rt := newShimRuntime(t, h, []lifecycle.Fixture{m.Tasks[0].Fixture, m.Tasks[1].Fixture, m.Tasks[2].Fixture}, withCgroups)
	lifecycle.Run(t, rt, m, ops, lifecycle.Options{Replay: "go test ./shim -run TestServiceLifecycleWalk", Settle: 2 * time.Millisecond, Timeout: 20 * time.Second})
	rt.noKeepLeft(t)
}

// lifecycleKinds are the requests the shim-level tests send: Stats only
// when tasks have cgroups.
func lifecycleKinds(withCgroups bool) []lifecycle.OpKind {
	var kinds []lifecycle.OpKind
	for _, k := range lifecycle.Requests {
		if k != lifecycle.Stats || withCgroups {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

func withoutKind(ops []lifecycle.Op, kind lifecycle.OpKind) []lifecycle.Op {
	var out []lifecycle.Op
	for _, op := range ops {
		if op.Kind != kind {
			out = append(out, op)
		}
	}
	return out
}

func (rt *shimRuntime) noKeepLeft(t *testing.T) {
	t.Helper()
	for _, id := range rt.ids {
		if pids := keeptest.Processes(id); len(pids) != 0 {
			t.Errorf("Keeps of %s left: %v", id, pids)
		}
	}
}

// exitingProcess is a Keep that has exited but is not reaped yet: signals
// and Run fail as they do then, and Done closes when the test says.
type exitingProcess struct {
	done   chan struct{}
	status int
	at     time.Time
}

func (p *exitingProcess) Pid() int                    { return 1 << 22 }
func (p *exitingProcess) Run() error                  { return errors.New("keep pid 4194304 has already exited") }
func (p *exitingProcess) Signal(syscall.Signal) error { return os.ErrProcessDone }
func (p *exitingProcess) Done() <-chan struct{}       { return p.done }
func (p *exitingProcess) Status() (int, time.Time)    { return p.status, p.at }

// exitingTask adds a task in state st whose Keep is reaped after delay, as
// Create would (watched).
func (h *harness) exitingTask(t *testing.T, st state, delay time.Duration) *task {
	t.Helper()
	p := &exitingProcess{done: make(chan struct{}), status: 143, at: time.Now()}
	tk := newTask(keeptest.ID(t), oci.Bundle{Dir: t.TempDir()}, "", "", "")
	tk.proc, tk.state = p, st
	if st == stateRunning {
		close(tk.startPublished) // as Start would have
	}
	h.svc.mu.Lock()
	h.svc.tasks[tk.id] = tk
	h.svc.mu.Unlock()
	go h.svc.watch(tk)
	time.AfterFunc(delay, func() { close(p.done) })
	return tk
}

// TestServiceKillAsTheKeepExits: Kill that finds the Keep gone answers
// "already finished" only once the exit is recorded, so that State agrees.
func TestServiceKillAsTheKeepExits(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tk := h.exitingTask(t, stateRunning, 50*time.Millisecond)
	_, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: tk.id, Signal: uint32(syscall.SIGKILL)})
	wantCode(t, "Kill of an exiting Keep", err, codes.NotFound, "already finished")
	if st := h.state(t, tk.id); st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 143 {
		t.Errorf("State after Kill answered already finished = %v, want STOPPED 143", st)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: tk.id}); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

// TestServiceStartAfterTheKeepExited: Start of a created task whose Keep
// has exited (killed) is refused as Start of a stopped task, not with the
// control socket's error.
func TestServiceStartAfterTheKeepExited(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tk := h.exitingTask(t, stateCreated, 50*time.Millisecond)
	_, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: tk.id})
	wantCode(t, "Start of an exited Keep", err, codes.FailedPrecondition, "stopped")
	if st := h.state(t, tk.id); st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 143 {
		t.Errorf("State after Start = %v, want STOPPED 143", st)
	}
	events := h.events.wait(t, 1)
	if got := topics(events); fmt.Sprint(got) != fmt.Sprint([]string{TopicTaskExit}) {
		t.Errorf("events %v, want only the exit", got)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: tk.id}); err != nil {
		t.Errorf("Delete: %v", err)
	}
}
