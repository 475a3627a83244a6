//go:build linux

package hostwasi

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// fakeAcceptor is an Acceptor whose connections the test queues: a pipe
// holds one byte per waiting connection, so it polls readable while one
// waits.
type fakeAcceptor struct {
	r, w  *os.File
	mu    sync.Mutex
	queue []*os.File
	err   error // returned by Accept instead of a connection, when set
}

func newFakeAcceptor(t *testing.T) *fakeAcceptor {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &fakeAcceptor{r: r, w: w}
}

func (a *fakeAcceptor) PollFD() int { return rawFD(a.r) }

func (a *fakeAcceptor) Accept() (*os.File, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return nil, a.err
	}
	if len(a.queue) == 0 {
		return nil, fmt.Errorf("fake acceptor: %w", unix.EAGAIN)
	}
	var b [1]byte
	a.r.Read(b[:])
	f := a.queue[0]
	a.queue = a.queue[1:]
	return f, nil
}

// push queues one end of a new socketpair and returns the other.
func (a *fakeAcceptor) push(t *testing.T) (theirs *os.File, ours *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	theirs, ours = os.NewFile(uintptr(fds[0]), "workload"), os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { ours.Close() })
	a.mu.Lock()
	a.queue = append(a.queue, theirs)
	a.mu.Unlock()
	a.w.Write([]byte{1})
	return theirs, ours
}

// callOn calls h with i32 arguments on mem.
func callOn(w *WASI, h handler, mem []byte, args ...int32) errno {
	return h(w, &call{mem: mem, raw: i32s(args...)})
}

// i32s are the raw values of i32 arguments.
func i32s(args ...int32) []rawVal {
	raw := make([]rawVal, len(args))
	for i, a := range args {
		raw[i] = rawVal{lo: uint64(uint32(a))}
	}
	return raw
}

// fdInfo is what the workload learns of a descriptor: fd_fdstat_get's file
// type and fdflags, fd_filestat_get's file type, fd_prestat_get's errno.
type fdInfo struct {
	fdstatType   uint8
	nonblock     bool
	filestatType uint8
	prestat      errno
}

func infoOf(t *testing.T, w *WASI, fd int32) fdInfo {
	t.Helper()
	mem := make([]byte, 128)
	var in fdInfo
	if e := callOn(w, fdFdstatGet, mem, fd, 0); e != eSuccess {
		t.Fatalf("fd_fdstat_get(%d): errno %d", fd, e)
	}
	in.fdstatType = mem[0]
	in.nonblock = binary.LittleEndian.Uint16(mem[2:])&fdflagNonblock != 0
	if e := callOn(w, fdFilestatGet, mem, fd, 0); e != eSuccess {
		t.Fatalf("fd_filestat_get(%d): errno %d", fd, e)
	}
	in.filestatType = mem[16]
	in.prestat = callOn(w, fdPrestatGet, mem, fd, 0)
	return in
}

// TestSockets checks the descriptor table New makes of stdio, a preopen
// and the three kinds of socket, what the workload learns of each, and
// FD_COUNT/FD_NAMES.
func TestSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cf, _ := conn.(*net.TCPConn).File()
	defer cf.Close()
	a := newFakeAcceptor(t)
	w, err := New(Config{
		Env:      []string{"FD_NAMES=old", "X=1", "FD_COUNT=9"},
		Preopens: []engine.Preopen{{HostPath: t.TempDir(), GuestPath: "/d"}},
		Sockets:  []engine.Socket{{Name: "l", File: lf}, {Name: "c", File: cf}, {Name: "a", Acceptor: a}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	if want := []string{"X=1", "FD_COUNT=7", "FD_NAMES=stdin:stdout:stderr:/d:l:c:a"}; !slices.Equal(w.env, want) {
		t.Errorf("environment %q, want %q", w.env, want)
	}
	for fd, want := range []fdInfo{
		// Stdio that is not a terminal has no type, as in wasmtime's WASI.
		{fileUnknown, false, fileUnknown, eBadf},
		{fileUnknown, false, fileUnknown, eBadf},
		{fileUnknown, false, fileUnknown, eBadf},
		{fileDirectory, false, fileDirectory, eSuccess},
		// Go's net.FileListener and net.FileConn want a stream socket.
		{fileSocket, true, fileSocket, eBadf},
		{fileSocket, true, fileSocket, eBadf},
		{fileSocket, true, fileSocket, eBadf},
	} {
		if got := infoOf(t, w, int32(fd)); got != want {
			t.Errorf("fd %d: %+v, want %+v", fd, got, want)
		}
	}
	if e := callOn(w, fdPrestatGet, make([]byte, 8), 7, 0); e != eBadf {
		t.Errorf("fd_prestat_get(7), past the table: errno %d, want EBADF", e)
	}
	for fd, k := range map[int32]kind{4: kindListener, 5: kindConn, 6: kindListener} {
		if got := w.fds.get(fd).kind; got != k {
			t.Errorf("fd %d: kind %d, want %d", fd, got, k)
		}
		if fd == 6 {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(w.fds.get(fd).hostFD), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK == 0 {
			t.Errorf("fd %d: host flags %#x, %v; want O_NONBLOCK", fd, fl, err)
		}
	}

	// The connected socket carries bytes both ways.
	mem := make([]byte, 64)
	copy(mem[32:], "ping")
	binary.LittleEndian.PutUint32(mem[0:], 32)
	binary.LittleEndian.PutUint32(mem[4:], 4)
	if e := callOn(w, fdWrite, mem, 5, 0, 1, 8); e != eSuccess {
		t.Fatalf("fd_write on the connection: errno %d", e)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	buf := make([]byte, 4)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(buf); err != nil || string(buf) != "ping" {
		t.Errorf("the peer read %q, %v; want ping", buf, err)
	}

	t.Run("no sockets, no FD_NAMES", func(t *testing.T) {
		w, err := New(Config{Env: []string{"FD_NAMES=mine"}})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if want := []string{"FD_NAMES=mine"}; !slices.Equal(w.env, want) {
			t.Errorf("environment %q, want %q", w.env, want)
		}
	})
}

// TestSocketErrors checks that New refuses what it cannot serve, naming
// the socket.
func TestSocketErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	uf, _ := udp.(*net.UDPConn).File()
	defer uf.Close()
	regular, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	a := newFakeAcceptor(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"neither", Config{Sockets: []engine.Socket{{Name: "s"}}}, `socket "s": neither a File nor an Acceptor`},
		{"both", Config{Sockets: []engine.Socket{{Name: "s", File: lf, Acceptor: a}}}, `socket "s": both a File and an Acceptor`},
		{"no name", Config{Sockets: []engine.Socket{{File: lf}}}, `socket "": a name must be non-empty`},
		{"name with :", Config{Sockets: []engine.Socket{{Name: "a:b", File: lf}}}, `socket "a:b": a name must be non-empty, without ':'`},
		{"datagram", Config{Sockets: []engine.Socket{{Name: "u", File: uf}}}, `socket "u": ` + uf.Name() + ` is not a stream socket`},
		{"not a socket", Config{Sockets: []engine.Socket{{Name: "f", File: regular}}}, `socket "f": ` + regular.Name() + ` is not a socket`},
		{"acceptor without a descriptor", Config{Sockets: []engine.Socket{{Name: "a", Acceptor: badAcceptor{}}}}, `socket "a": the Acceptor has no descriptor to poll`},
		{"preopen with :", Config{Preopens: []engine.Preopen{{HostPath: t.TempDir(), GuestPath: "/a:b"}}, Sockets: []engine.Socket{{Name: "l", File: lf}}}, `at "/a:b": a guest path with ':'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(tc.cfg)
			if err == nil {
				w.Close()
				t.Fatalf("New: no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

type badAcceptor struct{}

func (badAcceptor) PollFD() int               { return -1 }
func (badAcceptor) Accept() (*os.File, error) { return nil, unix.EAGAIN }

// TestAcceptor checks a listener whose connections come from an Acceptor:
// sock_accept answers EAGAIN while none waits, poll_oneoff waits on
// PollFD, and an accepted connection is a non-blocking socket of the
// workload's.
func TestAcceptor(t *testing.T) {
	a := newFakeAcceptor(t)
	w, err := New(Config{Sockets: []engine.Socket{{Name: "tls", Acceptor: a}}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const listener = 3
	read := sub{tag: eventFdRead, fd: listener}
	clock := sub{tag: eventClock, clockID: 1, d: 30 * time.Millisecond}
	mem := make([]byte, 64)

	if e := callOn(w, sockAccept, mem, listener, 0, 0); e != eAgain {
		t.Fatalf("sock_accept with nothing waiting: errno %d, want EAGAIN", e)
	}
	if evs, _ := poll(t, w, read, clock); len(evs) != 1 || evs[0].tag != eventClock {
		t.Errorf("poll_oneoff with nothing waiting: %+v, want the clock only", evs)
	}
	go func() { time.Sleep(30 * time.Millisecond); a.push(t) }()
	t0 := time.Now()
	evs, _ := poll(t, w, read, sub{tag: eventClock, clockID: 1, d: time.Hour})
	if len(evs) != 1 || evs[0].tag != eventFdRead || evs[0].errno != eSuccess {
		t.Fatalf("poll_oneoff as a connection arrives: %+v, want the listener readable", evs)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Errorf("poll_oneoff took %v", el)
	}
	a.mu.Lock()
	theirs := a.queue[0]
	a.mu.Unlock()
	if e := callOn(w, sockAccept, mem, listener, 0, 0); e != eSuccess {
		t.Fatalf("sock_accept: errno %d", e)
	}
	fd := int32(binary.LittleEndian.Uint32(mem))
	if fd != 4 {
		t.Errorf("accepted connection at fd %d, want 4", fd)
	}
	if err := theirs.Close(); err == nil {
		t.Error("the Acceptor's file is still open: the WASI must take it over")
	}
	if got := infoOf(t, w, fd); got != (fdInfo{fileSocket, true, fileSocket, eBadf}) {
		t.Errorf("accepted connection: %+v", got)
	}
	if fl, err := unix.FcntlInt(uintptr(w.fds.get(fd).hostFD), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("accepted connection: host flags %#x, %v; want O_NONBLOCK", fl, err)
	}
	if evs, _ := poll(t, w, read, clock); len(evs) != 1 || evs[0].tag != eventClock {
		t.Errorf("poll_oneoff after the only connection was taken: %+v, want the clock only", evs)
	}

	_, ours := a.push(t)
	if e := callOn(w, sockAccept, mem, listener, 0, 0); e != eSuccess {
		t.Fatalf("second sock_accept: errno %d", e)
	}
	second := int32(binary.LittleEndian.Uint32(mem))
	ours.Write([]byte("hello"))
	binary.LittleEndian.PutUint32(mem[0:], 32)
	binary.LittleEndian.PutUint32(mem[4:], 16)
	if e := callOn(w, fdRead, mem, second, 0, 1, 8); e != eSuccess {
		t.Fatalf("fd_read on the accepted connection: errno %d", e)
	}
	if n := binary.LittleEndian.Uint32(mem[8:]); string(mem[32:32+n]) != "hello" {
		t.Errorf("fd_read: %q, want hello", mem[32:32+n])
	}
	if e := callOn(w, fdRead, mem, second, 0, 1, 8); e != eAgain {
		t.Errorf("fd_read with nothing to read: errno %d, want EAGAIN", e)
	}

	a.err = unix.EMFILE
	if e := callOn(w, sockAccept, mem, listener, 0, 0); e == eSuccess || e == eAgain {
		t.Errorf("sock_accept when the Acceptor fails: errno %d, want an error other than EAGAIN", e)
	}
	a.err = nil

	// Closing the workload's listener leaves the Acceptor alone.
	if e := callOn(w, fdClose, mem, listener); e != eSuccess {
		t.Fatalf("fd_close on the listener: errno %d", e)
	}
	if _, err := unix.FcntlInt(uintptr(a.PollFD()), unix.F_GETFD, 0); err != nil {
		t.Errorf("the Acceptor's PollFD was closed: %v", err)
	}
}

// TestFilesWithSockets runs fsprobe with two preopens and a socket after
// them: Go's runtime finds both preopens (fd_prestat_get answers EBADF
// from the socket on) and sees FD_NAMES.
func TestFilesWithSockets(t *testing.T) {
	base := t.TempDir()
	root, out := filepath.Join(base, "root"), filepath.Join(base, "out")
	os.Mkdir(root, 0o755)
	os.Mkdir(out, 0o755)
	writeFile(t, filepath.Join(root, "hello.txt"), "root hello")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	got, o := probeWith(t, Config{
		Preopens: []engine.Preopen{{HostPath: root, GuestPath: "/"}, {HostPath: out, GuestPath: "/out"}},
		Sockets:  []engine.Socket{{Name: "web", File: lf}},
	}, "read", "/hello.txt", "write", "/out/new.txt", "x", "env", "FD_NAMES")
	expect(t, got, o, map[string]string{
		"read /hello.txt":    "ok: root hello",
		"write /out/new.txt": "ok",
		"env FD_NAMES":       "ok: stdin:stdout:stderr:/:/out:web",
	})
}
