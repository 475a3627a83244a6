package sockets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// hostListener listens on 127.0.0.1:0 in the test's namespace and reports
// whether anyone connected.
func hostListener(t *testing.T) (port int, connected <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan struct{}, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			ch <- struct{}{}
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, ch
}

// echoOnFile plays a workload serving one connection on a listen socket's
// File: it answers "re:" and what it read.
func echoOnFile(t *testing.T, f *os.File) {
	t.Helper()
	wl, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wl.Close() })
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
}

// ask dials addr from the current thread's namespace, sends "ping" and
// returns the answer.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestNewNetNSIsolates(t *testing.T) {
	requireNetNS(t)
	port, hostHit := hostListener(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	// The port the host's listener holds is free in the new namespace.
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: addr}}, Options{NetNS: NewNetNS})
	if s.NetNS() == nil {
		t.Fatal("NetNS() = nil for a new namespace")
	}
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if inode(t, s.NetNS()) == inode(t, self) {
		t.Fatal("the new namespace is the test's own")
	}
	echoOnFile(t, socket(t, s, "web").File)

	// From the host's namespace, the address is the host's listener.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case <-hostHit:
	case <-time.After(5 * time.Second):
		t.Fatal("a dial from the host's namespace did not reach the host's listener")
	}

	// From inside, it is the Keep's socket, and loopback is up.
	inNetNS(t, s.NetNS(), func() {
		got, err := ask(addr)
		if err != nil || got != "re:ping" {
			t.Errorf("from inside the namespace: %q, %v; want the workload's re:ping", got, err)
		}
	})
	select {
	case <-hostHit:
		t.Error("a dial from inside the namespace reached the host")
	default:
	}
}

func TestNewNetNSTLSListen(t *testing.T) {
	requireNetNS(t)
	ca := testpki.NewCA(t, "steward")
	s := open(t, []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "[::]:8443"}}, Options{NetNS: NewNetNS, ServerTLS: keepTLS(t, ca)})
	acc := socket(t, s, "web").Acceptor
	for _, host := range []string{"127.0.0.1", "::1"} {
		inNetNS(t, s.NetNS(), func() {
			// A single literal address: the dial creates its socket on
			// this thread.
			raw, err := net.DialTimeout("tcp", net.JoinHostPort(host, "8443"), 5*time.Second)
			if err != nil {
				t.Errorf("%s from inside: %v", host, err)
				return
			}
			c, err := tlssock.Client(raw, &tlssock.Config{RootCAs: ca.Pool, ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(host)); err != nil {
				t.Errorf("%s: %v", host, err)
				return
			}
			w := acceptWorkload(t, acc, 5*time.Second)
			defer w.Close()
			buf := make([]byte, len(host))
			w.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(w, buf); err != nil || string(buf) != host {
				t.Errorf("workload read %q, %v", buf, err)
			}
		})
	}
}

func TestNewNetNSCannotReachHost(t *testing.T) {
	requireNetNS(t)
	port, hostHit := hostListener(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, prot := range []string{socketspec.TCP, socketspec.TLS} {
		_, err := Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: prot, Addr: addr}}, Options{NetNS: NewNetNS})
		if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), `connect socket "db"`) ||
			!strings.Contains(err.Error(), "new network namespace, which has only loopback") {
			t.Errorf("%s connect from a new namespace to the host's loopback: %v", prot, err)
		}
	}
	// Other addresses have no route at all.
	_, err := Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "192.0.2.1:80"}}, Options{NetNS: NewNetNS})
	if !errors.Is(err, unix.ENETUNREACH) || !strings.Contains(err.Error(), "no route to it from the Keep's new network namespace") {
		t.Errorf("connect from a new namespace to 192.0.2.1: %v", err)
	}
	select {
	case <-hostHit:
		t.Error("a connect socket in a new namespace reached the host's listener")
	default:
	}
}

func TestNewNetNSResolvesInside(t *testing.T) {
	requireNetNS(t)
	// The name servers of /etc/resolv.conf are not reachable from a new
	// namespace unless they are on its loopback: a query sent from inside
	// fails there (and none leaves the machine).
	_, err := Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "db.example:5432"}}, Options{NetNS: NewNetNS})
	if err == nil || !strings.Contains(err.Error(), `resolving "db.example"`) || !strings.Contains(err.Error(), `connect socket "db"`) {
		t.Fatalf("Open of an unresolvable name: %v", err)
	}
	if strings.Contains(err.Error(), "no such host") {
		t.Errorf("the name was looked up outside the new namespace: %v", err)
	}
	// /etc/hosts is read as usual.
	_, err = Open(context.Background(), []socketspec.Spec{{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "localhost:1"}}, Options{NetNS: NewNetNS})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("localhost:1 from a new namespace: %v, want connection refused", err)
	}
}

func TestNetNSPath(t *testing.T) {
	requireNetNS(t)
	path := namedNetNS(t)
	port, hostHit := hostListener(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	// A server inside that namespace for a connect socket.
	target, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var inner net.Listener
	inNetNS(t, target, func() {
		inner, err = net.Listen("tcp", "127.0.0.1:0")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	srv := serveOnce(inner)

	s := open(t, []socketspec.Spec{
		{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: addr},
		{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: inner.Addr().String()},
	}, Options{NetNS: path})
	if inode(t, s.NetNS()) != inode(t, target) {
		t.Errorf("Set's namespace is not %s", path)
	}
	echoOnFile(t, socket(t, s, "web").File)
	inNetNS(t, target, func() {
		got, err := ask(addr)
		if err != nil || got != "re:ping" {
			t.Errorf("listen socket from inside %s: %q, %v", path, got, err)
		}
	})
	select {
	case <-hostHit:
		t.Error("the listen socket landed in the host's namespace")
	default:
	}
	if got := talk(t, socket(t, s, "db")); got != "answer" {
		t.Errorf("connect socket to a server inside %s: %q", path, got)
	}
	<-srv
}

func TestNetNSPathErrors(t *testing.T) {
	requireNetNS(t)
	spec := []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: "127.0.0.1:0"}}
	_, err := Open(context.Background(), spec, Options{NetNS: "/var/run/netns/no-such-namespace"})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/var/run/netns/no-such-namespace") {
		t.Errorf("missing namespace: %v", err)
	}
	_, err = Open(context.Background(), spec, Options{NetNS: "/proc/self/ns/uts"})
	if err == nil || !strings.Contains(err.Error(), `"/proc/self/ns/uts" is not a network namespace`) {
		t.Errorf("a UTS namespace as NetNS: %v", err)
	}
}
