//go:build linux

package hostwasi

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// openSocket makes the entry of one of Config.Sockets: a listener for an
// Acceptor or a listening File, a connection for a connected File.
func openSocket(s engine.Socket) (*entry, error) {
	if s.Name == "" || strings.ContainsAny(s.Name, ":\x00") {
		return nil, fmt.Errorf("hostwasi: socket %q: a name must be non-empty, without ':' or NUL (FD_NAMES separates names with ':')", s.Name)
	}
	switch {
	case s.File != nil && s.Acceptor != nil:
		return nil, fmt.Errorf("hostwasi: socket %q: both a File and an Acceptor; give one", s.Name)
	case s.Acceptor != nil:
		if s.Acceptor.PollFD() < 0 {
			return nil, fmt.Errorf("hostwasi: socket %q: the Acceptor has no descriptor to poll (PollFD %d)", s.Name, s.Acceptor.PollFD())
		}
		return &entry{kind: kindListener, hostFD: -1, acceptor: s.Acceptor}, nil
	case s.File == nil:
		return nil, fmt.Errorf("hostwasi: socket %q: neither a File nor an Acceptor", s.Name)
	}
	fd, err := unix.FcntlInt(uintptr(rawFD(s.File)), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("hostwasi: socket %q: duplicate %s: %w", s.Name, s.File.Name(), err)
	}
	e := &entry{kind: kindConn, hostFD: fd}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("hostwasi: socket %q: %s is not a socket: %w", s.Name, s.File.Name(), err)
	}
	if typ != unix.SOCK_STREAM {
		e.close()
		return nil, fmt.Errorf("hostwasi: socket %q: %s is not a stream socket (type %d); only stream sockets are supported", s.Name, s.File.Name(), typ)
	}
	listening, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("hostwasi: socket %q: SO_ACCEPTCONN: %w", s.Name, err)
	}
	if listening != 0 {
		e.kind = kindListener
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		e.close()
		return nil, fmt.Errorf("hostwasi: socket %q: set non-blocking: %w", s.Name, err)
	}
	return e, nil
}

func sockAccept(w *WASI, c *call) errno {
	if c.u32(1)&^fdflagsAll != 0 {
		c.fail("sock_accept: invalid fdflags %#x", c.u32(1))
		return eInval
	}
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindListener {
		return eNotSock
	}
	if sa, ok := e.acceptor.(engine.StreamAcceptor); ok {
		st, err := sa.AcceptStream()
		if err != nil {
			return errnoOf(err)
		}
		g := w.fds.add(&entry{kind: kindConn, hostFD: -1, stream: st, nonblock: c.u32(1)&fdflagNonblock != 0})
		c.put32(c.u32(2), uint32(g))
		return eSuccess
	}
	var nfd int
	if e.acceptor != nil {
		var en errno
		if nfd, en = acceptFrom(e.acceptor); en != eSuccess {
			return en
		}
	} else {
		var err error
		if nfd, _, err = unix.Accept4(e.hostFD, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err != nil {
			return errnoOf(err)
		}
	}
	unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // fails harmlessly on unix sockets
	g := w.fds.add(&entry{kind: kindConn, hostFD: nfd, nonblock: c.u32(1)&fdflagNonblock != 0})
	c.put32(c.u32(2), uint32(g))
	return eSuccess
}

// acceptFrom takes a connection from an Acceptor as a non-blocking
// descriptor of the WASI's own. EAGAIN is the workload's to wait on
// (poll_oneoff on PollFD).
func acceptFrom(a engine.Acceptor) (int, errno) {
	f, err := a.Accept()
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return -1, eAgain
		}
		return -1, errnoOf(err)
	}
	if f == nil {
		return -1, eIO // an Acceptor bug; EAGAIN would have the guest spin
	}
	// An *os.File does not give its descriptor away (its finalizer would
	// close it): keep a duplicate and close the file.
	fd, err := unix.FcntlInt(uintptr(rawFD(f)), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return -1, errnoOf(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, errnoOf(err)
	}
	return fd, eSuccess
}

func sockShutdown(w *WASI, c *call) errno {
	if c.u32(1)&^3 != 0 {
		c.fail("sock_shutdown: invalid sdflags %#x", c.u32(1))
		return eInval
	}
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindConn {
		return eNotSock
	}
	var how int
	switch c.u32(1) {
	case 1: // RD
		how = unix.SHUT_RD
	case 2: // WR
		how = unix.SHUT_WR
	case 3:
		how = unix.SHUT_RDWR
	default:
		return eInval
	}
	if e.stream != nil {
		if how != unix.SHUT_WR {
			e.stream.CloseRead()
		}
		if how != unix.SHUT_RD {
			e.stream.CloseWrite()
		}
		return eSuccess
	}
	if err := unix.Shutdown(e.hostFD, how); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

// sockRecv reads from a connection into the iovecs: riflags recv_peek (1)
// and recv_waitall (2); roflags is always 0 (stream sockets do not
// truncate).
func sockRecv(w *WASI, c *call) errno {
	flags := c.u32(3)
	if flags&^3 != 0 {
		c.fail("sock_recv: invalid riflags %#x", flags)
		return eInval
	}
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindConn {
		return eNotSock
	}
	var mflags int
	if flags&1 != 0 {
		mflags |= unix.MSG_PEEK
	}
	if flags&2 != 0 {
		mflags |= unix.MSG_WAITALL
	}
	n, err := e.recv(c.iovecs(c.u32(1), c.u32(2)), mflags)
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(4), uint32(n))
	c.bytes(c.u32(5), 2)[0], c.bytes(c.u32(5), 2)[1] = 0, 0
	return eSuccess
}

// sockSend writes the iovecs to a connection (siflags has no flags).
func sockSend(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindConn {
		return eNotSock
	}
	n, err := e.send(c.iovecs(c.u32(1), c.u32(2)), 0)
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(4), uint32(n))
	return eSuccess
}

// recv reads a connection into bufs (flags MSG_PEEK and MSG_WAITALL; the
// socket is non-blocking, so WAITALL takes what has arrived), from its
// stream or its socket. The end of the stream reads as 0 bytes.
func (e *entry) recv(bufs [][]byte, flags int) (int, error) {
	if e.stream == nil {
		if flags == 0 {
			return unix.Readv(e.hostFD, bufs)
		}
		n, _, _, _, err := unix.RecvmsgBuffers(e.hostFD, bufs, nil, flags)
		return n, err
	}
	total := 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		var n int
		var err error
		if flags&unix.MSG_PEEK != 0 {
			n, err = e.stream.Peek(b)
			if err == nil && total > 0 {
				// A peek shows the first buffer's worth only.
				n = 0
			}
		} else {
			n, err = e.stream.Read(b)
		}
		if err != nil {
			if total > 0 || errors.Is(err, io.EOF) {
				return total, nil
			}
			return 0, err
		}
		total += n
		if n < len(b) || flags&unix.MSG_PEEK != 0 {
			break
		}
	}
	return total, nil
}

// send writes bufs to a connection, its stream or its socket.
func (e *entry) send(bufs [][]byte, _ int) (int, error) {
	if e.stream == nil {
		return unix.SendmsgBuffers(e.hostFD, bufs, nil, nil, unix.MSG_NOSIGNAL)
	}
	var p []byte
	switch n := 0; {
	case len(bufs) == 1:
		p = bufs[0]
	default:
		for _, b := range bufs {
			n += len(b)
		}
		p = make([]byte, 0, n)
		for _, b := range bufs {
			p = append(p, b...)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	return e.stream.Write(p)
}
