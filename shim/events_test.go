package shim

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// serveEventsAt serves containerd's Events service on sock, as a containerd
// that has just (re)started; stop ends it as containerd stopping does: its
// socket and every connection closed at once.
func serveEventsAt(t *testing.T, sock string) (es *eventsServer, stop func()) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tl := &trackingListener{Listener: l}
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	es = &eventsServer{notify: make(chan struct{}, 1)}
	eventsapi.RegisterTTRPCEventsService(server, es)
	go func() { _ = server.Serve(context.Background(), tl) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			tl.closeAll()
			server.Close()
		})
	}
	t.Cleanup(stop)
	return es, stop
}

// trackingListener closes the connections it accepted when told to.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

func exitStatusOf(t *testing.T, e receivedEvent) uint32 {
	t.Helper()
	var exit eventstypes.TaskExit
	if err := proto.Unmarshal(e.envelope.GetEvent().GetValue(), &exit); err != nil {
		t.Fatalf("%s: %v", e.envelope.GetTopic(), err)
	}
	return exit.ExitStatus
}

// TestPublisherOutlivesARestart publishes exits while containerd is down (a
// restart): they are delivered, in order, once it is back, and an exit after
// the restart goes to the new daemon over a new connection.
func TestPublisherOutlivesARestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ttrpc.sock")
	before, stop := serveEventsAt(t, sock)
	pub := newPublisher("unix://" + sock)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pub.Close(ctx)
	})
	ctx := context.Background()
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "a", ExitStatus: 1})
	before.wait(t, 1)
	// Let its answer reach the publisher: an event whose answer is lost
	// is sent again (at least once).
	time.Sleep(200 * time.Millisecond)

	// containerd stops; two Keeps exit while it is down, for longer than
	// the attempts a publisher without a window makes (about a second).
	stop()
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "b", ExitStatus: 3})
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "c", ExitStatus: 143})
	time.Sleep(2500 * time.Millisecond)

	after, _ := serveEventsAt(t, sock)
	got := after.wait(t, 2)
	if len(got) != 2 || exitStatusOf(t, got[0]) != 3 || exitStatusOf(t, got[1]) != 143 {
		t.Fatalf("after the restart: %v, want the exits 3 and 143 in order", topics(got))
	}
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "d", ExitStatus: 7})
	if got := after.wait(t, 3); exitStatusOf(t, got[2]) != 7 || got[2].metadataNS != testNS {
		t.Errorf("the exit after the restart: status %d in %q, want 7 in %s", exitStatusOf(t, got[2]), got[2].metadataNS, testNS)
	}
}

// TestPublisherGivesUp drops an event containerd never comes back for, and
// goes on with the next one.
func TestPublisherGivesUp(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ttrpc.sock")
	pub := newPublisher("unix://" + sock)
	pub.retryWindow, pub.backoffMax = 300*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pub.Close(ctx)
	})
	ctx := context.Background()
	began := time.Now()
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "lost", ExitStatus: 1})
	time.Sleep(600 * time.Millisecond)
	es, _ := serveEventsAt(t, sock)
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "next", ExitStatus: 2})
	got := es.wait(t, 1)
	if len(got) != 1 || exitStatusOf(t, got[0]) != 2 {
		t.Errorf("events %v, want only the one published once containerd was there", topics(got))
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
}

// TestPublisherPublishAfterClose publishes while and after the publisher
// closes, as a task's goroutine may (CI once saw a send on the closed queue
// panic the shim's tests): no panic, and nothing published after Close is
// delivered.
func TestPublisherPublishAfterClose(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ttrpc.sock")
	es, _ := serveEventsAt(t, sock)
	pub := newPublisher("unix://" + sock)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				pub.Publish(ctx, testNS, TopicTaskOOM, &eventstypes.TaskOOM{ContainerID: "racing"})
			}
		}()
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pub.Close(closeCtx)
	wg.Wait()
	pub.Publish(ctx, testNS, TopicTaskExit, &eventstypes.TaskExit{ContainerID: "late"})
	pub.Close(closeCtx) // a second Close returns too
	es.mu.Lock()
	defer es.mu.Unlock()
	if len(es.events) > 8*100 {
		t.Errorf("%d events delivered, of 800 published", len(es.events))
	}
	for _, e := range es.events {
		if e.envelope.GetTopic() != TopicTaskOOM {
			t.Errorf("%s delivered after the publisher closed", e.envelope.GetTopic())
		}
	}
}
