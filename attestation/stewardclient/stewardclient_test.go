package stewardclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

func TestNew(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:3443", "https://steward.example", "https://steward.example/prefix/"} {
		if _, err := New(ok, nil); err != nil {
			t.Errorf("New(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "steward.example:3443", "/v1", "ftp://steward.example", "https://", "http://u:p@steward.example", "http://steward.example/?q=1", "http://[::1"} {
		if _, err := New(bad, nil); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

// tokenKit signs test tokens.
type tokenKit struct {
	key  *ecdsa.PrivateKey
	keep *ecdsa.PrivateKey
	kid  string
	set  *jose.JSONWebKeySet
	now  time.Time
}

func newTokenKit(t *testing.T) *tokenKit {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keep, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := &tokenKit{key: key, keep: keep, kid: "k1", now: time.Now()}
	k.set = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}}}
	return k
}

func (k *tokenKit) claims() *Claims {
	der, _ := x509.MarshalPKIXPublicKey(&k.keep.PublicKey)
	nonce := []byte("0123456789abcdef0123456789abcdef")
	return &Claims{
		Issuer: "https://steward.example", ID: "id", IssuedAt: k.now, NotBefore: k.now, Expiry: k.now.Add(time.Hour),
		EATProfile: EATProfile, EATNonce: nonce,
		Assertions: attestation.Assertions{TEE: attestation.TEESEVSNP, KeepPublicKey: der, Nonce: nonce,
			RuntimeDigest: "sha256:00", WorkloadDigest: "sha256:01"},
		KeepKey: &jose.JSONWebKey{Key: &k.keep.PublicKey},
	}
}

func (k *tokenKit) sign(t *testing.T, c any, alg jose.SignatureAlgorithm, key any, typ string) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyToken(t *testing.T) {
	k := newTokenKit(t)
	good := k.sign(t, k.claims(), jose.ES256, k.key, TokenType)
	c, err := VerifyToken(good, k.set, k.now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://steward.example" || string(c.EATNonce) != "0123456789abcdef0123456789abcdef" || c.Assertions.TEE != attestation.TEESEVSNP {
		t.Errorf("claims %+v", c)
	}
	// eat_nonce is unpadded base64url on the wire.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(good, ".")[1])
	var raw map[string]any
	_ = json.Unmarshal(payload, &raw)
	if raw["eat_nonce"] != base64.RawURLEncoding.EncodeToString(c.EATNonce) || raw["cnf"] == nil || raw["enarx"] == nil {
		t.Errorf("claims on the wire: %s", payload)
	}
	if _, err := VerifyToken(good, k.set, k.now.Add(-30*time.Second)); err != nil {
		t.Errorf("within the leeway before nbf: %v", err)
	}

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	mod := func(f func(*Claims)) *Claims { c := k.claims(); f(c); return c }
	for _, tc := range []struct {
		name  string
		token string
		keys  *jose.JSONWebKeySet
		now   time.Time
	}{
		{"expired", good, k.set, k.now.Add(time.Hour + 2*TokenLeeway)},
		{"not yet valid", good, k.set, k.now.Add(-2 * TokenLeeway)},
		{"no keys", good, nil, k.now},
		{"another key", good, &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &other.PublicKey, KeyID: k.kid}}}, k.now},
		{"unknown kid", good, &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: "k2"}}}, k.now},
		{"tampered payload", tamper(good), k.set, k.now},
		{"ES384", k.sign(t, k.claims(), jose.ES384, p384, TokenType), &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p384.PublicKey, KeyID: k.kid}}}, k.now},
		{"HS256 with the public key's bytes", k.sign(t, k.claims(), jose.HS256, []byte("0123456789abcdef0123456789abcdef"), TokenType), k.set, k.now},
		{"alg none", noneToken(t, k.claims()), k.set, k.now},
		{"wrong typ", k.sign(t, k.claims(), jose.ES256, k.key, "JWT"), k.set, k.now},
		{"wrong profile", k.sign(t, mod(func(c *Claims) { c.EATProfile = "other" }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"no exp", k.sign(t, mod(func(c *Claims) { c.Expiry = time.Time{} }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"issued in the future", k.sign(t, mod(func(c *Claims) { c.IssuedAt = k.now.Add(time.Hour) }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"cnf of another key", k.sign(t, mod(func(c *Claims) { c.KeepKey = &jose.JSONWebKey{Key: &other.PublicKey} }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"no cnf", k.sign(t, mod(func(c *Claims) { c.KeepKey = nil }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"eat_nonce not the assertions'", k.sign(t, mod(func(c *Claims) { c.EATNonce = []byte("x") }), jose.ES256, k.key, TokenType), k.set, k.now},
		{"garbage", "a.b.c", k.set, k.now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := VerifyToken(tc.token, tc.keys, tc.now); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("VerifyToken: %v, want ErrInvalidToken", err)
			}
		})
	}
}

// tamper changes the token's payload, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"sev-snp"`, `"tdx"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// noneToken is an unsigned token (alg none) with the right typ and kid.
func noneToken(t *testing.T, c *Claims) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": TokenType, "kid": "k1"})
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func TestClientErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/attest", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != ContentTypeEvidence {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		w.Header().Set("Content-Type", ContentTypeJSON)
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":"nonce was already used","check":"nonce"}`)
	})
	mux.HandleFunc("/v1/challenge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>proxy error</html>")
	})
	mux.HandleFunc("/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentTypeJWKS)
		_, _ = w.Write([]byte(`{"keys":[`))
		_, _ = w.Write([]byte(strings.Repeat(" ", MaxResponseSize)))
	})
	mux.HandleFunc("/v1/ca", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentTypePEMChain)
		_, _ = io.WriteString(w, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(srv.URL+"/", srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = c.Attest(ctx, []byte("{}"))
	var re *RejectedError
	if !errors.As(err, &re) || re.Status != 403 || re.Check != "nonce" || re.Message != "nonce was already used" {
		t.Fatalf("Attest: %v", err)
	}
	for _, want := range []string{"403", "nonce", "nonce was already used"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	_, _, err = c.Challenge(ctx)
	if !errors.As(err, &re) || re.Status != 502 || re.Check != "" || !strings.Contains(re.Message, "proxy error") {
		t.Fatalf("Challenge: %v", err)
	}
	if _, err := c.JWKS(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("JWKS of an unbounded answer: %v", err)
	}
	if _, err := c.CA(ctx); err == nil || !strings.Contains(err.Error(), "CERTIFICATE") {
		t.Errorf("CA of a key: %v", err)
	}
	if _, err := c.Attest(ctx, make([]byte, attestation.MaxEvidenceSize+1)); !errors.Is(err, attestation.ErrTooLarge) {
		t.Errorf("oversized evidence: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.CA(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// The client is linked into the shim: besides what package attestation
// already brings, it may add only the standard library and go-jose (not
// the verifier, nor the TEE libraries' verification code).
func TestImports(t *testing.T) {
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Skipf("go list: %v", err)
		}
		return strings.Fields(string(out))
	}
	base := map[string]bool{}
	for _, d := range deps("github.com/enarx/containerd-shim-enarx/attestation") {
		base[d] = true
	}
	for _, d := range deps(".") {
		if base[d] || !strings.Contains(strings.Split(d, "/")[0], ".") ||
			strings.HasPrefix(d, "github.com/go-jose/go-jose/v4") || d == "github.com/enarx/containerd-shim-enarx/attestation/stewardclient" {
			continue
		}
		t.Errorf("stewardclient depends on %s", d)
	}
}

// TestRetryAfter: a steward that limits the client's rate (429 with
// Retry-After) is asked again after that wait, a few times at most.
func TestRetryAfter(t *testing.T) {
	var calls int
	limit := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls <= limit {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", ContentTypeJSON)
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"too many"}`))
			return
		}
		w.Header().Set("Content-Type", ContentTypeJSON)
		_, _ = w.Write([]byte(`{"nonce":"AAECAw==","expires_at":"2030-01-01T00:00:00Z"}`))
	}))
	defer srv.Close()
	c, err := New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, _, err := c.Challenge(context.Background()); err != nil || calls != 2 || time.Since(began) < time.Second {
		t.Errorf("after one 429: %v, %d calls in %v; want success on the second, a second later", err, calls, time.Since(began))
	}
	calls, limit = 0, 100
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var re *RejectedError
	if _, _, err := c.Challenge(ctx); !errors.As(err, &re) || re.Status != http.StatusTooManyRequests || calls != 2 {
		t.Errorf("limited past the deadline: %v after %d calls, want the 429 once the context ends", err, calls)
	}
}
