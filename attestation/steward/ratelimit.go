package steward

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultClientRate is client_rate's default: evidence verifications per
// second per client.
const DefaultClientRate = 20

// maxClients bounds the clients a clientLimiter tracks; beyond it, those
// idle for a while are forgotten (a forgotten client starts with a full
// burst again).
const maxClients = 10_000

// clientLimiter limits each client (remote IP address) to a rate of
// requests, with a burst of twice that.
type clientLimiter struct {
	rate rate.Limit
	now  func() time.Time

	mu      sync.Mutex
	clients map[string]*clientState
}

type clientState struct {
	limiter *rate.Limiter
	seen    time.Time
}

func newClientLimiter(perSecond float64, now func() time.Time) *clientLimiter {
	return &clientLimiter{rate: rate.Limit(perSecond), now: now, clients: map[string]*clientState{}}
}

// allow says whether r's client may go on now.
func (l *clientLimiter) allow(r *http.Request) bool {
	if l == nil || l.rate == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[host]
	if c == nil {
		if len(l.clients) >= maxClients {
			for h, old := range l.clients {
				if now.Sub(old.seen) > time.Minute {
					delete(l.clients, h)
				}
			}
		}
		c = &clientState{limiter: rate.NewLimiter(l.rate, max(1, int(2*float64(l.rate))))}
		if len(l.clients) < maxClients {
			l.clients[host] = c
		}
	}
	c.seen = now
	return c.limiter.AllowN(now, 1)
}

// limited wraps an endpoint function with l: 429, with Retry-After, for a
// client over its rate.
func (s *Server) limited(l *clientLimiter, f func(*http.Request) (answer, error)) func(*http.Request) (answer, error) {
	return func(r *http.Request) (answer, error) {
		if !l.allow(r) {
			return answer{}, &httpError{status: http.StatusTooManyRequests, msg: "too many evidence verifications from " + r.RemoteAddr + ": at most " +
				strconv.FormatFloat(float64(l.rate), 'g', -1, 64) + " per second; try again in a second", retryAfter: 1}
		}
		return f(r)
	}
}
