package sockets

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// A TLS connection of a listen socket reaches the workload in one of two
// ways. Through Accept it is a pipe: the workload's end of a socketpair,
// and two goroutines copying between the socketpair and the tls.Conn.
// Through AcceptStream it is a stream: the engine calls the tls.Conn on
// the workload's own thread, from its host calls, so that a request costs
// no copy through a socketpair and no wake-up of another thread (on a
// small VM each hand-off costs more than the TLS record itself). The
// half-closes are the pipe's (see pipe).

// maxUnsent is how much ciphertext a stream holds for a peer that does not
// read before its Write says EAGAIN.
const maxUnsent = 256 << 10

// errAgain is rawConn's read error when nothing has arrived: a temporary
// net.Error, which leaves the tls.Conn usable.
var errAgain error = &net.OpError{Op: "read", Net: "tcp", Err: again{}}

type again struct{}

func (again) Error() string   { return "resource temporarily unavailable" }
func (again) Timeout() bool   { return true }
func (again) Temporary() bool { return true }
func (again) Unwrap() error   { return unix.EAGAIN }

// rawConn is the TCP connection under a listen socket's tls.Conn. Until
// detach (the handshake, and a pipe) it is the net.Conn itself. A stream
// detaches it: its descriptor leaves Go's poller (the net.Conn is closed
// over a duplicate), so that data arriving for the workload, which waits
// in poll_oneoff, does not also wake a thread of the runtime's poller for
// nothing. Then reads never wait (errAgain) and writes never fail for want
// of room: what the kernel does not take waits in out, sent by a goroutine
// as room comes, while the workload goes on.
type rawConn struct {
	net.Conn

	// fd is the detached descriptor, -1 before detach; inline says it is
	// in use.
	fd     int
	inline atomic.Bool

	mu       sync.Mutex
	out      []byte
	werr     error // the first failure of a send; sending has ended
	flushing bool  // the sending goroutine runs
	// shut: shut down the TCP output once out is sent; linger: then
	// read what the peer still sends until it closes, and close.
	shut, linger bool
	killed       bool
	fdClosed     bool
	// done runs once a lingering connection is closed.
	done func()
}

func newRawConn(c net.Conn) (*rawConn, error) {
	if _, ok := c.(syscall.Conn); !ok {
		return nil, fmt.Errorf("%T is not a socket", c)
	}
	return &rawConn{Conn: c, fd: -1}, nil
}

// detach takes the connection's descriptor out of Go's poller: it keeps a
// duplicate, non-blocking like the original, and closes the net.Conn
// (which unregisters the original from the poller).
func (r *rawConn) detach() error {
	rc, err := r.Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("dup: %w", derr)
	}
	r.fd = fd
	r.inline.Store(true)
	r.Conn.Close()
	return nil
}

// CloseWrite shuts the TCP output down (the pipe's half-close).
func (r *rawConn) CloseWrite() error {
	if r.inline.Load() {
		return unix.Shutdown(r.fd, unix.SHUT_WR)
	}
	if cw, ok := r.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (r *rawConn) Read(p []byte) (int, error) {
	if !r.inline.Load() {
		return r.Conn.Read(p)
	}
	n, err := unix.Read(r.fd, p)
	for err == unix.EINTR {
		n, err = unix.Read(r.fd, p)
	}
	switch {
	case err == unix.EAGAIN:
		return 0, errAgain
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: err}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawConn) Write(p []byte) (int, error) {
	if !r.inline.Load() {
		return r.Conn.Write(p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.werr != nil {
		return 0, r.werr
	}
	if len(r.out) == 0 {
		k := r.sendLocked(p)
		p = p[k:]
		if r.werr != nil {
			return k, r.werr
		}
	}
	if len(p) > 0 {
		r.out = append(r.out, p...)
		r.startFlusherLocked()
	}
	return len(p), nil
}

// sendLocked sends what the kernel takes of p now, recording a failure in
// werr, and returns how much it took.
func (r *rawConn) sendLocked(p []byte) int {
	sent := 0
	for sent < len(p) {
		k, err := unix.SendmsgN(r.fd, p[sent:], nil, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			r.werr = &net.OpError{Op: "write", Net: "tcp", Err: err}
			break
		}
		sent += k
	}
	return sent
}

// flushLocked sends what it can of out.
func (r *rawConn) flushLocked() {
	if len(r.out) == 0 || r.werr != nil {
		return
	}
	k := r.sendLocked(r.out)
	r.out = r.out[:copy(r.out, r.out[k:])]
}

// unsent is how much waits in out.
func (r *rawConn) unsent() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
	return len(r.out)
}

// startFlusherLocked starts the goroutine that sends out as the peer makes
// room, then does what Close and CloseWrite left to do after it.
func (r *rawConn) startFlusherLocked() {
	if r.flushing || r.killed {
		return
	}
	r.flushing = true
	go r.flusher()
}

func (r *rawConn) flusher() {
	r.mu.Lock()
	for {
		r.flushLocked()
		if len(r.out) == 0 || r.werr != nil || r.killed {
			break
		}
		r.mu.Unlock()
		// Wait for room (or a hang-up: kill shuts the socket down).
		waitFD(r.fd, unix.POLLOUT)
		r.mu.Lock()
	}
	r.out = nil
	r.flushing = false
	shut, linger := r.shut, r.linger
	r.mu.Unlock()
	r.finish(shut, linger)
}

// waitFD waits until fd polls for events, an error or a hang-up.
func waitFD(fd int, events int16) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		if _, err := unix.Poll(pfd, -1); err != unix.EINTR {
			return
		}
	}
}

// finish shuts the output down and, for a closed stream, lingers as a
// pipe does when the workload closes its end: until the peer sends
// anything more (which nobody will read: closing then resets the
// connection) or closes, then closes the descriptor.
func (r *rawConn) finish(shut, linger bool) {
	if shut {
		_ = unix.Shutdown(r.fd, unix.SHUT_WR)
	}
	if !linger {
		return
	}
	waitFD(r.fd, unix.POLLIN)
	r.mu.Lock()
	r.fdClosed = true
	unix.Close(r.fd)
	r.mu.Unlock()
	if r.done != nil {
		r.done()
	}
}

// end asks for the output to be shut down once sent and, with linger,
// for the connection to be closed after the peer has closed it.
func (r *rawConn) end(linger bool) {
	r.mu.Lock()
	r.shut = true
	r.linger = r.linger || linger
	if r.flushing {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	if linger {
		go r.finish(true, true)
		return
	}
	r.finish(true, false)
}

// kill ends the connection at once (Set.Close): it shuts the socket down,
// which wakes the goroutines waiting on it; the last of them closes it.
func (r *rawConn) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = true
	if !r.inline.Load() {
		r.Conn.Close()
		return
	}
	if !r.fdClosed {
		_ = unix.Shutdown(r.fd, unix.SHUT_RDWR)
	}
}

// Close closes a connection that never became a stream (one waiting in
// the queue).
func (r *rawConn) Close() error {
	if r.inline.Load() {
		return nil
	}
	return r.Conn.Close()
}

// SetDeadline and SetWriteDeadline are not passed on once detached: the
// stream never waits, and tls.Conn's close_notify sets a write deadline.
func (r *rawConn) SetDeadline(t time.Time) error {
	if r.inline.Load() {
		return nil
	}
	return r.Conn.SetDeadline(t)
}

func (r *rawConn) SetWriteDeadline(t time.Time) error {
	if r.inline.Load() {
		return nil
	}
	return r.Conn.SetWriteDeadline(t)
}

// stream is a handshaken TLS connection served as an engine.Stream.
type stream struct {
	tls *tls.Conn
	raw *rawConn
	fd  int
	set *Set

	// in is plaintext read ahead by Ready; rerr ends reading (io.EOF, a
	// reset) once in is consumed.
	in      []byte
	inBuf   []byte
	rerr    error
	maybeIn bool // tls.Conn may hold a whole record: try before waiting

	closeOnce sync.Once
}

var _ engine.Stream = (*stream)(nil)

func newStream(set *Set, tc *tls.Conn, raw *rawConn) (*stream, error) {
	if err := raw.detach(); err != nil {
		return nil, fmt.Errorf("sockets: stream: %w", err)
	}
	return &stream{tls: tc, raw: raw, fd: raw.fd, set: set, maybeIn: true}, nil
}

func (s *stream) PollFD() int { return s.fd }

func (s *stream) Ready(write bool) bool {
	if write {
		return s.raw.unsent() < maxUnsent
	}
	if len(s.in) > 0 || s.rerr != nil {
		return true
	}
	if !s.maybeIn {
		return false
	}
	if s.inBuf == nil {
		s.inBuf = make([]byte, 16<<10)
	}
	n, err := s.read(s.inBuf)
	s.in = s.inBuf[:n]
	return n > 0 || !errors.Is(err, unix.EAGAIN)
}

func (s *stream) Read(p []byte) (int, error) {
	if len(s.in) > 0 {
		n := copy(p, s.in)
		s.in = s.in[n:]
		return n, nil
	}
	return s.read(p)
}

func (s *stream) Peek(p []byte) (int, error) {
	if len(s.in) == 0 && !s.Ready(false) {
		return 0, unix.EAGAIN
	}
	if len(s.in) > 0 {
		return copy(p, s.in), nil
	}
	return 0, s.rerr
}

// read reads from the tls.Conn, keeping where reading ended.
func (s *stream) read(p []byte) (int, error) {
	if s.rerr != nil {
		return 0, s.rerr
	}
	n, err := s.tls.Read(p)
	if n > 0 {
		s.maybeIn = true
		return n, nil
	}
	var ae again
	switch {
	case errors.As(err, &ae):
		// tls.Conn holds no whole record now: only new input can help.
		s.maybeIn = false
		return 0, unix.EAGAIN
	case err == io.EOF:
		s.rerr = io.EOF
	case err != nil:
		// A reset or a broken record: the stream is not whole.
		s.rerr = fmt.Errorf("sockets: TLS connection: %w", unix.ECONNRESET)
		s.raw.end(false)
	}
	return 0, s.rerr
}

func (s *stream) Write(p []byte) (int, error) {
	if s.raw.unsent() >= maxUnsent {
		return 0, unix.EAGAIN
	}
	n, err := s.tls.Write(p)
	if err != nil {
		return n, fmt.Errorf("sockets: TLS connection: %w", unix.EPIPE)
	}
	return n, nil
}

func (s *stream) CloseWrite() error {
	_ = s.tls.CloseWrite() // close_notify, queued after what was written
	s.raw.end(false)
	return nil
}

func (s *stream) CloseRead() error {
	if s.rerr == nil {
		s.rerr = io.EOF
	}
	s.in = nil
	return nil
}

func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		_ = s.tls.CloseWrite()
		s.raw.done = func() { s.set.untrack(s) }
		s.raw.end(true)
	})
	return nil
}

// close is Set.Close's: the connection ends at once.
func (s *stream) close() { s.raw.kill() }
