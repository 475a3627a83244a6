package keep

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is a process the shim started (a Keep or a pod's sandbox) and
// reaps: its command and, once it has exited, its status.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu       sync.Mutex
	status   int
	exitedAt time.Time
}

// reap waits for the process and records its status the way a shell does:
// exit(n) → n, killed by signal n → 128+n; then atExit, when not nil,
// runs; then Done is closed.
func (c *child) reap(atExit func()) {
	err := c.cmd.Wait()
	status := 0
	if state := c.cmd.ProcessState; state != nil {
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
func (c *child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig to the process. It returns os.ErrProcessDone once the
// process has exited.
func (c *child) Signal(sig syscall.Signal) error {
	select {
	case <-c.done:
		return os.ErrProcessDone
	default:
	}
	return c.cmd.Process.Signal(sig)
}

// Done is closed when the process has exited and been reaped.
func (c *child) Done() <-chan struct{} { return c.done }

// Status returns the exit status and time; valid once Done is closed.
func (c *child) Status() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.exitedAt
}
