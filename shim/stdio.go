package shim

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// stdio holds the container's standard I/O as the Keep receives it. The
// shim's copies of the Keep's files are closed once the Keep has them, so that
// a reader sees EOF when the Keep exits; the shim keeps only a write end of the
// stdin FIFO, which it closes on CloseIO so that the workload sees EOF then.
type stdio struct {
	keep       keep.Stdio
	stdinWrite *os.File
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
		// O_NONBLOCK lets both opens succeed before containerd's client
		// has opened its end; the Keep gets a blocking reader.
		r, err := os.OpenFile(stdin, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", stdin, err)
		}
		s.keep.Stdin = r
		if s.stdinWrite, err = os.OpenFile(stdin, unix.O_WRONLY|unix.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("open stdin %s for writing: %w", stdin, err)
		}
		if err := unix.SetNonblock(int(r.Fd()), false); err != nil {
			return nil, fmt.Errorf("stdin %s: %w", stdin, err)
		}
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

// closeStdin closes the shim's write end of stdin (CloseIO).
func (s *stdio) closeStdin() {
	if s.stdinWrite != nil {
		s.stdinWrite.Close()
		s.stdinWrite = nil
	}
}
