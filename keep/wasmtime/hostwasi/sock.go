//go:build linux

package hostwasi

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Socket is a stream socket the host gives the workload: a descriptor it
// finds by Name in FD_NAMES. Exactly one of File and Acceptor is set.
type Socket struct {
	// Name labels the descriptor in FD_NAMES; it cannot contain ':'.
	Name string
	// File is a listening socket (the workload's sock_accept accepts on
	// it) or a connected one (the workload reads and writes it). New
	// duplicates it, and the duplicate shares the open file description:
	// the socket is non-blocking for the caller too from then on. The
	// caller keeps and closes its own.
	File *os.File
	// Acceptor is a listener whose connections the host accepts itself
	// (after a TLS handshake, say) and hands to the workload.
	Acceptor Acceptor
}

// Acceptor hands the workload connections the host accepted. It has the
// method set of keep/sockets.Acceptor, so that the engine passes one on as
// it is.
type Acceptor interface {
	// PollFD is a descriptor that polls readable while a connection is
	// waiting; poll_oneoff waits on it for the listener's read readiness.
	PollFD() int
	// Accept returns a waiting connection without blocking, or an error
	// matching unix.EAGAIN when none is waiting. The WASI takes the file:
	// it becomes one of the workload's connections.
	Accept() (*os.File, error)
}

// openSocket makes the entry of one of Config.Sockets: a listener for an
// Acceptor or a listening File, a connection for a connected File.
func openSocket(s Socket) (*entry, error) {
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
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindListener {
		return eNotSup
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
func acceptFrom(a Acceptor) (int, errno) {
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
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindConn {
		return eNotSup
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
	if err := unix.Shutdown(e.hostFD, how); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}
