package stewardclient

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// Client calls a steward. Its methods are safe for concurrent use; each
// call's deadline comes from its context.
type Client struct {
	base *url.URL
	hc   *http.Client
}

// New returns a client of the steward at baseURL, an absolute http or https
// URL (a path prefix is kept), using hc (http.DefaultClient when nil).
func New(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("stewardclient: steward URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("stewardclient: steward URL %q is not an absolute http or https URL (e.g. https://steward.example:3443)", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("stewardclient: steward URL %q must not have user information, a query or a fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, hc: hc}, nil
}

// Challenge asks the steward for a nonce to bind into evidence, and returns
// it with the time it expires.
func (c *Client) Challenge(ctx context.Context) (nonce []byte, expires time.Time, err error) {
	body, _, err := c.do(ctx, http.MethodPost, PathChallenge, "", nil, ContentTypeJSON)
	if err != nil {
		return nil, time.Time{}, err
	}
	var ch Challenge
	if err := json.Unmarshal(body, &ch); err != nil {
		return nil, time.Time{}, fmt.Errorf("stewardclient: challenge answer is not JSON of {nonce, expires_at}: %w", err)
	}
	if len(ch.Nonce) == 0 || len(ch.Nonce) > attestation.MaxNonceSize || ch.ExpiresAt.IsZero() {
		return nil, time.Time{}, fmt.Errorf("stewardclient: challenge answer has a %d-byte nonce and expires_at %q, want 1 to %d bytes and a time", len(ch.Nonce), ch.ExpiresAt, attestation.MaxNonceSize)
	}
	return ch.Nonce, ch.ExpiresAt, nil
}

// Attest sends evidence (attestation.Evidence JSON) and returns the
// steward's token, a compact JWS to check with VerifyToken.
func (c *Client) Attest(ctx context.Context, evidence []byte) (token string, err error) {
	if len(evidence) > attestation.MaxEvidenceSize {
		return "", fmt.Errorf("stewardclient: evidence is %d bytes, more than %d: %w", len(evidence), attestation.MaxEvidenceSize, attestation.ErrTooLarge)
	}
	body, ctype, err := c.do(ctx, http.MethodPost, PathAttest, ContentTypeEvidence, evidence, ContentTypeToken)
	if err != nil {
		return "", err
	}
	if ctype != ContentTypeToken {
		return "", fmt.Errorf("stewardclient: attest answer is %q, want %q", ctype, ContentTypeToken)
	}
	token = strings.TrimSpace(string(body))
	if token == "" || strings.Count(token, ".") != 2 {
		return "", errors.New("stewardclient: attest answer is not a compact JWS")
	}
	return token, nil
}

// SubmitCSR sends a certificate request made by attestation.NewCSR and
// returns the issued chain: the Keep's certificate, then the steward's CA.
// The chain is not verified here; see attestation.CertificateAssertions.
func (c *Client) SubmitCSR(ctx context.Context, der []byte) ([]*x509.Certificate, error) {
	if len(der) > attestation.MaxCSRSize {
		return nil, fmt.Errorf("stewardclient: CSR is %d bytes, more than %d: %w", len(der), attestation.MaxCSRSize, attestation.ErrTooLarge)
	}
	body, _, err := c.do(ctx, http.MethodPost, PathCSR, ContentTypeCSR, der, ContentTypePEMChain)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificatesPEM(body)
	if err != nil {
		return nil, fmt.Errorf("stewardclient: CSR answer: %w", err)
	}
	return certs, nil
}

// CA returns the steward's CA certificate. Fetching it over an
// unauthenticated channel does not make it trustworthy: pin it out of band.
func (c *Client) CA(ctx context.Context) (*x509.Certificate, error) {
	body, _, err := c.do(ctx, http.MethodGet, PathCA, "", nil, ContentTypePEMChain)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertificatesPEM(body)
	if err != nil {
		return nil, fmt.Errorf("stewardclient: CA answer: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("stewardclient: CA answer has %d certificates, want 1", len(certs))
	}
	return certs[0], nil
}

// JWKS returns the steward's token keys, for VerifyToken.
func (c *Client) JWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	body, _, err := c.do(ctx, http.MethodGet, PathJWKS, "", nil, ContentTypeJWKS)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("stewardclient: JWKS answer is not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("stewardclient: JWKS answer has no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("stewardclient: JWKS answer key %q is not a public key", k.KeyID)
		}
	}
	return &set, nil
}

// ParseCertificatesPEM parses a PEM certificate chain (the body of /v1/csr
// and /v1/ca answers); anything but CERTIFICATE blocks is an error.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, errors.New("data that is not PEM after the certificates")
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// do sends one request and returns the body and media type of a 200
// answer; any other status is a *RejectedError.
func (c *Client) do(ctx context.Context, method, path, ctype string, body []byte, accept string) ([]byte, string, error) {
	for attempt := 1; ; attempt++ {
		data, mediaType, retryAfter, err := c.once(ctx, method, path, ctype, body, accept)
		// A steward that limits this client's rate (429) says when to come
		// back: a few times, within ctx.
		if retryAfter <= 0 || attempt == maxAttempts {
			return data, mediaType, err
		}
		select {
		case <-ctx.Done():
			return data, mediaType, err
		case <-time.After(retryAfter):
		}
	}
}

// maxAttempts bounds the requests do makes for one call.
const maxAttempts = 5

// once makes one request; retryAfter is the wait a 429 answer asks for
// (at most 5 s), 0 otherwise.
func (c *Client) once(ctx context.Context, method, path, ctype string, body []byte, accept string) (_ []byte, _ string, retryAfter time.Duration, _ error) {
	u := *c.base
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, "", 0, fmt.Errorf("stewardclient: %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", accept)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", 0, fmt.Errorf("stewardclient: %s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, "", 0, fmt.Errorf("stewardclient: %s %s: reading the answer: %w", method, u.Redacted(), err)
	}
	if len(data) > MaxResponseSize {
		return nil, "", 0, fmt.Errorf("stewardclient: %s %s: answer is larger than %d bytes", method, u.Redacted(), MaxResponseSize)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusTooManyRequests {
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n >= 0 && n <= 5 {
				retryAfter = time.Duration(max(n, 1)) * time.Second
			}
		}
		return nil, "", retryAfter, rejected(resp.StatusCode, mediaType, data)
	}
	return data, mediaType, 0, nil
}

// rejected turns an error answer into a *RejectedError.
func rejected(status int, mediaType string, data []byte) error {
	e := &RejectedError{Status: status}
	var b ErrorBody
	if mediaType == ContentTypeJSON && json.Unmarshal(data, &b) == nil && b.Error != "" {
		e.Message, e.Check = b.Error, b.Check
		return e
	}
	// Not a steward's answer (a proxy's, perhaps): quote a little of it.
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if !utf8.ValidString(text) {
		text = fmt.Sprintf("%d bytes of %s", len(data), mediaType)
	}
	if text == "" {
		text = "no explanation"
	}
	e.Message = text
	return e
}
