package stewardclient

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// TokenLeeway is the clock skew VerifyToken tolerates on exp, nbf and iat.
const TokenLeeway = time.Minute

// ErrInvalidToken: a token failed VerifyToken.
var ErrInvalidToken = errors.New("invalid steward token")

// Claims are the claims of a steward token (see the package documentation).
// Its JSON encoding is the token's claims set.
type Claims struct {
	// Issuer (iss) names the steward.
	Issuer string
	// ID (jti) identifies the token.
	ID string
	// IssuedAt (iat), NotBefore (nbf) and Expiry (exp), whole seconds.
	IssuedAt, NotBefore, Expiry time.Time
	// EATProfile (eat_profile) is EATProfile.
	EATProfile string
	// EATNonce (eat_nonce) is the evidence's nonce; nil without one.
	EATNonce []byte
	// Assertions (enarx) are what the steward verified.
	Assertions attestation.Assertions
	// KeepKey (cnf.jwk) is the Keep's public key, the key the assertions
	// are about.
	KeepKey *jose.JSONWebKey
}

// claimsJSON is the encoding of Claims.
type claimsJSON struct {
	jwt.Claims
	EATProfile string                 `json:"eat_profile"`
	EATNonce   string                 `json:"eat_nonce,omitempty"`
	Enarx      attestation.Assertions `json:"enarx"`
	Cnf        *confirmation          `json:"cnf,omitempty"`
}

// confirmation is RFC 7800's cnf claim.
type confirmation struct {
	JWK *jose.JSONWebKey `json:"jwk"`
}

func numericDate(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t)
}

func dateTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time().UTC()
}

// MarshalJSON encodes c as a token's claims set.
func (c *Claims) MarshalJSON() ([]byte, error) {
	j := claimsJSON{
		Claims: jwt.Claims{
			Issuer:    c.Issuer,
			ID:        c.ID,
			IssuedAt:  numericDate(c.IssuedAt),
			NotBefore: numericDate(c.NotBefore),
			Expiry:    numericDate(c.Expiry),
		},
		EATProfile: c.EATProfile,
		Enarx:      c.Assertions,
	}
	if len(c.EATNonce) != 0 {
		j.EATNonce = base64.RawURLEncoding.EncodeToString(c.EATNonce)
	}
	if c.KeepKey != nil {
		j.Cnf = &confirmation{JWK: c.KeepKey}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes a token's claims set.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var j claimsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var nonce []byte
	if j.EATNonce != "" {
		var err error
		if nonce, err = base64.RawURLEncoding.DecodeString(j.EATNonce); err != nil {
			return fmt.Errorf("claim eat_nonce is not unpadded base64url: %w", err)
		}
	}
	*c = Claims{
		Issuer:     j.Issuer,
		ID:         j.ID,
		IssuedAt:   dateTime(j.IssuedAt),
		NotBefore:  dateTime(j.NotBefore),
		Expiry:     dateTime(j.Expiry),
		EATProfile: j.EATProfile,
		EATNonce:   nonce,
		Assertions: j.Enarx,
	}
	if j.Cnf != nil {
		c.KeepKey = j.Cnf.JWK
	}
	return nil
}

// VerifyToken checks a steward token (compact JWS) with the steward's keys
// (GET /v1/jwks) at time now: algorithm ES256 only, typ eat+jwt, the key
// its kid names, exp, nbf and iat within TokenLeeway, the profile, and that
// cnf.jwk and eat_nonce agree with the assertions. It returns the claims.
// Checking what the assertions say (the workload, the runtime version, the
// nonce the caller sent) is the caller's job.
func VerifyToken(token string, keys *jose.JSONWebKeySet, now time.Time) (*Claims, error) {
	c, err := verifyToken(token, keys, now)
	if err != nil {
		return nil, fmt.Errorf("stewardclient: %w: %w", ErrInvalidToken, err)
	}
	return c, nil
}

func verifyToken(token string, keys *jose.JSONWebKeySet, now time.Time) (*Claims, error) {
	if keys == nil {
		return nil, errors.New("no steward keys")
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("not a compact JWS signed with ES256: %w", err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%d signatures, want 1", len(tok.Headers))
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != TokenType {
		return nil, fmt.Errorf("header typ %q, want %q", typ, TokenType)
	}
	if h.KeyID == "" {
		return nil, errors.New("header has no kid")
	}
	found := keys.Key(h.KeyID)
	if len(found) != 1 {
		return nil, fmt.Errorf("kid %q names %d keys of the steward's key set, want 1", h.KeyID, len(found))
	}
	if found[0].Algorithm != "" && found[0].Algorithm != string(jose.ES256) {
		return nil, fmt.Errorf("key %q is for algorithm %q, not ES256", h.KeyID, found[0].Algorithm)
	}
	var pub *ecdsa.PublicKey
	switch k := found[0].Key.(type) {
	case *ecdsa.PublicKey:
		pub = k
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("key %q is not an ECDSA P-256 key", h.KeyID)
	}
	var c Claims
	if err := tok.Claims(pub, &c); err != nil {
		return nil, err
	}
	if c.Expiry.IsZero() || c.IssuedAt.IsZero() {
		return nil, errors.New("token lacks exp or iat")
	}
	if !now.Before(c.Expiry.Add(TokenLeeway)) {
		return nil, fmt.Errorf("token expired at %s (now %s)", c.Expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(TokenLeeway).Before(c.NotBefore) {
		return nil, fmt.Errorf("token is not valid before %s (now %s)", c.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Add(TokenLeeway).Before(c.IssuedAt) {
		return nil, fmt.Errorf("token issued in the future, at %s (now %s)", c.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if c.EATProfile != EATProfile {
		return nil, fmt.Errorf("eat_profile %q, want %q", c.EATProfile, EATProfile)
	}
	if c.KeepKey == nil || !c.KeepKey.IsPublic() {
		return nil, errors.New("cnf.jwk is missing or not a public key")
	}
	der, err := x509.MarshalPKIXPublicKey(c.KeepKey.Key)
	if err != nil {
		return nil, fmt.Errorf("cnf.jwk: %w", err)
	}
	if !bytes.Equal(der, c.Assertions.KeepPublicKey) {
		return nil, errors.New("cnf.jwk is not the assertions' keep_public_key")
	}
	if !bytes.Equal(c.EATNonce, c.Assertions.Nonce) {
		return nil, errors.New("eat_nonce is not the assertions' nonce")
	}
	return &c, nil
}
