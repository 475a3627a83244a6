package steward

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A nonce is accepted once, even when many requests race to use it.
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
			switch err := s.consume(nonce, now); {
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

func TestNonceStoreForgets(t *testing.T) {
	s := newNonceStore(time.Minute, 2)
	now := time.Now()
	a, _, _ := s.issue(now)
	if _, _, err := s.issue(now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.issue(now.Add(time.Second)); !errors.Is(err, ErrTooManyNonces) {
		t.Fatalf("third nonce: %v", err)
	}
	// Expired but remembered: "expired", not "not issued".
	if err := s.consume(a, now.Add(time.Minute)); !errors.Is(err, ErrNonceExpired) {
		t.Fatalf("expired nonce: %v", err)
	}
	// Forgotten after twice the lifetime, making room.
	if _, _, err := s.issue(now.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.consume(a, now.Add(2*time.Minute)); !errors.Is(err, ErrNonceUnknown) {
		t.Fatalf("forgotten nonce: %v", err)
	}
	// A clock that goes back does not make a later nonce be forgotten
	// before an earlier one.
	s = newNonceStore(time.Minute, 10)
	s.issue(now)
	late, _, _ := s.issue(now.Add(-time.Hour))
	s.purge(now.Add(time.Minute))
	if !s.known(late) || len(s.order) != len(s.entries) {
		t.Fatalf("after the clock went back: known %v, %d in order, %d entries", s.known(late), len(s.order), len(s.entries))
	}
}
