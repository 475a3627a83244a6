package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// state is where a task is in its life. The only transitions are
//
//	created → running   Start
//	created → stopped   the Keep exits (killed before Start)
//	running → stopped   the Keep exits
//	created → deleted   Delete (the Keep is killed first)
//	stopped → deleted   Delete
//
// A deleted task is removed from the service and never seen again; its exit
// status is recorded exactly once, when the Keep is reaped.
type state int

const (
	stateCreated state = iota
	stateRunning
	stateStopped
	stateDeleted
)

func (s state) String() string {
	return [...]string{"created", "running", "stopped", "deleted"}[s]
}

func (s state) status() tasktypes.Status {
	switch s {
	case stateCreated:
		return tasktypes.Status_CREATED
	case stateRunning:
		return tasktypes.Status_RUNNING
	case stateStopped:
		return tasktypes.Status_STOPPED
	}
	return tasktypes.Status_UNKNOWN
}

// process is what a task runs, as the task API sees it: *host.Process, or
// *host.Sandbox for a pod sandbox.
type process interface {
	Pid() int
	// Run lets a created process run its workload.
	Run() error
	Signal(syscall.Signal) error
	// Done is closed once the process has exited and Status is final.
	Done() <-chan struct{}
	Status() (int, time.Time)
}

var (
	_ process = (*host.Process)(nil)
	_ process = (*host.Sandbox)(nil)
)

// task is one container: its bundle, its stdio and its Keep.
type task struct {
	id     string
	bundle oci.Bundle
	// rootfs is the directory where the shim mounted the container's root
	// filesystem, empty when it mounted none; unmount unmounts it, once.
	rootfs                string
	unmount               func() error
	stdin, stdout, stderr string
	io                    *stdio
	// proc is what the task runs: its Keep, or the process holding a pod
	// sandbox's namespaces (host.Sandbox).
	proc process
	// keep is the task's Keep; nil for a pod sandbox.
	keep *host.Process
	// cgroup is the Keep's cgroup, removed with the task; nil for none.
	cgroup *cgroup.Cgroup
	// hooks are the spec's hooks (none when it has none): the shim runs
	// those of the runtime's namespaces (confine.RunHooks); annotations are
	// the spec's, for their state.
	hooks       specs.Hooks
	annotations map[string]string
	// attestation is the publication of the Keep's labels, which Create
	// starts and announce waits for.
	attestation <-chan publishedAttestation
	// announce, made by Create, waits for the labels, once, and then
	// publishes the /enarx/attestation event: after Create's /tasks/create,
	// before Start's /tasks/start.
	announce func() error
	// reaped is closed once the Keep's exit has been recorded and published.
	reaped chan struct{}
	// startPublished is closed once Start has published the task's start
	// event: a running task's exit event waits for it.
	startPublished chan struct{}

	mu    sync.Mutex
	state state
}

// newTask is a task of a created container, before it has a process.
func newTask(id string, bundle oci.Bundle, stdin, stdout, stderr string) *task {
	return &task{id: id, bundle: bundle, stdin: stdin, stdout: stdout, stderr: stderr,
		reaped: make(chan struct{}), startPublished: make(chan struct{})}
}

func (t *task) current() state {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// exitRecordWait bounds how long a request that found the Keep gone waits
// for its exit to be recorded (a moment: the Keep has been reaped, or is
// about to be).
const exitRecordWait = 5 * time.Second

// start lets a created task's workload run. started runs once it does,
// with no lock held; the task's exit event waits for it (see exited), so
// that its start event is published before its exit event.
func (t *task) start(started func()) error {
	t.mu.Lock()
	if t.state != stateCreated {
		defer t.mu.Unlock()
		return t.notCreated()
	}
	if err := t.proc.Run(); err != nil {
		t.mu.Unlock()
		// A Keep that exited before it could run its workload (it was
		// killed while created): answer as for the stopped task it is
		// once its exit is recorded, so that State and Wait agree.
		if t.awaitExitRecord() {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.notCreated()
		}
		return fmt.Errorf("start task %s: %w", t.id, err)
	}
	t.state = stateRunning
	t.mu.Unlock()
	started()
	close(t.startPublished)
	return nil
}

// notCreated is the error of Start on a task that is not created; t.mu is
// held.
func (t *task) notCreated() error {
	return fmt.Errorf("task %s is %s, only a created task can start: %w", t.id, t.state, errdefs.ErrFailedPrecondition)
}

// awaitExitRecord waits until the Keep's exit is recorded, when the Keep
// has exited or is exiting; it reports whether it was.
func (t *task) awaitExitRecord() bool {
	select {
	case <-t.reaped:
		return true
	case <-time.After(exitRecordWait):
		return false
	}
}

// exited records that the Keep has exited. It reports false when the task
// had already left the created and running states. A running task's exit is
// recorded only once its start event is out: it returns after that.
func (t *task) exited() bool {
	t.mu.Lock()
	st := t.state
	if st != stateCreated && st != stateRunning {
		t.mu.Unlock()
		return false
	}
	t.state = stateStopped
	t.io.closeStdin()
	t.io.releaseOutputs()
	t.mu.Unlock()
	if st == stateRunning {
		<-t.startPublished
	}
	return true
}

// kill sends a signal to the task's Keep. Kill on a stopped task answers
// NotFound "process already finished", as containerd's runc shim does.
func (t *task) kill(sig syscall.Signal) error {
	if sig < 0 || sig > maxSignal {
		return fmt.Errorf("task %s: %d is not a signal: give 1 to %d (or 0 to check the task is alive): %w", t.id, sig, maxSignal, errdefs.ErrInvalidArgument)
	}
	finished := fmt.Errorf("task %s: process already finished: %w", t.id, errdefs.ErrNotFound)
	t.mu.Lock()
	if t.state == stateStopped || t.state == stateDeleted {
		t.mu.Unlock()
		return finished
	}
	err := t.proc.Signal(sig)
	t.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrProcessDone):
		// The Keep exited a moment ago: answer once its exit is
		// recorded, so that State, Pids and Wait agree with this answer.
		t.awaitExitRecord()
		return finished
	}
	return fmt.Errorf("task %s: signal %d: %w", t.id, sig, err)
}

// maxSignal is the highest signal number (SIGRTMAX on Linux).
const maxSignal = 64

// markDeleted moves a created or stopped task to deleted. A created task's
// Keep is killed and reaped first.
func (t *task) markDeleted() error {
	t.mu.Lock()
	switch t.state {
	case stateRunning:
		t.mu.Unlock()
		return fmt.Errorf("task %s is running: kill it before deleting it: %w", t.id, errdefs.ErrFailedPrecondition)
	case stateDeleted:
		t.mu.Unlock()
		return fmt.Errorf("task %s: %w", t.id, errdefs.ErrNotFound)
	case stateCreated:
		_ = t.proc.Signal(syscall.SIGKILL)
	}
	t.mu.Unlock()
	<-t.reaped

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == stateDeleted {
		return fmt.Errorf("task %s: %w", t.id, errdefs.ErrNotFound)
	}
	t.state = stateDeleted
	t.io.closeStdin()
	return nil
}

// runHooks runs hooks of kind with the task's state, status st.
func (t *task) runHooks(ctx context.Context, kind string, hooks []specs.Hook, st specs.ContainerState) error {
	state := specs.State{Version: specs.Version, ID: t.id, Status: st, Pid: t.proc.Pid(), Bundle: t.bundle.Dir, Annotations: t.annotations}
	return confine.RunHooks(ctx, kind, hooks, state)
}
