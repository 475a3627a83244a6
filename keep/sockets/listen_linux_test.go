package sockets

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

func TestListenTCP(t *testing.T) {
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "127.0.0.1:0"}}, Options{})
	so := socket(t, s, "web")
	if so.File == nil || so.Acceptor != nil {
		t.Fatalf("tcp listen socket = %+v, want a File", so)
	}
	if v, err := unix.GetsockoptInt(int(so.File.Fd()), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		t.Errorf("SO_ACCEPTCONN = %d, %v: the File is not listening", v, err)
	}
	addr := s.Addr("web").(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) || addr.Port == 0 {
		t.Fatalf("Addr = %v, want 127.0.0.1 and the port the kernel chose", addr)
	}

	// The workload: a listener on a duplicate of the File.
	wl, err := net.FileListener(so.File)
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	go func() {
		c, err := wl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(append([]byte("re:"), buf...))
		}
	}()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "re:ping" {
		t.Errorf("reply = %q, %v; want re:ping", got, err)
	}
}

func TestListenAllAddressesDualStack(t *testing.T) {
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "[::]:0"}}, Options{})
	port := s.Addr("web").(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), 5*time.Second)
		if err != nil {
			t.Errorf("[::] listen socket not reachable on %s: %v", host, err)
			continue
		}
		c.Close()
	}
}

// tlsClient dials a TLS listen socket of s.
func tlsClient(t *testing.T, s *Set, name string, cfg *tlssock.Config) (*tls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tlssock.Dial(ctx, "tcp", s.Addr(name).String(), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*tls.Conn), nil
}

func TestListenTLSPostQuantum(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	so := socket(t, s, "web")
	if so.File != nil || so.Acceptor == nil {
		t.Fatalf("tls listen socket = %+v, want an Acceptor", so)
	}

	// Nothing waits yet: not readable, and Accept says EAGAIN.
	if readable(t, so.Acceptor.PollFD()) {
		t.Error("PollFD readable with no connection waiting")
	}
	if f, err := so.Acceptor.Accept(); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("Accept with nothing waiting = %v, %v; want EAGAIN", f, err)
	}

	c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tlssock.ConnectionState(c)
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "1.3" || st.Group != "X25519MLKEM768" || c.ConnectionState().CurveID != tls.X25519MLKEM768 {
		t.Errorf("negotiated TLS %s over %q (CurveID %v), want 1.3 over X25519MLKEM768", st.Version, st.Group, c.ConnectionState().CurveID)
	}
	if st.PeerCertificates[0].Subject.CommonName != "keep" {
		t.Errorf("server certificate %v, want the Keep's", st.PeerCertificates[0].Subject)
	}
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}

	w := acceptWorkload(t, so.Acceptor, 5*time.Second)
	defer w.Close()
	if readable(t, so.Acceptor.PollFD()) {
		t.Error("PollFD still readable after the only connection was accepted")
	}
	w.SetDeadline(time.Now().Add(5 * time.Second))
	req := make([]byte, len("GET / HTTP/1.0\r\n\r\n"))
	if _, err := io.ReadFull(w, req); err != nil || string(req) != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("workload read %q, %v: want the plaintext request", req, err)
	}
	w.Write([]byte("HTTP/1.0 200 OK\r\n\r\nhello"))
	w.Close()
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "HTTP/1.0 200 OK\r\n\r\nhello" {
		t.Errorf("client read %q, %v", resp, err)
	}
}

func TestListenTLSClassicalClient(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	for _, group := range []string{"X25519", "P-256"} {
		c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool, Groups: []string{group}})
		if err != nil {
			t.Fatalf("client offering only %s: %v", group, err)
		}
		st, err := tlssock.ConnectionState(c)
		if err != nil {
			t.Fatal(err)
		}
		if st.Group != group {
			t.Errorf("client offering only %s negotiated %q", group, st.Group)
		}
		c.Write([]byte(group))
		w := acceptWorkload(t, socket(t, s, "web").Acceptor, 5*time.Second)
		buf := make([]byte, len(group))
		w.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(w, buf); err != nil || string(buf) != group {
			t.Errorf("workload read %q, %v", buf, err)
		}
		w.Close()
	}
}

func TestListenTLSUntrustedClientKeepsServing(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	acc := socket(t, s, "web").Acceptor
	for range 3 {
		_, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: testpki.NewCA(t, "other").Pool})
		if err == nil || !strings.Contains(err.Error(), "unknown authority") {
			t.Fatalf("client trusting another CA: %v, want unknown authority", err)
		}
	}
	c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatalf("a trusting client after failed ones: %v", err)
	}
	c.Write([]byte("hi"))
	w := acceptWorkload(t, acc, 5*time.Second)
	defer w.Close()
	buf := make([]byte, 2)
	w.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(w, buf); err != nil || string(buf) != "hi" {
		t.Errorf("workload read %q, %v", buf, err)
	}
	// The failed handshakes queued nothing.
	if f, err := acc.Accept(); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("Accept after the only good connection = %v, %v; want EAGAIN", f, err)
	}
}

func TestListenTLSHalfClose(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	acc := socket(t, s, "web").Acceptor
	cli := &tlssock.Config{RootCAs: ca.Pool}
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) { testHalfClose(t, mode, s, acc, cli) })
	}
}

// testHalfClose checks the half-closes of a connection the workload takes
// in mode (see acceptModes).
func testHalfClose(t *testing.T, mode string, s *Set, acc engine.Acceptor, cli *tlssock.Config) {

	t.Run("client ends its output", func(t *testing.T) {
		c, err := tlsClient(t, s, "web", cli)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("request"))
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		w := acceptAs(t, mode, acc, 5*time.Second)
		defer w.Close()
		w.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(w)
		if err != nil || string(got) != "request" {
			t.Fatalf("workload read %q, %v; want the request, then EOF", got, err)
		}
		// The workload can still answer.
		if _, err := w.Write([]byte("answer")); err != nil {
			t.Fatalf("workload write after the client's close_notify: %v", err)
		}
		w.CloseWrite()
		got, err = io.ReadAll(c)
		if err != nil || string(got) != "answer" {
			t.Errorf("client read %q, %v; want the answer, then EOF", got, err)
		}
	})

	t.Run("workload ends its output", func(t *testing.T) {
		c, err := tlsClient(t, s, "web", cli)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		w := acceptAs(t, mode, acc, 5*time.Second)
		defer w.Close()
		w.SetDeadline(time.Now().Add(5 * time.Second))
		w.Write([]byte("banner"))
		if err := w.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "banner" {
			t.Fatalf("client read %q, %v; want the banner, then EOF (close_notify)", got, err)
		}
		// The client can still send.
		if _, err := c.Write([]byte("more")); err != nil {
			t.Fatalf("client write after the workload's shutdown: %v", err)
		}
		c.CloseWrite()
		got, err = io.ReadAll(w)
		if err != nil || string(got) != "xmore" {
			t.Errorf("workload read %q, %v; want xmore, then EOF", got, err)
		}
	})

	t.Run("workload closes", func(t *testing.T) {
		c, err := tlsClient(t, s, "web", cli)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		w := acceptAs(t, mode, acc, 5*time.Second)
		w.Write([]byte("bye"))
		w.Close()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("client read %q, %v; want bye, then EOF", got, err)
		}
		// The Keep closed the TCP connection too: the client's writes fail
		// once the reset comes back.
		var werr error
		for i := 0; i < 50 && werr == nil; i++ {
			_, werr = c.Write([]byte("anyone?"))
			time.Sleep(10 * time.Millisecond)
		}
		if werr == nil {
			t.Error("client writes still succeed after the workload closed")
		}
	})

	t.Run("client closes", func(t *testing.T) {
		c, err := tlsClient(t, s, "web", cli)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		w := acceptAs(t, mode, acc, 5*time.Second)
		defer w.Close()
		c.NetConn().Close() // gone, without close_notify
		w.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(w)
		if err != nil || string(got) != "x" {
			t.Fatalf("workload read %q, %v; want x, then EOF", got, err)
		}
		var werr error
		for i := 0; i < 50 && werr == nil; i++ {
			_, werr = w.Write([]byte("anyone?"))
			time.Sleep(10 * time.Millisecond)
		}
		if werr == nil {
			t.Error("workload writes still succeed after the client is gone")
		}
	})
}

func TestListenTLSSlowClientDelaysNoOne(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}},
		Options{ServerTLS: keepTLS(t, ca), HandshakeTimeout: 700 * time.Millisecond})
	silent, err := net.Dial("tcp", s.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("handshake behind a silent client took %s", d)
	}
	c.Close()
	// The silent one is dropped after HandshakeTimeout.
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("silent client read %v, want EOF once the handshake timed out", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 4*time.Second {
		t.Errorf("silent client dropped after %s, want about 700ms", d)
	}
}

func TestListenTLSManyConnections(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	acc := socket(t, s, "web").Acceptor
	const n = 64

	// The workload: an echo server.
	stop := make(chan struct{})
	var served sync.WaitGroup
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			w, err := tryAcceptWorkload(acc, 100*time.Millisecond)
			if err != nil {
				continue
			}
			served.Add(1)
			go func() {
				defer served.Done()
				defer w.Close()
				io.Copy(w, w)
				w.CloseWrite()
			}()
		}
	}()
	defer close(stop)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := tlssock.Dial(ctx, "tcp", s.Addr("web").String(), &tlssock.Config{RootCAs: ca.Pool})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := bytes.Repeat([]byte(fmt.Sprintf("client %d;", i)), 1000)
			go func() {
				c.Write(msg)
				c.(*tls.Conn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("client %d: echo of %d bytes = %d bytes, %v", i, len(msg), len(got), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListenTLSBacklogFull(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	const backlog = 2
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca), Backlog: backlog})
	acc := socket(t, s, "web").Acceptor
	var conns []*tls.Conn
	for range backlog + 2 {
		c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The workload accepts nothing yet: the connections beyond the backlog
	// are closed.
	dropped := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue // waiting in the queue
		}
		dropped++
	}
	if dropped != 2 {
		t.Errorf("%d connections dropped, want 2 beyond a backlog of %d", dropped, backlog)
	}
	for i := range backlog {
		w, err := tryAcceptWorkload(acc, time.Second)
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		w.Close()
	}
	if f, err := acc.Accept(); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("Accept beyond the backlog = %v, %v; want EAGAIN", f, err)
	}
}

func TestListenTLSNeedsCertificate(t *testing.T) {
	specs := []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}
	for _, opts := range []Options{{}, {ServerTLS: &tlssock.Config{}}} {
		_, err := Open(context.Background(), specs, opts)
		if err == nil || !strings.Contains(err.Error(), `listen socket "web" (tls, 127.0.0.1:0)`) || !strings.Contains(err.Error(), "Options.ServerTLS") {
			t.Errorf("Open with ServerTLS %+v: %v; want an error naming the socket and ServerTLS", opts.ServerTLS, err)
		}
	}
	_, err := Open(context.Background(), specs, Options{ServerTLS: &tlssock.Config{Groups: []string{"X448"}}})
	if err == nil || !strings.Contains(err.Error(), `unknown group "X448"`) {
		t.Errorf("Open with an unknown group: %v", err)
	}
}

func TestListenAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, prot := range []string{socketspec.TCP, socketspec.TLS} {
		_, err = Open(context.Background(), []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: prot, Addr: held.Addr().String()}},
			Options{ServerTLS: keepTLS(t, testpki.NewCA(t, "ca"))})
		if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), `listen socket "web"`) ||
			!strings.Contains(err.Error(), "address already in use: choose another port in Enarx.toml") {
			t.Errorf("%s listen on a held port: %v", prot, err)
		}
	}
}

func TestOpenClosesWhatItOpenedOnError(t *testing.T) {
	// The first socket opens, the second fails: the first must be closed,
	// so its port is free again.
	s := open(t, []socketspec.Spec{{Name: "probe", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "127.0.0.1:0"}}, Options{})
	port := s.Addr("probe").(*net.TCPAddr).Port
	s.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	_, err := Open(context.Background(), []socketspec.Spec{
		{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: addr},
		{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "127.0.0.1:1"},
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), `connect socket "db"`) {
		t.Fatalf("Open: %v, want the connect error", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port of the failed Open still held: %v", err)
	}
	l.Close()
}

func TestDuplicateNames(t *testing.T) {
	_, err := Open(context.Background(), []socketspec.Spec{
		{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "127.0.0.1:0"},
		{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "127.0.0.1:0"},
	}, Options{})
	if err == nil || !strings.Contains(err.Error(), `two sockets are named "web"`) {
		t.Errorf("Open with a name twice: %v", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) { testCloseEndsEverything(t, mode) })
	}
}

func testCloseEndsEverything(t *testing.T, mode string) {
	ca := testpki.NewCA(t, "steward")
	s, err := Open(context.Background(), []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	if err != nil {
		t.Fatal(err)
	}
	acc := socket(t, s, "web").Acceptor
	addr := s.Addr("web").String()
	active, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	active.Write([]byte("x"))
	w := acceptAs(t, mode, acc, 5*time.Second) // owned by the workload
	defer w.Close()
	queued, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	queued.Write([]byte("y"))
	for !readable(t, acc.PollFD()) {
		time.Sleep(5 * time.Millisecond)
	}
	silent, err := net.Dial("tcp", addr) // in handshake
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for name, c := range map[string]net.Conn{"active": active, "queued": queued, "in handshake": silent} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s connection still open after Close", name)
		}
	}
	if _, err := acc.Accept(); !errors.Is(err, unix.EBADF) {
		t.Errorf("Accept after Close: %v, want EBADF", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepts after Close")
	}
	w.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(w); err != nil {
		t.Errorf("workload's accepted connection: %v, want x then EOF", err)
	}
}

func TestCloseWaitsForItsGoroutines(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	server := tlsServer(t, ca)
	srv := serveOnce(server)
	before := runtime.NumGoroutine()

	s, err := Open(context.Background(), []socketspec.Spec{
		{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"},
		{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: server.Addr().String()},
	}, Options{ServerTLS: keepTLS(t, ca), ClientTLS: &tlssock.Config{RootCAs: ca.Pool}, NetNS: ""})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	w := acceptWorkload(t, socket(t, s, "web").Acceptor, 5*time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	c.Close()
	<-srv
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before Open:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestListenTLSLargeTransferBothWays(t *testing.T) {
	for _, mode := range acceptModes {
		t.Run(mode, func(t *testing.T) { testLargeTransfer(t, mode) })
	}
}

func testLargeTransfer(t *testing.T, mode string) {
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}}, Options{ServerTLS: keepTLS(t, ca)})
	c, err := tlsClient(t, s, "web", &tlssock.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 8<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	w := acceptAs(t, mode, socket(t, s, "web").Acceptor, 5*time.Second)
	defer w.Close()
	go func() {
		io.Copy(w, w) // echo while reading: both directions full at once
		w.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
	}
}
