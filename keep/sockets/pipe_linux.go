package sockets

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// pipe carries the plaintext of a TLS connection to and from the
// workload's end of a socketpair, keeping the half-closes of each side:
//
//   - the TLS peer ends its output (close_notify or FIN): the workload reads
//     EOF (shutdown(SHUT_WR) on the Keep's end) and may still write;
//   - the workload shuts down its write side: the peer gets close_notify
//     and a FIN and may still send;
//   - the workload closes its end: what it wrote before still reaches the
//     peer, then close_notify, then both connections are closed;
//   - the peer resets, breaks a record or stops taking data, or both
//     directions have ended: both connections are closed.
type pipe struct {
	tls  *tls.Conn
	pair *net.UnixConn
	// ended counts the directions that ended in order.
	ended     atomic.Int32
	closeOnce sync.Once
}

// newPair returns a connected stream socketpair: the workload's end as a
// file, the Keep's end as a connection.
func newPair() (*os.File, *net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	workload := os.NewFile(uintptr(fds[0]), "workload")
	keep := os.NewFile(uintptr(fds[1]), "keep")
	defer keep.Close()
	c, err := net.FileConn(keep)
	if err != nil {
		workload.Close()
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return workload, c.(*net.UnixConn), nil
}

// run pumps until both directions have ended, then closes both
// connections.
func (p *pipe) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.fromPeer()
	}()
	go func() {
		defer wg.Done()
		p.toPeer()
	}()
	wg.Wait()
	p.close()
}

// fromPeer copies the TLS peer's plaintext to the workload.
func (p *pipe) fromPeer() {
	readErr, writeErr := copyStream(p.pair, p.tls)
	switch {
	case readErr != nil:
		p.close() // a reset or a broken record: the stream is not whole
		return
	case writeErr != nil:
		// The workload closed its end. What it wrote before is still to
		// be carried by toPeer, which then closes.
	default:
		_ = p.pair.CloseWrite()
	}
	p.endOne()
}

// toPeer copies the workload's output to the TLS peer.
func (p *pipe) toPeer() {
	readErr, writeErr := copyStream(p.tls, p.pair)
	if writeErr != nil {
		p.close() // the peer is gone
		return
	}
	// The workload is done writing: it shut down its write side (EOF) or
	// closed its end (EOF, or ECONNRESET when it left data unread). The
	// peer hears close_notify, then a FIN.
	_ = p.tls.CloseWrite()
	if cw, ok := p.tls.NetConn().(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	if p.endOne() {
		return
	}
	if readErr == nil {
		// A closed end hangs up; a shut down one does not, until closed.
		p.waitHangup()
	}
	p.close()
}

// copyStream copies src to dst until src ends (both errors nil) or fails.
func copyStream(dst io.Writer, src io.Reader) (readErr, writeErr error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// endOne records a direction ended in order and, when it is the second,
// closes both connections; it reports whether it did.
func (p *pipe) endOne() bool {
	if p.ended.Add(1) == 2 {
		p.close()
		return true
	}
	return false
}

// waitHangup returns once the workload has closed its end (POLLHUP on the
// Keep's end) or the pipe is closed. The runtime's poller wakes it on
// every change of the socket's state; nothing is read.
func (p *pipe) waitHangup() {
	rc, err := p.pair.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd)}}
		n, err := unix.Poll(pfd, 0)
		return err != nil || n > 0 && pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	})
}

// close ends both connections at once. Graceful ends have sent their
// close_notify already, so the TCP connection is closed under the TLS one
// rather than through it: tls.Conn.Close could wait seconds on a peer
// that does not read.
func (p *pipe) close() {
	p.closeOnce.Do(func() {
		p.tls.NetConn().Close()
		p.pair.Close()
	})
}
