// Package proc is a process that its starter reaps: the shim's Keeps and
// pod sandboxes, and a Keep's inner Keep. One goroutine waits for it
// (Reap); everyone else asks Done, Status, Pid and Signal.
package proc

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Child is a process its starter reaps: its command and, once it has
// exited, its status.
type Child struct {
	// Cmd is the process's command; it is started before Reap.
	Cmd  *exec.Cmd
	done chan struct{}

	mu       sync.Mutex
	status   int
	exitedAt time.Time
}

// New is a Child of cmd, which may be set later, before Reap.
func New(cmd *exec.Cmd) *Child { return &Child{Cmd: cmd, done: make(chan struct{})} }

// Reap waits for the process and records its status the way a shell does:
// exit(n) → n, killed by signal n → 128+n; then atExit, when not nil,
// runs; then Done is closed.
func (c *Child) Reap(atExit func()) {
	err := c.Cmd.Wait()
	status := 0
	if state := c.Cmd.ProcessState; state != nil {
		if ws, _ := state.Sys().(syscall.WaitStatus); ws.Signaled() {
			status = 128 + int(ws.Signal())
		} else {
			status = state.ExitCode()
		}
	} else if err != nil {
		status = 255
	}
	c.mu.Lock()
	c.status, c.exitedAt = status, time.Now()
	c.mu.Unlock()
	if atExit != nil {
		atExit()
	}
	close(c.done)
}

// Pid is the process's PID.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Signal sends sig to the process. It returns os.ErrProcessDone once the
// process has exited.
func (c *Child) Signal(sig syscall.Signal) error {
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	return c.Cmd.Process.Signal(sig)
}

// Done is closed when the process has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Status returns the exit status and time; valid once Done is closed.
func (c *Child) Status() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.exitedAt
}
