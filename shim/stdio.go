package shim

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/containerd/fifo"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// stdio holds the container's standard I/O as the Keep receives it. The
// shim's copies of the Keep's files are closed once the Keep has them, so that
// a reader sees EOF when the Keep exits.
//
// stdin is copied, as runc's shim does: the Keep reads a pipe that the shim
// fills from the stdin FIFO. The FIFO is opened for reading only once the
// client has opened it for writing, so the workload never sees an early EOF,
// and sees EOF when the client closes its end or calls CloseIO.
type stdio struct {
	keep      keep.Stdio
	stdinFifo io.ReadCloser
	stdinPipe *os.File
	closeOnce sync.Once
}

// openStdio opens the paths containerd gave in CreateTaskRequest. An empty
// path means /dev/null.
func openStdio(stdin, stdout, stderr string) (s *stdio, err error) {
	s = &stdio{}
	defer func() {
		if err != nil {
			s.closeKeepSide()
			s.closeStdin()
		}
	}()
	if stdin != "" {
		// With O_NONBLOCK, OpenFifo returns at once and opens the FIFO
		// when the writer appears; reads wait for that.
		f, err := fifo.OpenFifo(context.Background(), stdin, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", stdin, err)
		}
		s.stdinFifo = f
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		s.keep.Stdin, s.stdinPipe = r, w
		go func() {
			_, _ = io.Copy(w, f)
			s.closeStdin()
		}()
	}
	if s.keep.Stdout, err = openOutput("stdout", stdout); err != nil {
		return nil, err
	}
	if s.keep.Stderr, err = openOutput("stderr", stderr); err != nil {
		return nil, err
	}
	return s, nil
}

// openOutput opens an output FIFO, or a file:// log URI.
func openOutput(name, p string) (*os.File, error) {
	if p == "" {
		return nil, nil
	}
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
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
			return nil, fmt.Errorf("%s log URI %q: scheme %q is not supported by the enarx runtime (use a FIFO or file://%s)", name, p, scheme, rest)
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
	for _, f := range []*os.File{s.keep.Stdin, s.keep.Stdout, s.keep.Stderr} {
		if f != nil {
			f.Close()
		}
	}
	s.keep = keep.Stdio{}
}

// closeStdin ends the workload's stdin (CloseIO, or the task is gone).
func (s *stdio) closeStdin() {
	s.closeOnce.Do(func() {
		if s.stdinFifo != nil {
			s.stdinFifo.Close()
		}
		if s.stdinPipe != nil {
			s.stdinPipe.Close()
		}
	})
}
