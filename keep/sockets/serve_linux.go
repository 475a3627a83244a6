package sockets

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/containerd/log"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"golang.org/x/sys/unix"
)

// tlsListener is a listen socket with prot "tls": the Keep accepts and
// handshakes, the workload accepts from q.
type tlsListener struct {
	spec    socketspec.Spec
	ln      net.Listener
	q       *queue
	cfg     *tls.Config
	timeout time.Duration
	// slots bounds the handshakes in progress.
	slots chan struct{}
}

// serve accepts connections until the listener is closed, each handshaken
// on a goroutine of its own so that a slow client delays no other.
func (s *Set) serve(l *tlsListener) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			// Out of descriptors or memory, or a connection aborted while
			// queued: back off as net/http does, and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.G(s.ctx).WithError(err).WithField("socket", l.spec.Name).Warnf("sockets: accept failed; retrying in %s", delay)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		select {
		case l.slots <- struct{}{}:
		case <-s.ctx.Done():
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(l, c)
		}()
	}
}

// handle handshakes c and queues it for the workload's Accept or
// AcceptStream.
func (s *Set) handle(l *tlsListener, c net.Conn) {
	logger := log.G(s.ctx).WithFields(log.Fields{"socket": l.spec.Name, "peer": c.RemoteAddr().String()})
	raw, err := newRawConn(c)
	if err != nil {
		<-l.slots
		c.Close()
		logger.WithError(err).Warn("sockets: connection closed")
		return
	}
	tc := tls.Server(raw, l.cfg)
	hctx, cancel := context.WithTimeout(s.ctx, l.timeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	<-l.slots
	if err != nil {
		c.Close()
		if s.ctx.Err() == nil {
			// The error says what failed (version, group, certificate);
			// it holds no key material.
			logger.WithError(err).Info("sockets: TLS handshake failed; connection closed")
		}
		return
	}
	if !l.q.push(&handshaken{tls: tc, raw: raw}) {
		c.Close()
		if s.ctx.Err() == nil {
			logger.Warnf("sockets: connection closed: %d connections already wait for the workload to accept them", l.q.max)
		}
	}
}

// handshaken is a connection waiting in a queue.
type handshaken struct {
	tls *tls.Conn
	raw *rawConn
}

// pipeFile makes h a pipe and returns the workload's end of it.
func (s *Set) pipeFile(h *handshaken) (*os.File, error) {
	workload, pair, err := newPair()
	if err != nil {
		h.raw.Close()
		return nil, err
	}
	p := &pipe{tls: h.tls, pair: pair}
	if !s.track(p) {
		p.close()
		workload.Close()
		return nil, fmt.Errorf("sockets: closed: %w", unix.EBADF)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.untrack(p)
		p.run()
	}()
	return workload, nil
}

// stream makes h a stream.
func (s *Set) stream(h *handshaken) (*stream, error) {
	st, err := newStream(s, h.tls, h.raw)
	if err != nil {
		h.raw.Close()
		return nil, err
	}
	if !s.track(st) {
		st.close()
		return nil, fmt.Errorf("sockets: closed: %w", unix.EBADF)
	}
	return st, nil
}
