package sockets

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// issueLeaf is a certificate for cn from ca, for localhost and loopback.
func issueLeaf(tb testing.TB, ca *testpki.CA, cn string) tls.Certificate {
	tb.Helper()
	cert, _, _ := ca.Issue(tb, cn, nil)
	return cert
}

// keepTLS is a Keep's server configuration with a certificate from ca.
func keepTLS(tb testing.TB, ca *testpki.CA) *tlssock.Config {
	return &tlssock.Config{Certificates: []tls.Certificate{issueLeaf(tb, ca, "keep")}}
}

// open opens specs and closes the Set at the end of the test.
func open(tb testing.TB, specs []socketspec.Spec, opts Options) *Set {
	tb.Helper()
	s, err := Open(context.Background(), specs, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// socket is the Socket called name.
func socket(tb testing.TB, s *Set, name string) engine.Socket {
	tb.Helper()
	for _, so := range s.Sockets() {
		if so.Name == name {
			return so
		}
	}
	tb.Fatalf("no socket %q in %v", name, s.Sockets())
	return engine.Socket{}
}

// acceptWorkload plays the workload's sock_accept: it polls PollFD, as
// poll_oneoff would, then Accepts.
func acceptWorkload(tb testing.TB, a engine.Acceptor, timeout time.Duration) *net.UnixConn {
	tb.Helper()
	c, err := tryAcceptWorkload(a, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func tryAcceptWorkload(a engine.Acceptor, timeout time.Duration) (*net.UnixConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no connection to accept within %s", timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(a.PollFD()), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return nil, err
		}
		f, err := a.Accept()
		if errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Errorf("PollFD polled readable but Accept returned %w", err)
		}
		if err != nil {
			return nil, err
		}
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
}

// readable reports whether fd polls readable now.
func readable(tb testing.TB, fd int) bool {
	tb.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return n > 0 && pfd[0].Revents&unix.POLLIN != 0
}

// fileConn is a connection on a duplicate of f, as the workload's engine
// would hold it.
func fileConn(tb testing.TB, f *os.File) net.Conn {
	tb.Helper()
	c, err := net.FileConn(f)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// requireNetNS skips the test unless it may create network namespaces.
func requireNetNS(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("network namespaces need root")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		errc <- unix.Unshare(unix.CLONE_NEWNET)
	}()
	if err := <-errc; err != nil {
		tb.Skipf("cannot create a network namespace here: %v", err)
	}
}

// inNetNS runs fn on a thread in the namespace ns; the thread ends after.
func inNetNS(tb testing.TB, ns *os.File, fn func()) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			tb.Errorf("setns: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// namedNetNS creates a network namespace with loopback up, held by a
// parked thread until the test ends, and returns its /proc path.
func namedNetNS(tb testing.TB) string {
	tb.Helper()
	ready := make(chan string, 1)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- ""
			return
		}
		if err := LoopbackUp(); err != nil {
			ready <- ""
			return
		}
		ready <- fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		<-release
	}()
	path := <-ready
	if path == "" {
		tb.Fatal("could not create a network namespace")
	}
	tb.Cleanup(func() { close(release) })
	return path
}

// inode is the inode of a namespace file.
func inode(tb testing.TB, f *os.File) uint64 {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		tb.Fatal(err)
	}
	return st.Ino
}

// workloadConn is the workload's end of a connection: a socketpair end
// (Accept) or a stream (AcceptStream).
type workloadConn interface {
	net.Conn
	CloseWrite() error
}

// acceptModes are the two ways a workload takes a TLS connection.
var acceptModes = []string{"pipe", "stream"}

// acceptAs plays the workload's sock_accept in mode (see acceptModes).
func acceptAs(tb testing.TB, mode string, a engine.Acceptor, timeout time.Duration) workloadConn {
	tb.Helper()
	if mode == "pipe" {
		return acceptWorkload(tb, a, timeout)
	}
	sa, ok := a.(engine.StreamAcceptor)
	if !ok {
		tb.Fatalf("%T is not a StreamAcceptor", a)
	}
	deadline := time.Now().Add(timeout)
	for {
		s, err := sa.AcceptStream()
		if err == nil {
			return &streamConn{s: s}
		}
		if !errors.Is(err, unix.EAGAIN) {
			tb.Fatal(err)
		}
		if !pollUntil(a.PollFD(), unix.POLLIN, deadline) {
			tb.Fatalf("no connection to accept within %s", timeout)
		}
	}
}

// streamConn plays the engine serving a Stream: it waits on PollFD, as
// poll_oneoff does, when the Stream is not Ready.
type streamConn struct {
	s        engine.Stream
	deadline time.Time
}

func (c *streamConn) Read(p []byte) (int, error) {
	for {
		n, err := c.s.Read(p)
		if !errors.Is(err, unix.EAGAIN) {
			return n, err
		}
		if !c.s.Ready(false) && !pollUntil(c.s.PollFD(), unix.POLLIN, c.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (c *streamConn) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), 64<<10)]
		n, err := c.s.Write(chunk)
		total += n
		p = p[n:]
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EAGAIN) {
			return total, err
		}
		if !c.s.Ready(true) && !pollUntil(c.s.PollFD(), unix.POLLOUT, c.deadline) {
			return total, os.ErrDeadlineExceeded
		}
	}
	return total, nil
}

func (c *streamConn) CloseWrite() error                  { return c.s.CloseWrite() }
func (c *streamConn) Close() error                       { return c.s.Close() }
func (c *streamConn) LocalAddr() net.Addr                { return nil }
func (c *streamConn) RemoteAddr() net.Addr               { return nil }
func (c *streamConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *streamConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *streamConn) SetWriteDeadline(t time.Time) error { c.deadline = t; return nil }

// pollUntil waits until fd polls for events (or hangs up), or until deadline
// (zero: none) has passed, which it reports as false.
func pollUntil(fd int, events int16, deadline time.Time) bool {
	for {
		ms := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			ms = int(left/time.Millisecond) + 1
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, min(ms, 50))
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		return err == nil
	}
}
