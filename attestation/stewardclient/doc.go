// Package stewardclient talks to a steward, the attestation service that
// verifies a Keep's evidence and vouches for it with a signed token or an
// X.509 certificate, and holds the types of its wire protocol. The server is
// package steward; this package does not import the verifier nor a TEE's
// device client (it talks no hardware), so a Keep links it to get its
// certificate. It does link the evidence format (package attestation), and
// with it the report parsers (the abi packages) of go-sev-guest and
// go-tdx-guest.
//
// # Wire protocol, version 1
//
// Every endpoint is under the steward's base URL (http or https). Request
// bodies are bounded: evidence by attestation.MaxEvidenceSize, a CSR by
// attestation.MaxCSRSize; a larger body is answered 413.
//
//	POST /v1/challenge
//	    (no body)
//	    200 application/json
//	    {"nonce":"<standard base64 of 32 bytes>","expires_at":"<RFC 3339>"}
//
// A nonce is single-use and expires at expires_at (the steward's nonce_ttl,
// 5 minutes by default). The Keep binds it into its evidence
// (inputs.nonce, hence REPORT_DATA). The nonce is opaque to the Keep; the
// steward's holds its expiry, random bytes and a MAC, so that issuing one
// keeps nothing.
//
//	POST /v1/attest
//	    Content-Type: application/vnd.enarx.evidence.v1+json
//	    body: the evidence (attestation.Evidence JSON, format v1)
//	    200 application/eat+jwt
//	    body: a compact JWS (an Entity Attestation Token, RFC 9711, as a JWT)
//
// The token's protected header has alg "ES256", typ "eat+jwt" and kid, the
// key's RFC 7638 thumbprint, naming a key of GET /v1/jwks. Its claims:
//
//	iss          the steward's name (its configured name, or its URL)
//	iat nbf exp  NumericDates; exp = iat + the steward's token_ttl (1 hour by default)
//	jti          a random identifier
//	eat_profile  "tag:enarx.dev,2026:keep/v1" (EATProfile)
//	eat_nonce    base64url (unpadded) of the evidence's nonce; absent without one
//	enarx        the verified attestation.Assertions, as a JSON object
//	cnf          {"jwk": <the Keep's public key, as a JWK>} (RFC 7800)
//
// A relying party checks the token with VerifyToken against the steward's
// JWKS, then trusts cnf.jwk as the key of a Keep with these assertions.
//
//	POST /v1/csr
//	    Content-Type: application/pkcs10
//	    body: a DER PKCS#10 request made by attestation.NewCSR (evidence in extension 1.3.6.1.4.1.58270.2.1)
//	    200 application/pem-certificate-chain
//	    body: PEM certificates, the Keep's leaf then the steward's CA
//
// The leaf certifies the CSR's key, carries the verified assertions in the
// non-critical extension 1.3.6.1.4.1.58270.2.2 (attestation.CertificateAssertions
// reads it) and is valid for client and server authentication. It names the
// Keep by its assertions, not by a DNS name: a relying party verifies the
// chain to the steward's CA and then reads the assertions.
//
//	GET /v1/ca      200 application/pem-certificate-chain: the steward's CA certificate
//	GET /v1/jwks    200 application/jwk-set+json: {"keys":[<token key, public, with kid>]}
//	GET /healthz    200 text/plain: ok
//
// For /v1/attest and /v1/csr the steward requires, unless configured
// otherwise (require_nonce = false), that the evidence's nonce is one it
// issued, has not expired and was not used before; evidence that verifies
// uses the nonce up.
//
// # Errors
//
// Any other answer is an error, with a JSON body
//
//	{"error":"<message>","check":"<name of the failed check>"}
//
// where check is present when verification rejected the evidence. Statuses:
// 400 malformed input (not JSON, not evidence, a CSR whose signature does not
// verify), 403 evidence rejected (check says why: "nonce" for a missing,
// unknown, expired or reused nonce, otherwise the verifier's check), 404
// unknown path, 405 wrong method, 413 body too large, 415 wrong
// Content-Type, 500 steward failure, 503 too many used nonces not yet
// expired (max_nonces). The
// client returns these as *RejectedError.
package stewardclient
