package shim

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/enarx/containerd-shim-enarx/shim/launcher"
	"github.com/enarx/containerd-shim-enarx/version"
)

// testServerState is the state of a server listening, through a real ttrpc
// server serving its claims, at the socket of group in dir; it records
// what it was told.
type testServerState struct {
	*serverState
	spares, stops int
	claims        []launcher.Claim
	titles        []string
}

func newTestServerState(t *testing.T, dir, group string) *testServerState {
	t.Helper()
	const grpc = "/run/containerd/containerd.sock"
	socket := launcher.SocketPath(launcher.SocketAddress(dir, grpc, "default", group))
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	s, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServerState{}
	exe, _ := os.Executable()
	ts.serverState = newServerState(launcher.Flags{Namespace: "default", Address: grpc, Socket: socket}, exe)
	ts.onSpare = func() { ts.spares++ }
	ts.onClaim = func(c launcher.Claim) { ts.claims = append(ts.claims, c) }
	ts.stop = func() { ts.stops++ }
	ts.title = func(args []string) error { ts.titles = append(ts.titles, strings.Join(args, " ")); return nil }
	registerSpare(s, ts.serverState)
	go s.Serve(context.Background(), l)
	t.Cleanup(func() { s.Close() })
	return ts
}

// socketDir is a directory for sockets, whose paths must be short.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spare")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (ts *testServerState) claimFor(dir, group string) launcher.Claim {
	exe, _ := os.Executable()
	return launcher.Claim{ID: group, Bundle: dir, Namespace: ts.ns, Address: ts.address,
		Socket: launcher.SocketPath(launcher.SocketAddress(dir, ts.address, ts.ns, group)), Server: exe, Revision: version.Revision}
}

// TestSpareServer: a server with no task left becomes the spare when there
// is none, else stops; the spare is claimed for a group, moving its socket
// there, by a claim of its daemon, namespace and build only; an unclaimed
// spare leaves its path.
func TestSpareServer(t *testing.T) {
	dir := socketDir(t)
	a := newTestServerState(t, dir, "a")
	b := newTestServerState(t, dir, "b")
	spare := a.sparePath

	a.retire()
	if !a.isSpare() || a.spares != 1 || a.stops != 0 {
		t.Fatalf("first server to retire: spare %v, %d spares, %d stops; want the spare", a.isSpare(), a.spares, a.stops)
	}
	if _, err := os.Stat(a.socket); err != nil || a.socket != spare {
		t.Fatalf("the spare listens at %q (%v), want %q", a.socket, err, spare)
	}
	if want := a.server + " -address " + a.address + " -socket " + spare + " spare"; len(a.titles) != 1 || a.titles[0] != want {
		t.Errorf("the spare's command lines %q, want %q", a.titles, want)
	}
	if _, err := os.Stat(launcher.SocketPath(launcher.SocketAddress(dir, a.address, "default", "a"))); !os.IsNotExist(err) {
		t.Errorf("the group's socket is left after its server retired: %v", err)
	}
	b.retire()
	if b.isSpare() || b.stops != 1 || b.socket != "" {
		t.Errorf("second server to retire: spare %v, %d stops, socket %q; want it stopped, its socket gone", b.isSpare(), b.stops, b.socket)
	}
	a.retire() // a second Shutdown changes nothing
	if !a.isSpare() || a.spares != 1 {
		t.Errorf("the spare retired again: %d spares", a.spares)
	}

	for _, c := range []struct {
		name   string
		change func(*launcher.Claim)
		want   string
	}{
		{"another namespace", func(c *launcher.Claim) { c.Namespace = "other" }, "namespace"},
		{"another daemon", func(c *launcher.Claim) { c.Address = "/run/other.sock" }, "namespace"},
		{"a relative bundle", func(c *launcher.Claim) { c.Bundle = "bundle" }, "absolute bundle"},
		{"a socket elsewhere", func(c *launcher.Claim) { c.Socket = "/tmp/x" }, "socket beside"},
		{"the spare's own path", func(c *launcher.Claim) { c.Socket = spare }, "socket beside"},
	} {
		claim := a.claimFor(dir, "c")
		c.change(&claim)
		err := launcher.ClaimSpare(spare, claim, time.Second)
		if err == nil || !strings.Contains(err.Error(), c.want) || !a.isSpare() {
			t.Errorf("claim with %s: %v (spare %v), want a refusal naming %q", c.name, err, a.isSpare(), c.want)
		}
	}

	claim := a.claimFor(dir, "c")
	if err := launcher.ClaimSpare(spare, claim, time.Second); err != nil {
		t.Fatalf("claim: %v", err)
	}
	if a.isSpare() || len(a.claims) != 1 || a.claims[0] != claim || a.socket != claim.Socket {
		t.Fatalf("after the claim: spare %v, claims %+v, socket %q", a.isSpare(), a.claims, a.socket)
	}
	if want := a.server + " -namespace default -id c -address " + a.address + " -socket " + claim.Socket + " serve"; a.titles[len(a.titles)-1] != want {
		t.Errorf("the claimed server's command line %q, want %q", a.titles[len(a.titles)-1], want)
	}
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Errorf("the spare's path is left after the claim: %v", err)
	}
	if err := launcher.ClaimSpare(claim.Socket, claim, time.Second); err == nil {
		t.Error("a claimed server accepted a claim")
	}
	if a.leave(true) {
		t.Error("a claimed server left as if the spare")
	}

	// Back to spare; an unclaimed spare leaves, and its path with it.
	a.retire()
	if !a.isSpare() || !a.leave(true) {
		t.Fatal("the spare did not leave")
	}
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Errorf("the spare's path is left after it left: %v", err)
	}
}

// TestSpareOfAnotherBuild: a spare of another build, claimed, stops, and
// its path goes with it, so the next start starts a server of its own.
func TestSpareOfAnotherBuild(t *testing.T) {
	dir := socketDir(t)
	a := newTestServerState(t, dir, "a")
	a.retire()
	claim := a.claimFor(dir, "c")
	claim.Revision = "another"
	err := launcher.ClaimSpare(a.sparePath, claim, time.Second)
	if err == nil || !strings.Contains(err.Error(), "revision") {
		t.Errorf("claim of another build: %v", err)
	}
	if a.stops != 1 || a.socket != "" {
		t.Errorf("the spare of another build: %d stops, socket %q; want it stopped", a.stops, a.socket)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.Base(a.sparePath))); !os.IsNotExist(err) {
		t.Errorf("its path is left: %v", err)
	}
}

// TestWatchDaemon: the watch ends when the daemon's connection does.
func TestWatchDaemon(t *testing.T) {
	path := filepath.Join(socketDir(t), "ttrpc")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	gone, stop := watchDaemon("unix://" + path)
	defer stop()
	c := <-accepted
	select {
	case <-gone:
		t.Fatal("gone while the daemon is there")
	case <-time.After(50 * time.Millisecond):
	}
	c.Close()
	l.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("not gone after the daemon's connection ended")
	}
	if gone, _ := watchDaemon("unix://" + filepath.Join(socketDir(t), "none")); gone != nil {
		select {
		case <-gone:
		default:
			t.Error("a daemon that cannot be reached is not gone")
		}
	}
}

// TestSpareNeedsItsCommandLine: a server that cannot change its command
// line, which names the container it served, does not become the spare.
func TestSpareNeedsItsCommandLine(t *testing.T) {
	a := newTestServerState(t, socketDir(t), "a")
	a.title = func([]string) error { return errors.New("EPERM") }
	a.retire()
	if a.isSpare() || a.stops != 1 || a.socket != "" {
		t.Errorf("without a new command line: spare %v, %d stops, socket %q; want it stopped", a.isSpare(), a.stops, a.socket)
	}
}

// TestSpareAfterAKilledOne: the socket of a spare that was killed, which
// nobody answers on, does not keep the next server from being the spare.
func TestSpareAfterAKilledOne(t *testing.T) {
	dir := socketDir(t)
	a := newTestServerState(t, dir, "a")
	dead, err := net.Listen("unix", a.sparePath)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	dead.Close() // the socket file stays, as a killed process's does
	a.retire()
	if !a.isSpare() || a.stops != 0 {
		t.Fatalf("after a dead spare: spare %v, %d stops; want the spare", a.isSpare(), a.stops)
	}
	if !launcher.Serving(a.sparePath, time.Second) {
		t.Error("nothing answers at the spare's path")
	}
	// A live spare keeps its place.
	b := newTestServerState(t, dir, "b")
	b.retire()
	if b.isSpare() || b.stops != 1 || !a.isSpare() {
		t.Errorf("with a live spare: the second server spare %v, %d stops; the first spare %v", b.isSpare(), b.stops, a.isSpare())
	}
}
