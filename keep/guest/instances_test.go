package guest

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// instancesModule is an engine.Module whose runs end as its statuses say,
// in the order they start, and record the socket file each run got, as an
// engine's Run does, closing it.
type instancesModule struct {
	mu       sync.Mutex
	statuses []int
	errs     []error
	release  chan struct{} // closed to let runs after the first end
	fds      []int
	blocking bool // a run's socket was in blocking mode
	started  int
}

func (m *instancesModule) Run(ctx context.Context, opts engine.RunOptions) (int, error) {
	m.mu.Lock()
	i := m.started
	m.started++
	f := opts.Sockets[0].File
	if sc, err := f.SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) {
			if flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil {
				m.fds = append(m.fds, int(fd))
				m.blocking = m.blocking || flags&unix.O_NONBLOCK == 0
			}
		})
	}
	f.Close()
	m.mu.Unlock()
	if i > 0 && m.release != nil {
		<-m.release
	}
	return m.statuses[i], m.errs[i]
}

// TestRunInstances: every instance runs with a socket file of its own, left
// in non-blocking mode; the Keep ends with the first instance that fails,
// or with 0 once all have.
func TestRunInstances(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		name     string
		statuses []int
		errs     []error
		release  bool // the first instance ends before the others
		want     int
		wantErr  error
	}{
		{"all exit 0", []int{0, 0, 0}, []error{nil, nil, nil}, false, 0, nil},
		{"one exits 7 while the others run", []int{7, 0, 0}, []error{nil, nil, nil}, true, 7, nil},
		{"one fails", []int{0, 0, 0}, []error{boom, nil, nil}, true, 0, boom},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			m := &instancesModule{statuses: c.statuses, errs: c.errs}
			if c.release {
				m.release = make(chan struct{})
				defer close(m.release)
			}
			next := &runAhead{done: make(chan struct{}), module: m, instances: len(c.statuses),
				opts: engine.RunOptions{Sockets: []engine.Socket{{Name: "web", File: r}}}}
			close(next.done)
			status, err := next.run(context.Background())
			if status != c.want || !errors.Is(err, c.wantErr) {
				t.Errorf("run: %d, %v; want %d, %v", status, err, c.want, c.wantErr)
			}
			if c.release {
				return
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.started != len(c.statuses) || len(m.fds) != len(c.statuses) {
				t.Fatalf("%d runs started, %d with an open socket file; want %d", m.started, len(m.fds), len(c.statuses))
			}
			seen := map[int]bool{}
			for _, fd := range m.fds {
				seen[fd] = true
			}
			if len(seen) != len(m.fds) {
				t.Errorf("socket descriptors %v: want one of its own for each instance", m.fds)
			}
			if m.blocking {
				t.Error("a run's socket is in blocking mode: duplicating it must not change the mode of the file it shares")
			}
		})
	}
}

// TestRunOptionsInstances: the instances share the memory limit.
func TestRunOptionsInstances(t *testing.T) {
	for _, c := range []struct {
		instances int
		limit     int64
		want      int64
	}{
		{0, 64 << 20, 64 << 20},
		{1, 64 << 20, 64 << 20},
		{4, 64 << 20, 16 << 20},
		{4, 0, 0},
		{4, 3, 1},
	} {
		cfg := keep.Config{MemoryLimit: c.limit, Workload: workload.Workload{Instances: c.instances}}
		if got := runOptions(cfg, nil).MemoryLimit; got != c.want {
			t.Errorf("%d instances of a limit of %d: %d each, want %d", c.instances, c.limit, got, c.want)
		}
	}
}
