//go:build linux

package wasmtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// server is a run of testdata/httpserver in this process.
type server struct {
	client *http.Client
	base   string // "http://host:port"
	cancel context.CancelFunc
	done   chan result
}

// startServer runs testdata/httpserver with opts (its argv is set here:
// it serves on the socket called name) and waits until it answers through
// client at base.
func startServer(t *testing.T, opts engine.RunOptions, name string, client *http.Client, base string) *server {
	t.Helper()
	m := goModule(t, "testdata/httpserver")
	opts.Args = []string{"httpserver", name}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{client: client, base: base, cancel: cancel, done: make(chan result, 1)}
	go func() {
		status, err := m.Run(ctx, opts)
		s.done <- result{status, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("the server's Run did not return within 10s of cancel")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case r := <-s.done:
			s.done <- r
			t.Fatalf("the server ended before answering: Run() = %d, %v", r.status, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path and returns the body, failing the test on anything but
// 200 OK.
func (s *server) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := s.client.Get(s.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b)
}

// wait returns what Run returned, failing the test when it does not return
// within d.
func (s *server) wait(t *testing.T, d time.Duration) result {
	t.Helper()
	select {
	case r := <-s.done:
		s.done <- r // for the cleanup
		return r
	case <-time.After(d):
		t.Fatalf("Run did not return within %v", d)
		return result{}
	}
}

// TestSocketsListener serves HTTP from a Go workload on a listening TCP
// socket (a File), with a preopen before it: the workload finds the
// socket by name in FD_NAMES, which names every descriptor and replaces
// the FD_COUNT/FD_NAMES of the options, and proc_exit ends the run with
// its status.
func TestSocketsListener(t *testing.T) {
	sock, ln := listenSocket(t, "web")
	opts := engine.RunOptions{
		Env:      []string{"FD_COUNT=1", "A=b", "FD_NAMES=stale"},
		Preopens: []engine.Preopen{{HostPath: t.TempDir(), GuestPath: "/data"}},
		Sockets:  []engine.Socket{sock},
	}
	s := startServer(t, opts, "web", &http.Client{Timeout: 10 * time.Second}, "http://"+ln.Addr().String())
	for i := range 20 {
		if got, want := s.get(t, fmt.Sprintf("/x%d", i)), fmt.Sprintf("hello from /x%d\n", i); got != want {
			t.Fatalf("GET /x%d = %q, want %q", i, got, want)
		}
	}
	if got, want := s.get(t, "/env"), "FD_COUNT=5\nFD_NAMES=stdin:stdout:stderr:/data:web\n"; got != want {
		t.Errorf("the workload's FD_COUNT and FD_NAMES:\n%s\nwant:\n%s", got, want)
	}
	if got := s.get(t, "/exit/7"); got != "exiting with 7\n" {
		t.Errorf("GET /exit/7 = %q", got)
	}
	if r := s.wait(t, 10*time.Second); r.err != nil || r.status != 7 {
		t.Errorf("Run() = %d, %v; want 7, nil", r.status, r.err)
	}
}

// acceptor is a engine.Acceptor as the Keep's TLS terminator is one: a
// queue of socketpair ends and an eventfd (semaphore mode) that counts
// them.
type acceptor struct {
	efd      int
	mu       sync.Mutex
	queue    []*os.File
	accepted atomic.Int32
}

var _ engine.Acceptor = (*acceptor)(nil)

func newAcceptor(t *testing.T) *acceptor {
	t.Helper()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptor{efd: efd}
	t.Cleanup(func() {
		unix.Close(efd)
		for _, f := range a.queue {
			f.Close()
		}
	})
	return a
}

func (a *acceptor) PollFD() int { return a.efd }

func (a *acceptor) Accept() (*os.File, error) {
	var b [8]byte
	if _, err := unix.Read(a.efd, b[:]); err != nil {
		return nil, fmt.Errorf("acceptor: %w", err) // EAGAIN when empty
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.queue[0]
	a.queue = a.queue[1:]
	a.accepted.Add(1)
	return f, nil
}

// dial makes a connection for the workload: it queues one end of a new
// socketpair and returns the other as the client's connection.
func (a *acceptor) dial(context.Context, string, string) (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[1]), "client")
	defer ours.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	a.mu.Lock()
	a.queue = append(a.queue, os.NewFile(uintptr(fds[0]), "workload"))
	a.mu.Unlock()
	one := [8]byte{1}
	if _, err := unix.Write(a.efd, one[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return conn, nil
}

// TestSocketsAcceptor serves HTTP from a Go workload through an Acceptor:
// the connections are socketpairs the test makes, as the Keep hands over
// TLS-terminated connections.
func TestSocketsAcceptor(t *testing.T) {
	a := newAcceptor(t)
	tr := &http.Transport{DialContext: a.dial}
	defer tr.CloseIdleConnections()
	opts := engine.RunOptions{Sockets: []engine.Socket{{Name: "tls", Acceptor: a}}}
	s := startServer(t, opts, "tls", &http.Client{Transport: tr, Timeout: 10 * time.Second}, "http://workload")
	for i := range 10 {
		if got, want := s.get(t, fmt.Sprintf("/y%d", i)), fmt.Sprintf("hello from /y%d\n", i); got != want {
			t.Fatalf("GET /y%d = %q, want %q", i, got, want)
		}
		if i%3 == 0 {
			tr.CloseIdleConnections() // the next request needs a new connection
		}
	}
	if n := a.accepted.Load(); n < 4 {
		t.Errorf("the workload accepted %d connections, want at least 4", n)
	}
	if got, want := s.get(t, "/env"), "FD_COUNT=4\nFD_NAMES=stdin:stdout:stderr:tls\n"; got != want {
		t.Errorf("the workload's FD_COUNT and FD_NAMES:\n%s\nwant:\n%s", got, want)
	}
	tr.CloseIdleConnections()
	s.cancel()
	if r := s.wait(t, 5*time.Second); !errors.Is(r.err, engine.ErrInterrupted) {
		t.Errorf("Run() after cancel = %d, %v; want ErrInterrupted", r.status, r.err)
	}
}

// TestSocketsConnected gives a Go workload a connected socket: it finds it
// by name, sends a request and prints the answer of a server in this
// process. The workload runs in a child, whose stdout is the workload's.
func TestSocketsConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	requests := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		requests <- line
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 18\r\n\r\nupstream says hi\r\n")
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	conn.Close() // the workload's is the only one left open, in the child
	r := runChild(t, fixtures.Wasm(t, "testdata/httpclient"), engine.RunOptions{
		Args:    []string{"httpclient", "upstream", "/ping"},
		Sockets: []engine.Socket{{Name: "upstream", File: f}},
	}, "")
	if r.status != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", r.status, r.stderr)
	}
	if want := "HTTP/1.0 200 OK\r\nContent-Length: 18\r\n\r\nupstream says hi\r\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	select {
	case line := <-requests:
		if line != "GET /ping HTTP/1.0\r\n" {
			t.Errorf("the server got %q, want the GET /ping request line", line)
		}
	case <-time.After(5 * time.Second):
		t.Error("the server got no request")
	}
}

// TestSocketsInterrupt cancels a run whose workload waits for a
// connection, inside poll_oneoff where no wasm code runs to see the epoch:
// Run must return ErrInterrupted at once all the same, on an engine
// without epoch interruption too (a Keep's).
func TestSocketsInterrupt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{"cancel", Options{}, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", Options{}, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 3*time.Second)
		}, context.DeadlineExceeded},
		{"cancel-no-epoch", Options{NoEpochInterruption: true}, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, ln := listenSocket(t, "web")
			m := goModuleWith(t, "testdata/httpserver", tc.opts)
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan result, 1)
			go func() {
				status, err := m.Run(ctx, engine.RunOptions{Args: []string{"httpserver", "web"}, Sockets: []engine.Socket{sock}})
				done <- result{status, err}
			}()
			// Once it has answered, it is back in accept, waiting.
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := c.Get("http://" + ln.Addr().String() + "/")
				if err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the server did not answer: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			if tc.cause == context.Canceled {
				cancel()
			}
			<-ctx.Done()
			stopped := time.Now()
			r := await(t, done)
			if el := time.Since(stopped); el > time.Second {
				t.Errorf("Run returned %v after ctx was done, want < 1s", el)
			}
			if !errors.Is(r.err, engine.ErrInterrupted) || !errors.Is(r.err, tc.cause) {
				t.Fatalf("Run() = %d, %v; want ErrInterrupted and %v", r.status, r.err, tc.cause)
			}
			var trap *engine.TrapError
			if errors.As(r.err, &trap) {
				t.Errorf("interruption reported as a trap: %v", r.err)
			}
		})
	}
}

// TestSocketsExitStatus runs the same modules with wasmtime's WASI and,
// given a socket, with hostwasi: the exit status, or the error for a status
// WASI does not allow, must be the same.
func TestSocketsExitStatus(t *testing.T) {
	e := newEngine(t)
	exit := func(n int) string { return strings.Replace(watExit42, "42", fmt.Sprint(n), 1) }
	for _, tc := range []struct {
		name    string
		wat     string
		opts    engine.RunOptions
		status  int
		wantErr string
	}{
		{"proc_exit", watExit42, engine.RunOptions{}, 42, ""},
		{"proc_exit 0", exit(0), engine.RunOptions{}, 0, ""},
		{"proc_exit 125", exit(125), engine.RunOptions{}, 125, ""},
		{"return", watReturn, engine.RunOptions{}, 0, ""},
		{"reactor", watReactor, engine.RunOptions{Entrypoint: "run"}, 5, ""},
		{"command ignores _initialize", watCommandWithInitialize, engine.RunOptions{}, 3, ""},
		{"proc_exit 126", exit(126), engine.RunOptions{}, 0, "outside of [0..126)"},
		{"proc_exit -1", exit(-1), engine.RunOptions{}, 0, "outside of [0..126)"},
	} {
		m := compileWAT(t, e, tc.wat)
		for _, withSocket := range []bool{false, true} {
			name := tc.name + "/wasmtime WASI"
			opts := tc.opts
			if withSocket {
				name = tc.name + "/hostwasi"
				sock, _ := listenSocket(t, "web")
				opts.Sockets = []engine.Socket{sock}
			}
			t.Run(name, func(t *testing.T) {
				status, err := m.Run(context.Background(), opts)
				if tc.wantErr == "" {
					if err != nil || status != tc.status {
						t.Fatalf("Run() = %d, %v; want %d, nil", status, err, tc.status)
					}
					return
				}
				var trap *engine.TrapError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &trap) {
					t.Fatalf("Run() = %d, %v; want an error (not a trap) containing %q", status, err, tc.wantErr)
				}
			})
		}
	}
}

// watAdvise exits with what fd_advise answers for stdout. wasmtime's WASI
// implements fd_advise and answers EBADF (8) for a descriptor that is not a
// file; hostwasi does not implement it and answers ENOSYS (52). The status
// tells which WASI the run had.
// watFdstat exits with the filetype fd_fdstat_get gives descriptor 3 (a
// socket with hostwasi, which wasmtime's WASI cannot hold) or its errno.
const watFdstat = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $e i32)
    (local.set $e (call $fdstat (i32.const 3) (i32.const 64)))
    (if (local.get $e) (then (call $exit (local.get $e))))
    (call $exit (i32.load8_u (i32.const 64)))))`

// TestSocketsChooseWASI checks that only a run with sockets leaves
// wasmtime's WASI.
func TestSocketsChooseWASI(t *testing.T) {
	m := compileWAT(t, newEngine(t), watFdstat)
	status, err := m.Run(context.Background(), engine.RunOptions{})
	if err != nil || status != 8 {
		t.Errorf("without sockets: fd_fdstat_get(3) answered %d (err %v), want 8 (EBADF) from wasmtime's WASI", status, err)
	}
	sock, _ := listenSocket(t, "web")
	status, err = m.Run(context.Background(), engine.RunOptions{Sockets: []engine.Socket{sock}})
	if err != nil || status != 6 {
		t.Errorf("with a socket: fd_fdstat_get(3) answered %d (err %v), want 6 (socket_stream) from hostwasi", status, err)
	}
}

// TestSocketsBadOptions checks that a run with sockets validates its
// options as a run without them does, and names a bad socket.
func TestSocketsBadOptions(t *testing.T) {
	m := compileWAT(t, newEngine(t), watExit42)
	sock, _ := listenSocket(t, "web")
	notSocket, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer notSocket.Close()
	for _, tc := range []struct {
		name string
		opts engine.RunOptions
		want string
	}{
		{"arg NUL", engine.RunOptions{Args: []string{"prog", "a\x00b"}, Sockets: []engine.Socket{sock}}, "argument 1 contains a NUL byte"},
		{"env NUL", engine.RunOptions{Env: []string{"A=b\x00c"}, Sockets: []engine.Socket{sock}}, `"A" contains a NUL byte`},
		{"env without =", engine.RunOptions{Env: []string{"NOVALUE"}, Sockets: []engine.Socket{sock}}, `"NOVALUE" is not KEY=value`},
		{"neither File nor Acceptor", engine.RunOptions{Sockets: []engine.Socket{{Name: "empty"}}}, `socket "empty": neither a File nor an Acceptor`},
		{"not a socket", engine.RunOptions{Sockets: []engine.Socket{{Name: "null", File: notSocket}}}, `socket "null": /dev/null is not a socket`},
		{"name with :", engine.RunOptions{Sockets: []engine.Socket{{Name: "a:b", File: sock.File}}}, `socket "a:b"`},
		{"missing preopen", engine.RunOptions{Preopens: []engine.Preopen{{HostPath: "/nonexistent", GuestPath: "/data"}}, Sockets: []engine.Socket{sock}}, `preopen "/nonexistent"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := m.Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run() = %d, %v; want an error containing %q", status, err, tc.want)
			}
		})
	}
}

// watPrestat exits with what fd_prestat_get answers for descriptor FD.
const watPrestat = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (call $prestat (i32.const FD) (i32.const 0)))))`

// TestSocketsPrestat checks the fd_prestat_get rule: a descriptor that is
// open but not a preopen answers EBADF (8) in both WASIs, a socket too, so
// that wasi-libc's preopen probe ends there instead of exiting.
func TestSocketsPrestat(t *testing.T) {
	e := newEngine(t)
	sock, _ := listenSocket(t, "web")
	for _, tc := range []struct {
		name string
		fd   int
		opts engine.RunOptions
	}{
		{"stdout, wasmtime WASI", 1, engine.RunOptions{}},
		{"stdout, hostwasi", 1, engine.RunOptions{Sockets: []engine.Socket{dupSocket(t, sock)}}},
		{"the socket, hostwasi", 3, engine.RunOptions{Sockets: []engine.Socket{dupSocket(t, sock)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileWAT(t, e, strings.Replace(watPrestat, "FD", fmt.Sprint(tc.fd), 1))
			if status, err := m.Run(context.Background(), tc.opts); err != nil || status != 8 {
				t.Errorf("fd_prestat_get(%d) = %d (err %v), want 8 (EBADF)", tc.fd, status, err)
			}
		})
	}
}
