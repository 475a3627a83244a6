package shim

import (
	"os"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations containerd's CRI plugin sets on the containers of a pod.
const (
	// annotationSandboxID names the pod sandbox a container belongs to; the
	// containers of one pod share one shim (see start).
	annotationSandboxID = "io.kubernetes.cri.sandbox-id"
	// annotationContainerType is "sandbox" for the pod's sandbox container
	// (the pause image) and "container" for the others.
	annotationContainerType = "io.kubernetes.cri.container-type"
	containerTypeSandbox    = "sandbox"
)

// isSandbox reports whether spec is a pod's sandbox container.
func isSandbox(spec *specs.Spec) bool {
	return spec != nil && spec.Annotations[annotationContainerType] == containerTypeSandbox
}

// groupID is the ID whose shim serves the container of spec: its pod's
// sandbox ID when it has one, else id itself.
func groupID(spec *specs.Spec, id string) string {
	if spec != nil {
		if g := spec.Annotations[annotationSandboxID]; g != "" {
			return g
		}
	}
	return id
}

// idleProcess is what a pod sandbox runs: nothing. A Keep has no Linux
// namespaces to hold for its pod, so the pause binary is not executed; the
// sandbox lives until it is killed, as pause does.
//
// Its PID is the shim's own: containerd's CRI plugin needs a live PID for the
// sandbox task, and reads /proc/PID/ns/* only for namespaces it did not make
// itself (it makes the network namespace before the sandbox starts, or uses
// the host's), which the Keeps of this runtime never join anyway. Signals go
// to the idle process, never to that PID.
type idleProcess struct {
	pid  int
	done chan struct{}

	mu     sync.Mutex
	status int
	at     time.Time
}

var _ process = (*idleProcess)(nil)

func newIdleProcess(pid int) *idleProcess {
	return &idleProcess{pid: pid, done: make(chan struct{})}
}

func (p *idleProcess) Pid() int { return p.pid }

func (p *idleProcess) Run() error { return nil }

func (p *idleProcess) Done() <-chan struct{} { return p.done }

func (p *idleProcess) Status() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.at
}

// Signal ends the idle process as the signal's default action ends a
// process: exit status 128+signal. Signals whose default is to be ignored
// (or to stop or continue) change nothing; signal 0 only checks it is alive.
func (p *idleProcess) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	switch sig {
	case 0, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH, syscall.SIGCONT,
		syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return nil
	}
	p.status, p.at = 128+int(sig), time.Now()
	close(p.done)
	return nil
}
