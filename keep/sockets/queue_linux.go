package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// queue is the Acceptor of a TLS listen socket: the connections the Keep
// accepted and handshook, in order of arrival, for the workload to take
// as pipes (Accept) or streams (AcceptStream). An
// eventfd in semaphore mode counts them, so it polls readable exactly while
// one waits, and each read takes one.
type queue struct {
	set  *Set
	name string
	efd  int
	max  int

	mu     sync.Mutex
	conns  []*handshaken
	closed bool
}

var _ engine.StreamAcceptor = (*queue)(nil)

func newQueue(set *Set, name string, max int) (*queue, error) {
	efd, err := unix.Eventfd(0, unix.EFD_SEMAPHORE|unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &queue{set: set, name: name, efd: efd, max: max}, nil
}

// PollFD is the eventfd; it is valid until the Set is closed.
func (q *queue) PollFD() int { return q.efd }

// Accept takes the oldest waiting connection as the workload's end of a
// pipe, or returns unix.EAGAIN when none waits and an error matching
// unix.EBADF once the Set is closed.
func (q *queue) Accept() (*os.File, error) {
	h, err := q.take()
	if err != nil {
		return nil, err
	}
	return q.set.pipeFile(h)
}

// AcceptStream is Accept, the connection as a stream.
func (q *queue) AcceptStream() (engine.Stream, error) {
	h, err := q.take()
	if err != nil {
		return nil, err
	}
	return q.set.stream(h)
}

// take takes the oldest waiting connection.
func (q *queue) take() (*handshaken, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, fmt.Errorf("sockets: listen socket %q is closed: %w", q.name, unix.EBADF)
	}
	var buf [8]byte
	for {
		_, err := unix.Read(q.efd, buf[:])
		if err == nil {
			break
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil, unix.EAGAIN
		}
		return nil, fmt.Errorf("sockets: listen socket %q: eventfd: %w", q.name, err)
	}
	h := q.conns[0]
	q.conns[0] = nil
	q.conns = q.conns[1:]
	return h, nil
}

// push queues h for the workload; false means the queue is full or closed
// and h is still the caller's.
func (q *queue) push(h *handshaken) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.conns) >= q.max {
		return false
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(q.efd, one[:]); err != nil {
		// Only an overflow of the counter fails, far beyond max.
		return false
	}
	q.conns = append(q.conns, h)
	return true
}

// close closes the waiting connections and the eventfd.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	for _, h := range q.conns {
		h.raw.Close()
	}
	q.conns = nil
	unix.Close(q.efd)
}
