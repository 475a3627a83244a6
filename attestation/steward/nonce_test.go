package steward

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A nonce is used once, even when many requests race to use it.
func TestNonceSingleUseConcurrent(t *testing.T) {
	s := newNonceStore(time.Minute, 10)
	now := time.Now()
	nonce, _, err := s.issue(now)
	if err != nil {
		t.Fatal(err)
	}
	var ok, used atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.check(nonce, now)
			if err == nil {
				err = s.use(nonce, now)
			}
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrNonceUsed):
				used.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || used.Load() != 31 {
		t.Fatalf("%d accepted, %d refused as used", ok.Load(), used.Load())
	}
}

// TestNonceStateless: issuing keeps nothing; a nonce is checked by its MAC
// and its expiry; a tampered, foreign or expired one is refused; the used
// ones are remembered until they expire, at most max of them.
func TestNonceStateless(t *testing.T) {
	s := newNonceStore(time.Minute, 2)
	now := time.Now()
	for range 1000 {
		if _, _, err := s.issue(now); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.used) != 0 {
		t.Fatalf("issuing remembered %d nonces", len(s.used))
	}
	a, expires, _ := s.issue(now)
	if !expires.Equal(time.Unix(0, now.Add(time.Minute).UnixNano())) {
		t.Errorf("expires %v", expires)
	}
	if err := s.check(a, now.Add(time.Minute)); !errors.Is(err, ErrNonceExpired) {
		t.Errorf("expired nonce: %v", err)
	}
	for i, edit := range []func(n []byte){
		func(n []byte) { n[0] ^= 1 },  // a later expiry
		func(n []byte) { n[10] ^= 1 }, // other random bytes
		func(n []byte) { n[31] ^= 1 }, // another MAC
	} {
		n := append([]byte(nil), a...)
		edit(n)
		if err := s.check(n, now); !errors.Is(err, ErrNonceUnknown) {
			t.Errorf("tampered nonce %d: %v", i, err)
		}
	}
	if err := newNonceStore(time.Minute, 2).check(a, now); !errors.Is(err, ErrNonceUnknown) {
		t.Errorf("another steward's nonce: %v", err)
	}
	b, _, _ := s.issue(now)
	c, _, _ := s.issue(now)
	for _, n := range [][]byte{a, b} {
		if err := s.use(n, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.use(c, now); !errors.Is(err, ErrTooManyNonces) {
		t.Errorf("a third used nonce: %v, want %v", err, ErrTooManyNonces)
	}
	// Once those expire, they are forgotten: room again.
	if err := s.use(c, now.Add(time.Minute)); err != nil {
		t.Errorf("after expiry: %v", err)
	}
	if len(s.used) != 1 {
		t.Errorf("%d used nonces remembered after the others expired, want 1", len(s.used))
	}
}

// TestAnonymousChallengesRefuseNoKeep: a million challenges from anyone
// change nothing the steward keeps, and a Keep then attests as before.
func TestAnonymousChallengesRefuseNoKeep(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	h := f.server.Handler()
	for i := range 1_000_000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/challenge", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("challenge %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	ctx := context.Background()
	nonce, _, err := f.client.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Attest(ctx, newKeep(t).evidenceJSON(t, nil, nonce)); err != nil {
		t.Fatalf("a Keep after a million anonymous challenges: %v", err)
	}
}

// TestClientRate: a client over its rate of verifications is answered 429
// with Retry-After; another client is not held back; a second later the
// first may go on.
func TestClientRate(t *testing.T) {
	f := newFixture(t, fixtureConfig{edit: []Option{WithConfig(func(c *Config) { c.ClientRate = 2 })}})
	h := f.server.Handler()
	post := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/attest", nil)
		r.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for i := range 4 { // the burst: twice the rate
		if rec := post("192.0.2.1:1000"); rec.Code == http.StatusTooManyRequests {
			t.Fatalf("request %d limited: %s", i, rec.Body)
		}
	}
	rec := post("192.0.2.1:1001")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("over the rate: %d, Retry-After %q; want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := post("192.0.2.2:1000"); rec.Code == http.StatusTooManyRequests {
		t.Errorf("another client limited: %s", rec.Body)
	}
	f.clock.Advance(time.Second)
	if rec := post("192.0.2.1:1000"); rec.Code == http.StatusTooManyRequests {
		t.Errorf("a second later: still limited: %s", rec.Body)
	}
}
