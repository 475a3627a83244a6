package steward

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// rejection asserts that err is a *RejectedError of status and check.
func rejection(t *testing.T, err error, status int, check string) *stewardclient.RejectedError {
	t.Helper()
	var re *stewardclient.RejectedError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T), want a *stewardclient.RejectedError", err, err)
	}
	if re.Status != status || re.Check != check {
		t.Fatalf("rejected with status %d check %q (%v), want %d %q", re.Status, re.Check, err, status, check)
	}
	return re
}

func TestChallengeAttest(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ctx := context.Background()
	k := newKeep(t)

	nonce, expires, err := f.client.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nonce) != stewardclient.NonceSize {
		t.Fatalf("nonce of %d bytes", len(nonce))
	}
	if got, want := expires.Sub(f.clock.Now()), 5*time.Minute; got < want-time.Second || got > want+time.Second {
		t.Fatalf("nonce expires in %s, want %s", got, want)
	}
	evidence := k.evidenceJSON(t, nil, nonce)
	token, err := f.client.Attest(ctx, evidence)
	if err != nil {
		t.Fatal(err)
	}

	keys, err := f.client.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Keys) != 1 || keys.Keys[0].KeyID == "" {
		t.Fatalf("JWKS %+v, want one key with a kid", keys)
	}
	claims, err := stewardclient.VerifyToken(token, keys, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := claims.Assertions
	if a.TEE != attestation.TEESEVSNP || a.RuntimeDigest != testRuntimeDigest || a.RuntimeVersion != testRuntimeVersion ||
		a.WorkloadDigest != digestOf("workload") || !bytes.Equal(a.KeepPublicKey, k.pubDER) {
		t.Errorf("assertions %+v", a)
	}
	if !bytes.Equal(claims.EATNonce, nonce) || !bytes.Equal(a.Nonce, nonce) {
		t.Errorf("eat_nonce %x, assertions nonce %x, want %x", claims.EATNonce, a.Nonce, nonce)
	}
	if claims.EATProfile != stewardclient.EATProfile || claims.Issuer != *f.server.issuer.Load() || claims.ID == "" {
		t.Errorf("claims %+v", claims)
	}
	if got := claims.Expiry.Sub(claims.IssuedAt); got != time.Hour {
		t.Errorf("token valid for %s, want 1h", got)
	}
	ev, _ := attestation.ParseEvidence(evidence)
	if a.EvidenceDigest != ev.Digest() {
		t.Errorf("evidence digest %s, want %s", a.EvidenceDigest, ev.Digest())
	}

	// The token does not verify with another steward's keys, nor after it expires.
	other := newFixture(t, fixtureConfig{})
	if _, err := stewardclient.VerifyToken(token, other.server.JWKS(), f.clock.Now()); err == nil {
		t.Error("token verified with another steward's keys")
	}
	if _, err := stewardclient.VerifyToken(token, keys, f.clock.Now().Add(2*time.Hour)); !errors.Is(err, stewardclient.ErrInvalidToken) {
		t.Errorf("expired token: %v", err)
	}

	t.Run("replayed nonce", func(t *testing.T) {
		_, err := f.client.Attest(ctx, evidence)
		re := rejection(t, err, http.StatusForbidden, CheckNonce)
		if re.Message != ErrNonceUsed.Error() {
			t.Errorf("message %q, want %q", re.Message, ErrNonceUsed)
		}
	})
}

func TestNonceRejections(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ctx := context.Background()
	k := newKeep(t)

	t.Run("expired", func(t *testing.T) {
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev := k.evidenceJSON(t, nil, nonce)
		f.clock.Advance(5*time.Minute + time.Second)
		_, err = f.client.Attest(ctx, ev)
		re := rejection(t, err, http.StatusForbidden, CheckNonce)
		if !bytes.HasPrefix([]byte(re.Message), []byte(ErrNonceExpired.Error())) {
			t.Errorf("message %q", re.Message)
		}
		// Expired it stays.
		_, err = f.client.Attest(ctx, ev)
		if re := rejection(t, err, http.StatusForbidden, CheckNonce); !bytes.HasPrefix([]byte(re.Message), []byte(ErrNonceExpired.Error())) {
			t.Errorf("second attempt: %q", re.Message)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		nonce := bytes.Repeat([]byte{7}, stewardclient.NonceSize)
		_, err := f.client.Attest(ctx, k.evidenceJSON(t, nil, nonce))
		if re := rejection(t, err, http.StatusForbidden, CheckNonce); re.Message != ErrNonceUnknown.Error() {
			t.Errorf("message %q", re.Message)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := f.client.Attest(ctx, k.evidenceJSON(t, nil, nil))
		if re := rejection(t, err, http.StatusForbidden, CheckNonce); re.Message != ErrNonceMissing.Error() {
			t.Errorf("message %q", re.Message)
		}
	})
	t.Run("used by verified evidence only", func(t *testing.T) {
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Binding broken: the hardware report is for other inputs.
		ev := k.evidence(t, nil, nonce)
		ev.Inputs.WorkloadDigest = digestOf("another workload")
		rd, _ := ev.Inputs.ReportData()
		ev.ReportData = rd[:]
		b, _ := ev.Marshal()
		_, err = f.client.Attest(ctx, b)
		rejection(t, err, http.StatusForbidden, "binding")
		// Evidence that did not verify used nothing: the Keep's own
		// evidence with that nonce is accepted, once.
		good := k.evidenceJSON(t, nil, nonce)
		if _, err := f.client.Attest(ctx, good); err != nil {
			t.Fatalf("the Keep's evidence after a refused one: %v", err)
		}
		_, err = f.client.Attest(ctx, good)
		if re := rejection(t, err, http.StatusForbidden, CheckNonce); re.Message != ErrNonceUsed.Error() {
			t.Errorf("message %q", re.Message)
		}
	})
}

func TestNonceOptional(t *testing.T) {
	f := newFixture(t, fixtureConfig{edit: []Option{WithConfig(func(c *Config) { c.RequireNonce = false })}})
	ctx := context.Background()
	k := newKeep(t)
	keys := f.server.JWKS()

	token, err := f.client.Attest(ctx, k.evidenceJSON(t, nil, nil))
	if err != nil {
		t.Fatalf("evidence without a nonce, require_nonce = false: %v", err)
	}
	if c, err := stewardclient.VerifyToken(token, keys, f.clock.Now()); err != nil || c.EATNonce != nil {
		t.Fatalf("claims %+v, %v", c, err)
	}
	// A relying party's own nonce passes through.
	own := []byte("relying party nonce")
	token, err = f.client.Attest(ctx, k.evidenceJSON(t, nil, own))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := stewardclient.VerifyToken(token, keys, f.clock.Now()); err != nil || !bytes.Equal(c.EATNonce, own) {
		t.Fatalf("claims %+v, %v", c, err)
	}
	// A nonce this steward issued is still single-use.
	nonce, _, err := f.client.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := k.evidenceJSON(t, nil, nonce)
	if _, err := f.client.Attest(ctx, ev); err != nil {
		t.Fatal(err)
	}
	_, err = f.client.Attest(ctx, ev)
	rejection(t, err, http.StatusForbidden, CheckNonce)
}

func TestNilEvidence(t *testing.T) {
	ctx := context.Background()
	k := newKeep(t)
	t.Run("rejected by default", func(t *testing.T) {
		f := newFixture(t, fixtureConfig{})
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.client.Attest(ctx, k.evidenceJSON(t, attestation.None{}, nonce))
		rejection(t, err, http.StatusForbidden, "tee")
	})
	t.Run("accepted with allow_insecure", func(t *testing.T) {
		f := newFixture(t, fixtureConfig{allowInsecure: true})
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		token, err := f.client.Attest(ctx, k.evidenceJSON(t, attestation.None{}, nonce))
		if err != nil {
			t.Fatal(err)
		}
		c, err := stewardclient.VerifyToken(token, f.server.JWKS(), f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if c.Assertions.TEE != attestation.TEENone || !c.Assertions.Insecure {
			t.Errorf("assertions %+v: want tee none, insecure", c.Assertions)
		}
	})
}

func TestTooManyNonces(t *testing.T) {
	f := newFixture(t, fixtureConfig{edit: []Option{WithConfig(func(c *Config) { c.MaxNonces = 3 })}})
	ctx := context.Background()
	k := newKeep(t)
	attest := func() error {
		nonce, _, err := f.client.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.client.Attest(ctx, k.evidenceJSON(t, nil, nonce))
		return err
	}
	for range 3 {
		if err := attest(); err != nil {
			t.Fatal(err)
		}
	}
	// Challenges cost nothing; a fourth used nonce waits for the first to
	// expire.
	rejection(t, attest(), http.StatusServiceUnavailable, "")
	f.clock.Advance(5*time.Minute + time.Second)
	if err := attest(); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
