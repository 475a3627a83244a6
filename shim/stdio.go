package shim

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	runcprocess "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	gorunc "github.com/containerd/go-runc"

	"github.com/enarx/containerd-shim-enarx/keep/host"
)

// stdio holds the container's standard I/O as the Keep receives it. The
// shim's copies of the Keep's files are closed once the Keep has them; of an
// output FIFO the shim keeps an end of its own until what the Keep wrote has
// been read after it exited, so that a reader opening late loses nothing and
// then sees EOF.
//
// stdin is copied, as runc's shim does: the Keep reads a pipe that the shim
// fills from the stdin FIFO. The FIFO is opened for reading only once the
// client has opened it for writing, so the workload never sees an early EOF;
// it sees EOF once the client has closed its end and everything it wrote has
// been delivered.
type stdio struct {
	keep host.Stdio

	stdinPath string
	stdinPipe *os.File // the write end of the Keep's stdin

	mu        sync.Mutex
	stdinFifo *os.File // once opened
	closed    bool
	closeOnce sync.Once

	// logger is the logging binary of a binary:// log URI, nil without.
	logger    gorunc.IO
	closeLogs sync.Once

	// held are the shim's own ends of the output FIFOs, kept open until
	// what the Keep wrote has been read (releaseOutputs).
	held []*os.File
}

// outputDrainTimeout bounds how long the shim holds an output FIFO open
// after the Keep has exited, for a reader that has not read what is in it.
const outputDrainTimeout = 5 * time.Second

// openStdio opens the paths containerd gave in CreateTaskRequest for task id
// of namespace ns. An empty path means /dev/null. stdout and stderr may be
// FIFOs, file:// log files, or one binary:// (or binary-v2://) logging
// binary, which gets them as containerd's runc shim gives them (process.
// NewBinaryIO: its fds 3 and 4, a ready pipe on fd 5, CONTAINER_ID and
// CONTAINER_NAMESPACE).
func openStdio(ctx context.Context, ns, id, stdin, stdout, stderr string) (s *stdio, err error) {
	s = &stdio{}
	defer func() {
		if err != nil {
			s.closeKeepSide()
			s.closeStdin()
			s.closeHeld()
		}
	}()
	if stdin != "" {
		if st, err := os.Stat(stdin); err != nil || st.Mode().Type() != os.ModeNamedPipe {
			return nil, fmt.Errorf("stdin %s is not a FIFO: %v", stdin, err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		s.keep.Stdin, s.stdinPipe, s.stdinPath = r, w, stdin
		go s.copyStdin(w)
	}
	if u, ok := binaryLogURI(stdout); ok {
		if stderr != "" && stderr != stdout {
			return nil, fmt.Errorf("stdout is the logging binary %q and stderr %q: a logging binary takes both (give it for both, as containerd does)", stdout, stderr)
		}
		if s.logger, err = runcprocess.NewBinaryIO(namespaces.WithNamespace(ctx, ns), id, u); err != nil {
			return nil, fmt.Errorf("logging binary %s: %w", u.Path, err)
		}
		// The logger holds the read ends; the Keep gets the write ends.
		if c, ok := s.logger.(interface{ CloseAfterStart() error }); ok {
			_ = c.CloseAfterStart()
		}
		var outputs exec.Cmd
		s.logger.Set(&outputs)
		s.keep.Stdout, _ = outputs.Stdout.(*os.File)
		s.keep.Stderr, _ = outputs.Stderr.(*os.File)
		return s, nil
	}
	if s.keep.Stdout, err = openOutput("stdout", stdout); err != nil {
		return nil, err
	}
	if s.keep.Stderr, err = openOutput("stderr", stderr); err != nil {
		return nil, err
	}
	// A FIFO loses what it holds once no end is open: the client's reader
	// may open it only after a short-lived Keep has exited (containerd's
	// client opens it in a goroutine), so the shim keeps an end of its own
	// (runc's shim does the same by writing to the FIFO itself).
	for _, f := range []*os.File{s.keep.Stdout, s.keep.Stderr} {
		if f == nil {
			continue
		}
		if st, err := f.Stat(); err == nil && st.Mode().Type() == os.ModeNamedPipe {
			h, err := os.OpenFile(f.Name(), os.O_RDWR, 0)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", f.Name(), err)
			}
			s.held = append(s.held, h)
		}
	}
	return s, nil
}

// releaseOutputs lets go of the shim's ends of the output FIFOs once the
// Keep has exited: each is closed when nothing is left unread in it (the
// reader then sees EOF), or after outputDrainTimeout. It does not wait.
func (s *stdio) releaseOutputs() {
	if s == nil {
		return
	}
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	if len(held) == 0 {
		return
	}
	go func() {
		deadline := time.Now().Add(outputDrainTimeout)
		for _, f := range held {
			for time.Now().Before(deadline) {
				n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ) // FIONREAD
				if err != nil || n == 0 {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			f.Close()
		}
	}()
}

// closeHeld closes the shim's ends of the output FIFOs at once.
func (s *stdio) closeHeld() {
	if s == nil {
		return
	}
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, f := range held {
		f.Close()
	}
}

// binaryLogURI parses p as a binary:// or binary-v2:// log URI.
func binaryLogURI(p string) (*url.URL, bool) {
	if !strings.HasPrefix(p, "binary://") && !strings.HasPrefix(p, "binary-v2://") {
		return nil, false
	}
	u, err := url.Parse(p)
	if err != nil {
		return nil, false
	}
	return u, true
}

// closeLogger ends the logging binary, once the task is deleted: it gets
// EOF on the container's output and then SIGTERM, as containerd's runc shim
// does.
func (s *stdio) closeLogger() {
	if s == nil || s.logger == nil {
		return
	}
	s.closeLogs.Do(func() { _ = s.logger.Close() })
}

// copyStdin waits for a writer of the stdin FIFO (the client's, or the
// shim's own when it gives up on the client), then copies what is written
// into the Keep's stdin until every writer has closed the FIFO.
func (s *stdio) copyStdin(w io.Writer) {
	defer s.closeStdin()
	// A blocking open: it returns once the FIFO has a writer.
	f, err := os.OpenFile(s.stdinPath, os.O_RDONLY, 0)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.Close()
		return
	}
	s.stdinFifo = f
	s.mu.Unlock()
	_, _ = io.Copy(w, f)
}

// releaseReader opens the stdin FIFO for writing and closes it again: a
// reader still waiting for a writer gets one, and then EOF after whatever the
// client wrote. It never discards data.
func (s *stdio) releaseReader() {
	if s.stdinPath == "" {
		return
	}
	if f, err := os.OpenFile(s.stdinPath, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// openOutput opens an output FIFO, or a file:// log URI.
func openOutput(name, p string) (*os.File, error) {
	if p == "" {
		return nil, nil
	}
	if scheme, _, ok := strings.Cut(p, "://"); ok {
		switch scheme {
		case "file":
			u, err := url.Parse(p)
			if err != nil {
				return nil, fmt.Errorf("%s log URI %q: %w", name, p, err)
			}
			f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
			if err != nil {
				return nil, fmt.Errorf("open %s log file %s: %w", name, u.Path, err)
			}
			return f, nil
		default:
			return nil, fmt.Errorf("%s log URI %q: scheme %q is not supported by the enarx runtime: use a FIFO, a file:// log file or a binary:// logging binary", name, p, scheme)
		}
	}
	// O_RDWR never blocks, whether or not the reader has opened the FIFO.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s %s: %w", name, p, err)
	}
	return f, nil
}

// closeKeepSide closes the shim's copies of the files the Keep was given.
func (s *stdio) closeKeepSide() {
	if s == nil { // a pod sandbox has no stdio
		return
	}
	for _, f := range []*os.File{s.keep.Stdin, s.keep.Stdout, s.keep.Stderr} {
		if f != nil {
			f.Close()
		}
	}
	s.keep = host.Stdio{}
}

// closeIO is CloseIO: the client has written all it will write. A FIFO the
// client never opened is given up on; what the client wrote is still
// delivered, then the workload sees EOF once the client's end is closed.
func (s *stdio) closeIO() {
	if s == nil { // a pod sandbox has no stdio
		return
	}
	s.releaseReader()
}

// closeStdin ends the workload's stdin at once (the task is gone).
func (s *stdio) closeStdin() {
	if s == nil { // a pod sandbox has no stdio
		return
	}
	s.mu.Lock()
	s.closed = true
	f := s.stdinFifo
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		if f != nil {
			f.Close()
		} else {
			s.releaseReader()
		}
		if s.stdinPipe != nil {
			s.stdinPipe.Close()
		}
	})
}
