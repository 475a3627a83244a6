package shim

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"

	"github.com/enarx/containerd-shim-enarx/keep"
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

// process is what a task runs, as the task API sees it: *keep.Process, or
// *idleProcess for a pod sandbox.
type process interface {
	Pid() int
	// Run lets a created process run its workload.
	Run() error
	Signal(syscall.Signal) error
	// Done is closed once the process has exited and Status is final.
	Done() <-chan struct{}
	Status() (int, time.Time)
}

var _ process = (*keep.Process)(nil)

// task is one container: its bundle, its stdio and its Keep.
type task struct {
	id, bundle string
	// rootfs is the directory where the shim mounted the container's root
	// filesystem, empty when it mounted none.
	rootfs                string
	stdin, stdout, stderr string
	io                    *stdio
	// proc is what the task runs: its Keep, or the idle process of a pod
	// sandbox.
	proc process
	// keep is the task's Keep; nil for a pod sandbox.
	keep *keep.Process
	// cgroup is the Keep's cgroup, removed with the task; nil for none.
	cgroup *keep.Cgroup
	// attested is the payload of the task's /enarx/attestation event.
	attested *eventstypes.ContainerUpdate
	// reaped is closed once the Keep's exit has been recorded and published.
	reaped chan struct{}

	mu    sync.Mutex
	state state
}

func (t *task) current() state {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// start lets a created task's workload run.
func (t *task) start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateCreated {
		return fmt.Errorf("task %s is %s, only a created task can start: %w", t.id, t.state, errdefs.ErrFailedPrecondition)
	}
	if err := t.proc.Run(); err != nil {
		return fmt.Errorf("start task %s: %w", t.id, err)
	}
	t.state = stateRunning
	return nil
}

// exited records that the Keep has exited. It reports false when the task
// had already left the created and running states.
func (t *task) exited() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != stateCreated && t.state != stateRunning {
		return false
	}
	t.state = stateStopped
	t.io.closeStdin()
	return true
}

// kill sends a signal to the task's Keep.
func (t *task) kill(sig syscall.Signal) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == stateStopped || t.state == stateDeleted {
		return fmt.Errorf("task %s: process already finished: %w", t.id, errdefs.ErrNotFound)
	}
	if err := t.proc.Signal(sig); err != nil {
		if err == os.ErrProcessDone {
			return fmt.Errorf("task %s: process already finished: %w", t.id, errdefs.ErrNotFound)
		}
		return fmt.Errorf("task %s: signal %d: %w", t.id, sig, err)
	}
	return nil
}

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
