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

// queue is the Acceptor of a TLS listen socket: the workload's ends of the
// connections the Keep accepted and handshook, in order of arrival. An
// eventfd in semaphore mode counts them, so it polls readable exactly while
// one waits, and each read takes one.
type queue struct {
	name string
	efd  int
	max  int

	mu     sync.Mutex
	files  []*os.File
	closed bool
}

var _ engine.Acceptor = (*queue)(nil)

func newQueue(name string, max int) (*queue, error) {
	efd, err := unix.Eventfd(0, unix.EFD_SEMAPHORE|unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &queue{name: name, efd: efd, max: max}, nil
}

// PollFD is the eventfd; it is valid until the Set is closed.
func (q *queue) PollFD() int { return q.efd }

// Accept takes the oldest waiting connection, or returns unix.EAGAIN when
// none waits and an error matching unix.EBADF once the Set is closed.
func (q *queue) Accept() (*os.File, error) {
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
	f := q.files[0]
	q.files[0] = nil
	q.files = q.files[1:]
	return f, nil
}

// push queues f for the workload; false means the queue is full or closed
// and f is still the caller's.
func (q *queue) push(f *os.File) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.files) >= q.max {
		return false
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(q.efd, one[:]); err != nil {
		// Only an overflow of the counter fails, far beyond max.
		return false
	}
	q.files = append(q.files, f)
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
	for _, f := range q.files {
		f.Close()
	}
	q.files = nil
	unix.Close(q.efd)
}
