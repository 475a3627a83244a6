package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Event topics, as containerd's own shims publish them.
const (
	TopicTaskCreate = "/tasks/create"
	TopicTaskStart  = "/tasks/start"
	TopicTaskExit   = "/tasks/exit"
	TopicTaskDelete = "/tasks/delete"
	TopicTaskOOM    = "/tasks/oom"
)

const (
	// ttrpcNamespaceKey carries the containerd namespace in ttrpc metadata.
	ttrpcNamespaceKey = "containerd-namespace-ttrpc"
	eventQueueSize    = 1024
	// publishRetryWindow is how long an event is retried while containerd
	// cannot be reached. containerd may be restarted while Keeps run (systemd
	// restarts a crashed containerd after 5 s): an exit in the meantime is
	// delivered once it is back, rather than dropped. Events queue behind it
	// in order meanwhile.
	publishRetryWindow = time.Minute
	// publishBackoff is the first pause between attempts; it doubles up to
	// publishBackoffMax, so that an event reaches a containerd that is back
	// within a second.
	publishBackoff    = 100 * time.Millisecond
	publishBackoffMax = time.Second
	// publishAttempts bounds the attempts when containerd answers with an
	// error that is not about the connection.
	publishAttempts = 5
)

type envelope struct {
	ns    string
	topic string
	event proto.Message
	at    time.Time
}

// publisher forwards events to containerd's ttrpc Events service in the
// order they were published, without making the task API wait for it. It
// redials after containerd restarts.
type publisher struct {
	address string
	queue   chan envelope
	closed  chan struct{}
	once    sync.Once
	// queueMu orders Publish's sends before Close's close of queue:
	// a goroutine of a task (its attestation's announcement, an exit)
	// may publish after the shim began to shut down, and a send on the
	// closed queue would panic the shim. shut is set, under it, once
	// queue is closed.
	queueMu sync.RWMutex
	shut    bool
	// retryWindow and backoffMax are publishRetryWindow and
	// publishBackoffMax (tests shorten them).
	retryWindow, backoffMax time.Duration

	mu     sync.Mutex
	client *ttrpc.Client
}

func newPublisher(ttrpcAddress string) *publisher {
	p := &publisher{
		address:     strings.TrimPrefix(ttrpcAddress, "unix://"),
		queue:       make(chan envelope, eventQueueSize),
		closed:      make(chan struct{}),
		retryWindow: publishRetryWindow,
		backoffMax:  publishBackoffMax,
	}
	go p.run()
	return p
}

// Publish queues an event for namespace ns. After Close, it drops the
// event.
func (p *publisher) Publish(ctx context.Context, ns, topic string, event proto.Message) {
	p.queueMu.RLock()
	defer p.queueMu.RUnlock()
	if p.shut {
		log.G(ctx).WithField("topic", topic).Warn("event published after the shim shut down: dropped")
		return
	}
	select {
	case p.queue <- envelope{ns: ns, topic: topic, event: event, at: time.Now()}:
	default:
		log.G(ctx).WithField("topic", topic).Error("event queue full: dropping event")
	}
}

// Close delivers what is queued, waiting at most until ctx is done.
func (p *publisher) Close(ctx context.Context) {
	p.once.Do(func() {
		p.queueMu.Lock()
		defer p.queueMu.Unlock()
		p.shut = true
		close(p.queue)
	})
	select {
	case <-p.closed:
	case <-ctx.Done():
		log.G(ctx).Warn("events not delivered before shutdown")
	}
}

func (p *publisher) run() {
	defer close(p.closed)
	for e := range p.queue {
		if err := p.forward(e); err != nil {
			log.L.WithError(err).WithField("topic", e.topic).Error("publish event")
		}
	}
	p.mu.Lock()
	if p.client != nil {
		p.client.Close()
	}
	p.mu.Unlock()
}

func (p *publisher) forward(e envelope) error {
	payload, err := proto.Marshal(e.event)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", e.topic, err)
	}
	req := &eventsapi.ForwardRequest{Envelope: &types.Envelope{
		Timestamp: timestamppb.New(e.at),
		Namespace: e.ns,
		Topic:     e.topic,
		// containerd resolves the bare message name, not a type.googleapis.com URL.
		Event: &anypb.Any{TypeUrl: string(proto.MessageName(e.event)), Value: payload},
	}}
	// Connection errors (containerd is down or restarting) are retried
	// until the window closes; an error containerd answers with, a few times.
	deadline := time.Now().Add(p.retryWindow)
	backoff := publishBackoff
	for attempt := 1; ; attempt++ {
		client, err := p.connect()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{ttrpcNamespaceKey: []string{e.ns}})
			_, err = eventsapi.NewTTRPCEventsClient(client).Forward(ctx, req)
			cancel()
			if err == nil {
				return nil
			}
			if errors.Is(err, ttrpc.ErrClosed) || isConnError(err) {
				p.reset(client)
			} else if attempt >= publishAttempts {
				return err
			}
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("gave up after %d attempts in %v: %w", attempt, p.retryWindow, err)
		}
		if attempt == 1 {
			log.L.WithError(err).WithField("topic", e.topic).Warn("publish event: retrying")
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, p.backoffMax)
	}
}

func (p *publisher) connect() (*ttrpc.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	if p.address == "" {
		return nil, errors.New("no containerd ttrpc address (TTRPC_ADDRESS) to publish events to")
	}
	conn, err := net.DialTimeout("unix", p.address, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial containerd ttrpc %s: %w", p.address, err)
	}
	p.client = ttrpc.NewClient(conn)
	return p.client, nil
}

func (p *publisher) reset(c *ttrpc.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == c {
		p.client.Close()
		p.client = nil
	}
}

func isConnError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || strings.Contains(err.Error(), "closed")
}
