package stewardclient

import (
	"fmt"
	"net/http"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// Paths of the steward's endpoints, relative to its base URL.
const (
	PathChallenge = "/v1/challenge"
	PathAttest    = "/v1/attest"
	PathCSR       = "/v1/csr"
	PathCA        = "/v1/ca"
	PathJWKS      = "/v1/jwks"
	PathHealth    = "/healthz"
)

// Media types of the wire protocol.
const (
	ContentTypeEvidence  = "application/vnd.enarx.evidence.v1+json"
	ContentTypeToken     = "application/eat+jwt"
	ContentTypeCSR       = "application/pkcs10"
	ContentTypePEMChain  = "application/pem-certificate-chain"
	ContentTypeJWKS      = "application/jwk-set+json"
	ContentTypeJSON      = "application/json"
	ContentTypeTextPlain = "text/plain; charset=utf-8"
)

// Token constants.
const (
	// EATProfile is the eat_profile claim of a steward token.
	EATProfile = "tag:enarx.dev,2026:keep/v1"
	// TokenType is the typ header of a steward token.
	TokenType = "eat+jwt"
	// NonceSize is the size of a steward's challenge nonce, in bytes.
	NonceSize = 32
)

// MaxResponseSize bounds what the client reads of any response.
const MaxResponseSize = 1<<20 + attestation.MaxEvidenceSize

// Challenge is the body of a POST /v1/challenge answer.
type Challenge struct {
	// Nonce is NonceSize random bytes (standard base64 in JSON).
	Nonce []byte `json:"nonce"`
	// ExpiresAt is when the steward stops accepting the nonce.
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	// Error says what was wrong.
	Error string `json:"error"`
	// Check names the verification check that failed, if any.
	Check string `json:"check,omitempty"`
}

// RejectedError is a steward's error answer.
type RejectedError struct {
	// Status is the HTTP status code.
	Status int
	// Check names the verification check that failed ("nonce", or one of
	// the verifier's); empty when the error is not a verification failure.
	Check string
	// Message is the steward's explanation.
	Message string
}

func (e *RejectedError) Error() string {
	check := ""
	if e.Check != "" {
		check = fmt.Sprintf(" (check %s)", e.Check)
	}
	return fmt.Sprintf("stewardclient: steward answered %d %s%s: %s", e.Status, http.StatusText(e.Status), check, e.Message)
}
