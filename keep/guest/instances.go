package guest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// runInstances runs next.instances instances of the module at once, each
// on a thread of its own (an engine's run holds its goroutine's thread),
// the others with their own duplicates of the socket files, which a run
// takes over: a listen socket is then shared, its connections going to
// whichever instance accepts first. It returns as the first instance that
// fails (a non-zero status or an error) does, which ends the Keep and so
// the others, or once every instance has exited 0.
func (next *runAhead) runInstances(ctx context.Context) (int, error) {
	others := make([]engine.RunOptions, next.instances-1)
	for i := range others {
		opts, err := withOwnSockets(next.opts)
		if err != nil {
			for _, o := range others[:i] {
				o.CloseSocketFiles()
			}
			return 0, fmt.Errorf("instance %d of %d: %w", i+2, next.instances, err)
		}
		others[i] = opts
	}
	type result struct {
		status int
		err    error
	}
	results := make(chan result, next.instances)
	// Each instance's thread is in one long call into the engine, and
	// needs a P of the Go runtime for each host call: with fewer Ps than
	// the instances and one for the Keep's own goroutines (TLS handshakes,
	// the control socket), host calls wait for one (2 instances on 2
	// cores: 96 against 87 µs of the Keep's CPU per request).
	if p := runtime.GOMAXPROCS(0); p < next.instances+1 {
		runtime.GOMAXPROCS(next.instances + 1)
	}
	go func() {
		status, err := next.runFirst(ctx)
		results <- result{status, err}
	}()
	for _, opts := range others {
		go func() {
			status, err := next.module.Run(ctx, opts)
			results <- result{status, err}
		}()
	}
	for range next.instances {
		if r := <-results; r.err != nil || r.status != 0 {
			return r.status, r.err
		}
	}
	return 0, nil
}

// withOwnSockets returns opts with duplicates of its socket files, for
// another instance's run to take over; the acceptors are shared.
func withOwnSockets(opts engine.RunOptions) (engine.RunOptions, error) {
	socks := slices.Clone(opts.Sockets)
	for i, s := range socks {
		if s.File == nil {
			continue
		}
		fd, err := dupFile(s.File)
		if err != nil {
			opts.Sockets = socks[:i] // the duplicates made so far
			opts.CloseSocketFiles()
			return engine.RunOptions{}, fmt.Errorf("socket %q: duplicate %s: %w", s.Name, s.File.Name(), err)
		}
		socks[i].File = os.NewFile(uintptr(fd), s.File.Name())
	}
	opts.Sockets = socks
	return opts, nil
}

// dupFile duplicates f's descriptor (close-on-exec) through SyscallConn, not
// Fd, which would put a socket in Go's poller into blocking mode, and with
// it every duplicate.
func dupFile(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if cerr := sc.Control(func(x uintptr) { fd, err = unix.FcntlInt(x, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return -1, cerr
	}
	return fd, err
}
