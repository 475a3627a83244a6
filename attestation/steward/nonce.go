package steward

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// DefaultMaxNonces bounds the nonces a steward remembers (outstanding ones and
// recently used or expired ones, kept to tell "already used" and "expired"
// from "not issued"): about 100 bytes each.
const DefaultMaxNonces = 100_000

// Nonce errors. Each is a rejection of check CheckNonce.
var (
	ErrNonceMissing  = errors.New("evidence carries no nonce: get one from POST " + stewardclient.PathChallenge + " and bind it into the evidence")
	ErrNonceUnknown  = errors.New("nonce was not issued by this steward")
	ErrNonceUsed     = errors.New("nonce was already used")
	ErrNonceExpired  = errors.New("nonce expired")
	ErrTooManyNonces = errors.New("too many outstanding nonces")
)

// nonceEntry is one issued nonce. Entries stay after use or expiry until
// forget, so that a replay is told apart from a forgery.
type nonceEntry struct {
	expires time.Time
	forget  time.Time
	used    bool
}

// nonceStore issues single-use nonces that expire after ttl. It holds at most
// max entries; expired ones are dropped lazily, when a nonce is issued.
type nonceStore struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*nonceEntry
	order   []string // issue order; forget times are non-decreasing along it
}

func newNonceStore(ttl time.Duration, max int) *nonceStore {
	return &nonceStore{ttl: ttl, max: max, entries: make(map[string]*nonceEntry)}
}

// issue returns a fresh nonce valid until the returned time.
func (s *nonceStore) issue(now time.Time) ([]byte, time.Time, error) {
	nonce := make([]byte, stewardclient.NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, time.Time{}, fmt.Errorf("random nonce: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	if len(s.entries) >= s.max {
		return nil, time.Time{}, fmt.Errorf("%w (%d): try again in a minute", ErrTooManyNonces, s.max)
	}
	e := &nonceEntry{expires: now.Add(s.ttl), forget: now.Add(2 * s.ttl)}
	if n := len(s.order); n > 0 {
		// A clock that went back must not let an entry outlive the
		// ones issued before it in order (purge stops at the first).
		if last := s.entries[s.order[n-1]]; last != nil && e.forget.Before(last.forget) {
			e.forget = last.forget
		}
	}
	s.entries[string(nonce)] = e
	s.order = append(s.order, string(nonce))
	return nonce, e.expires, nil
}

// consume marks nonce used and says whether it was valid at now.
func (s *nonceStore) consume(nonce []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[string(nonce)]
	switch {
	case e == nil:
		return ErrNonceUnknown
	case e.used:
		return ErrNonceUsed
	}
	e.used = true
	if !now.Before(e.expires) {
		return fmt.Errorf("%w at %s", ErrNonceExpired, e.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// known says whether nonce was issued and is still remembered.
func (s *nonceStore) known(nonce []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[string(nonce)] != nil
}

// purge drops the entries whose forget time has passed. Callers hold mu.
func (s *nonceStore) purge(now time.Time) {
	i := 0
	for ; i < len(s.order); i++ {
		e := s.entries[s.order[i]]
		if now.Before(e.forget) {
			break
		}
		delete(s.entries, s.order[i])
	}
	if i == 0 {
		return
	}
	s.order = s.order[i:]
	// Reallocate now and then so that the backing array does not grow
	// without bound as the slice's start moves forward.
	if cap(s.order) > 2*len(s.order)+1024 {
		s.order = append([]string(nil), s.order...)
	}
}
