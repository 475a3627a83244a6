package sockets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// serverResult is what a test server saw of its one connection.
type serverResult struct {
	state *tlssock.State
	got   []byte
	err   error
}

// serveOnce accepts one connection on l, reads until EOF, then answers
// "answer" and closes. With TLS it reports the negotiated state.
func serveOnce(l net.Listener) <-chan serverResult {
	done := make(chan serverResult, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- serverResult{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var r serverResult
		if _, ok := c.(*tls.Conn); ok {
			if r.state, r.err = tlssock.ConnectionState(c); r.err != nil {
				done <- r
				return
			}
		}
		r.got, r.err = io.ReadAll(c)
		if r.err == nil {
			_, r.err = c.Write([]byte("answer"))
		}
		done <- r
	}()
	return done
}

// talk plays the workload on a connect socket's File: it sends "question",
// shuts down its write side and reads the answer.
func talk(t *testing.T, so engine.Socket) string {
	t.Helper()
	c := fileConn(t, so.File)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("workload read: %v", err)
	}
	return string(got)
}

func TestConnectTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := serveOnce(l)
	s := open(t, []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: l.Addr().String()}}, Options{})
	if got := s.Addr("db").String(); got != l.Addr().String() {
		t.Errorf("Addr = %s, want the server's %s", got, l.Addr())
	}
	so := socket(t, s, "db")
	if so.File == nil {
		t.Fatal("connect socket has no File")
	}
	if peer, err := unix.Getpeername(int(so.File.Fd())); err != nil || tcpAddr(peer).String() != l.Addr().String() {
		t.Errorf("File's peer = %v, %v; want %s", peer, err, l.Addr())
	}
	if got := talk(t, so); got != "answer" {
		t.Errorf("workload got %q", got)
	}
	if r := <-srv; r.err != nil || string(r.got) != "question" {
		t.Errorf("server got %q, %v", r.got, r.err)
	}
}

func TestConnectTCPByName(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := serveOnce(l)
	port := l.Addr().(*net.TCPAddr).Port
	s := open(t, []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: fmt.Sprintf("localhost:%d", port)}}, Options{})
	if got := talk(t, socket(t, s, "db")); got != "answer" {
		t.Errorf("workload got %q", got)
	}
	<-srv
}

// tlsServer listens with a certificate from ca for localhost and
// 127.0.0.1, with the given groups.
func tlsServer(t *testing.T, ca *testpki.CA, groups ...string) net.Listener {
	t.Helper()
	l, err := tlssock.Listen(context.Background(), "tcp", "127.0.0.1:0",
		&tlssock.Config{Certificates: []tls.Certificate{issueLeaf(t, ca, "db")}, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConnectTLS(t *testing.T) {
	ca := testpki.NewCA(t, "db CA")
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			l := tlsServer(t, ca)
			srv := serveOnce(l)
			addr := fmt.Sprintf("%s:%d", host, l.Addr().(*net.TCPAddr).Port)
			s := open(t, []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: addr}}, Options{ClientTLS: &tlssock.Config{RootCAs: ca.Pool}})
			if got := talk(t, socket(t, s, "db")); got != "answer" {
				t.Errorf("workload got %q", got)
			}
			r := <-srv
			if r.err != nil || string(r.got) != "question" {
				t.Fatalf("server got %q, %v: want the plaintext question, then close_notify", r.got, r.err)
			}
			if r.state.Version != "1.3" || r.state.Group != "X25519MLKEM768" {
				t.Errorf("negotiated TLS %s over %q, want 1.3 over X25519MLKEM768", r.state.Version, r.state.Group)
			}
			if host == "localhost" && r.state.ServerName != "localhost" {
				t.Errorf("SNI %q, want the host of addr", r.state.ServerName)
			}
		})
	}
}

func TestConnectTLSClassicalServer(t *testing.T) {
	ca := testpki.NewCA(t, "db CA")
	l := tlsServer(t, ca, "P-256")
	srv := serveOnce(l)
	s := open(t, []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: l.Addr().String()}}, Options{ClientTLS: &tlssock.Config{RootCAs: ca.Pool}})
	talk(t, socket(t, s, "db"))
	if r := <-srv; r.err != nil || r.state.Group != "P-256" {
		t.Errorf("server accepting only P-256: %+v", r)
	}
}

func TestConnectTLSUntrustedServer(t *testing.T) {
	l := tlsServer(t, testpki.NewCA(t, "db CA"))
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tlssock.ConnectionState(c)
			c.Close()
		}
	}()
	spec := socketspec.Spec{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: l.Addr().String()}
	_, err := Open(context.Background(), []socketspec.Spec{spec}, Options{ClientTLS: &tlssock.Config{RootCAs: testpki.NewCA(t, "other CA").Pool}})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("Open against an untrusted server: %v, want x509.UnknownAuthorityError", err)
	}
	for _, want := range []string{`connect socket "db" (tls, ` + spec.Addr + `)`, "TLS handshake", "add its CA to the client TLS configuration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	_, err = Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: "127.0.0.1:" + fmt.Sprint(l.Addr().(*net.TCPAddr).Port)}},
		Options{ClientTLS: &tlssock.Config{RootCAs: testpki.NewCA(t, "db CA").Pool, ServerName: "elsewhere.example"}})
	if err == nil || !strings.Contains(err.Error(), `connect socket "db"`) {
		t.Errorf("Open with a server name the certificate lacks: %v", err)
	}
}

func TestConnectTLSNotTLS(t *testing.T) {
	// A server that accepts and says nothing: the handshake times out.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	start := time.Now()
	_, err = Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: l.Addr().String()}},
		Options{HandshakeTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), `connect socket "db"`) || !strings.Contains(err.Error(), "HandshakeTimeout") {
		t.Errorf("Open against a silent server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open took %s with a HandshakeTimeout of 300ms", d)
	}
}

func TestConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, prot := range []string{socketspec.TCP, socketspec.TLS} {
		_, err := Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: prot, Addr: addr}}, Options{})
		if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), `connect socket "db" (`+prot+`, `+addr+`)`) ||
			!strings.Contains(err.Error(), "nothing listens there") {
			t.Errorf("%s connect to a closed port: %v", prot, err)
		}
	}
}

func TestReleaseFilesLetsTheWorkloadClose(t *testing.T) {
	ca := testpki.NewCA(t, "db CA")
	tl := tlsServer(t, ca)
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	srvTLS, srvTCP := serveOnce(tl), serveOnce(pl)
	s := open(t, []socketspec.Spec{
		{Name: "secure", Kind: socketspec.Connect, Prot: socketspec.TLS, Addr: tl.Addr().String()},
		{Name: "plain", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: pl.Addr().String()},
	}, Options{ClientTLS: &tlssock.Config{RootCAs: ca.Pool}})

	// The engine's duplicates.
	var dups []net.Conn
	for _, so := range s.Sockets() {
		c, err := net.FileConn(so.File)
		if err != nil {
			t.Fatal(err)
		}
		dups = append(dups, c)
	}
	if err := s.ReleaseFiles(); err != nil {
		t.Fatal(err)
	}
	// The workload sends and closes its descriptors, without shutdown:
	// the servers see the end of the stream only because the Set no
	// longer holds the sockets open.
	for _, c := range dups {
		c.Write([]byte("question"))
		c.Close()
	}
	for name, srv := range map[string]<-chan serverResult{"tls": srvTLS, "tcp": srvTCP} {
		select {
		case r := <-srv:
			if string(r.got) != "question" {
				t.Errorf("%s server got %q, %v", name, r.got, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s server saw no end of stream after the workload closed", name)
		}
	}
}
