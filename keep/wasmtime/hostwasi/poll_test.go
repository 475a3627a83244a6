//go:build linux

package hostwasi

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// sub is a poll_oneoff subscription for the tests: a clock (fd < 0,
// relative timeout d) or an fd_read/fd_write on fd.
type sub struct {
	tag     uint8
	fd      uint32
	clockID uint32
	d       time.Duration
}

type event struct {
	userdata uint64
	errno    errno
	tag      uint8
	hup      bool
}

// poll calls pollOneoff directly on a fake memory, userdata being the
// subscription's index; a trap is its message.
func poll(t *testing.T, w *WASI, subs ...sub) ([]event, string) {
	t.Helper()
	e, c := pollCall(w, subs...)
	if e != eSuccess {
		t.Fatalf("poll_oneoff: errno %d", e)
	}
	if c.trap != "" {
		return nil, c.trap
	}
	var evs []event
	for i := uint32(0); i < binary.LittleEndian.Uint32(c.mem[pollNout:]); i++ {
		b := c.mem[pollOut+32*i:]
		evs = append(evs, event{binary.LittleEndian.Uint64(b), errno(binary.LittleEndian.Uint16(b[8:])), b[10], b[24]&1 != 0})
	}
	return evs, ""
}

const pollIn, pollOut, pollNout = 0, 2048, 4000

// pollCall makes the call and returns its errno and the call.
func pollCall(w *WASI, subs ...sub) (errno, *call) {
	mem := make([]byte, 4096)
	for i, s := range subs {
		b := mem[pollIn+48*i:]
		binary.LittleEndian.PutUint64(b, uint64(i))
		b[8] = s.tag
		if s.tag == eventClock {
			binary.LittleEndian.PutUint32(b[16:], s.clockID)
			binary.LittleEndian.PutUint64(b[24:], uint64(s.d))
		} else {
			binary.LittleEndian.PutUint32(b[16:], s.fd)
		}
	}
	c := &call{mem: mem, raw: i32s(pollIn, pollOut, int32(len(subs)), pollNout)}
	return pollOneoff(w, c), c
}

// pollFixture is a WASI with stdin a pipe (fd 0), a preopen (fd 3), a
// listener (fd 4) and a connection accepted on it (fd 5, peer returned).
func pollFixture(t *testing.T) (*WASI, *os.File, net.Conn, int32) {
	t.Helper()
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); wr.Close() })
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "file")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	w, err := New(Config{Stdin: r, Preopens: []engine.Preopen{{HostPath: dir, GuestPath: "/"}}, Sockets: []engine.Socket{{Name: "l", File: lf}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	// Accept through the WASI, as the guest would.
	mem := make([]byte, 16)
	c := &call{mem: mem, raw: i32s(4, 0, 0)}
	deadline := time.Now().Add(5 * time.Second)
	for sockAccept(w, c) != eSuccess {
		if time.Now().After(deadline) {
			t.Fatal("sock_accept: nothing to accept")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// And open a file in the preopen, at fd 6.
	file, e := openat2(w.fds.get(3).hostFD, "f", 0)
	if e != eSuccess {
		t.Fatalf("open f: %d", e)
	}
	w.fds.add(&entry{kind: kindFile, hostFD: file})
	return w, wr, peer, int32(binary.LittleEndian.Uint32(mem))
}

func TestPollOneoff(t *testing.T) {
	w, stdinW, peer, conn := pollFixture(t)
	if conn != 5 {
		t.Fatalf("accepted connection at fd %d, want 5", conn)
	}
	read := func(fd int32) sub { return sub{tag: eventFdRead, fd: uint32(fd)} }
	write := func(fd int32) sub { return sub{tag: eventFdWrite, fd: uint32(fd)} }
	clock := func(d time.Duration) sub { return sub{tag: eventClock, clockID: 1, d: d} }

	check := func(name string, subs []sub, want []event, minWait, maxWait time.Duration) {
		t.Helper()
		t0 := time.Now()
		got, trap := poll(t, w, subs...)
		el := time.Since(t0)
		if trap != "" {
			t.Fatalf("%s: trap %v", name, trap)
		}
		if len(got) != len(want) {
			t.Errorf("%s: events %+v, want %+v", name, got, want)
		} else {
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s: event %d %+v, want %+v", name, i, got[i], want[i])
				}
			}
		}
		if el < minWait || el > maxWait {
			t.Errorf("%s: took %v, want between %v and %v", name, el, minWait, maxWait)
		}
	}
	check("clock alone", []sub{clock(30 * time.Millisecond)},
		[]event{{0, 0, eventClock, false}}, 30*time.Millisecond, time.Second)
	check("idle socket, idle stdin and a clock", []sub{read(conn), read(0), read(4), clock(30 * time.Millisecond)},
		[]event{{3, 0, eventClock, false}}, 30*time.Millisecond, time.Second)
	check("two clocks: the earlier", []sub{clock(time.Hour), clock(20 * time.Millisecond)},
		[]event{{1, 0, eventClock, false}}, 20*time.Millisecond, time.Second)
	check("a file is ready at once", []sub{read(conn), read(6), clock(time.Hour)},
		[]event{{1, 0, eventFdRead, false}}, 0, 100*time.Millisecond)
	check("a writable socket", []sub{read(conn), write(conn), clock(time.Hour)},
		[]event{{1, 0, eventFdWrite, false}}, 0, 100*time.Millisecond)
	// As in wasmtime's WASI, a subscription no event can answer fails
	// the call.
	for _, c := range []struct {
		name string
		subs []sub
		want errno
	}{
		{"a bad descriptor", []sub{read(42), clock(time.Hour)}, eBadf},
		{"a directory", []sub{read(3), clock(time.Hour)}, eBadf},
		{"stdin to write", []sub{write(0), clock(time.Hour)}, eBadf},
		{"an unknown clock", []sub{{tag: eventClock, clockID: 9, d: time.Hour}, read(conn), clock(time.Hour)}, eInval},
	} {
		if e, _ := pollCall(w, c.subs...); e != c.want {
			t.Errorf("%s: errno %d, want %d", c.name, e, c.want)
		}
	}

	go func() { time.Sleep(30 * time.Millisecond); peer.Write([]byte("x")) }()
	check("data arrives on the socket", []sub{read(conn), read(0), clock(time.Hour)},
		[]event{{0, 0, eventFdRead, false}}, 20*time.Millisecond, time.Second)
	go func() { time.Sleep(30 * time.Millisecond); stdinW.Write([]byte("x")) }()
	check("data arrives on stdin", []sub{read(0), clock(time.Hour)},
		[]event{{0, 0, eventFdRead, false}}, 20*time.Millisecond, time.Second)

	// Interrupt stops a poll that would wait for an hour.
	go func() { time.Sleep(30 * time.Millisecond); w.Interrupt() }()
	t0 := time.Now()
	if _, trap := poll(t, w, read(4), clock(time.Hour)); trap == "" {
		t.Error("interrupted poll_oneoff: no trap")
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("interrupted poll_oneoff took %v", el)
	}
}
