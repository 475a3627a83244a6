package steward

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// DefaultMaxNonces bounds the used nonces a steward remembers until they
// expire (about 100 bytes each).
const DefaultMaxNonces = 100_000

// Nonce errors. Each is a rejection of check CheckNonce.
var (
	ErrNonceMissing  = errors.New("evidence carries no nonce: get one from POST " + stewardclient.PathChallenge + " and bind it into the evidence")
	ErrNonceUnknown  = errors.New("nonce was not issued by this steward")
	ErrNonceUsed     = errors.New("nonce was already used")
	ErrNonceExpired  = errors.New("nonce expired")
	ErrTooManyNonces = errors.New("too many nonces used and not yet expired")
)

// A nonce is its expiry time (8 bytes, Unix nanoseconds), 8 random bytes
// and a MAC of those 16 with the store's key (16 bytes): the steward keeps
// nothing per challenge, so no number of challenges can exhaust it, and
// it still tells its own nonces, before their expiry, from others.
const (
	nonceExpiryEnd = 8
	nonceRandomEnd = 16
)

// nonceStore issues nonces that expire after ttl and accepts each once. It
// remembers used nonces only, until they expire, at most max of them.
type nonceStore struct {
	ttl time.Duration
	max int
	key []byte

	mu   sync.Mutex
	used map[string]time.Time // used nonce → its expiry
}

func newNonceStore(ttl time.Duration, max int) *nonceStore {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("steward: random nonce key: %v", err)) // crypto/rand does not fail on Linux
	}
	return &nonceStore{ttl: ttl, max: max, key: key, used: make(map[string]time.Time)}
}

// mac is the MAC of a nonce's first 16 bytes.
func (s *nonceStore) mac(head []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(head)
	return m.Sum(nil)[:stewardclient.NonceSize-nonceRandomEnd]
}

// issue returns a fresh nonce valid until the returned time. It keeps
// nothing.
func (s *nonceStore) issue(now time.Time) ([]byte, time.Time, error) {
	expires := now.Add(s.ttl)
	nonce := make([]byte, stewardclient.NonceSize)
	binary.BigEndian.PutUint64(nonce[:nonceExpiryEnd], uint64(expires.UnixNano()))
	if _, err := rand.Read(nonce[nonceExpiryEnd:nonceRandomEnd]); err != nil {
		return nil, time.Time{}, fmt.Errorf("random nonce: %w", err)
	}
	copy(nonce[nonceRandomEnd:], s.mac(nonce[:nonceRandomEnd]))
	return nonce, time.Unix(0, expires.UnixNano()), nil
}

// known says whether nonce is one this store issued (expired or not).
func (s *nonceStore) known(nonce []byte) bool {
	return len(nonce) == stewardclient.NonceSize && hmac.Equal(nonce[nonceRandomEnd:], s.mac(nonce[:nonceRandomEnd]))
}

// check says whether nonce is one this store issued, unexpired at now and
// not used yet. It does not use it (see use).
func (s *nonceStore) check(nonce []byte, now time.Time) error {
	if !s.known(nonce) {
		return ErrNonceUnknown
	}
	expires := time.Unix(0, int64(binary.BigEndian.Uint64(nonce[:nonceExpiryEnd])))
	if !now.Before(expires) {
		return fmt.Errorf("%w at %s", ErrNonceExpired, expires.UTC().Format(time.RFC3339))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, used := s.used[string(nonce)]; used {
		return ErrNonceUsed
	}
	return nil
}

// use marks nonce, which check accepted, used: only the first caller
// succeeds. The store remembers it until it expires.
func (s *nonceStore) use(nonce []byte, now time.Time) error {
	expires := time.Unix(0, int64(binary.BigEndian.Uint64(nonce[:nonceExpiryEnd])))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, used := s.used[string(nonce)]; used {
		return ErrNonceUsed
	}
	if len(s.used) >= s.max {
		for n, exp := range s.used {
			if !now.Before(exp) {
				delete(s.used, n)
			}
		}
		if len(s.used) >= s.max {
			return fmt.Errorf("%w (%d): try again in a minute", ErrTooManyNonces, s.max)
		}
	}
	s.used[string(nonce)] = expires
	return nil
}
