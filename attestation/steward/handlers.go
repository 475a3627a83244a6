package steward

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// CheckNonce is the check named in rejections for a missing, unknown,
// expired or reused nonce.
const CheckNonce = "nonce"

// CheckCSRKey is the check named when a CSR's evidence binds another key.
const CheckCSRKey = "csr_key"

// httpError is an error answer.
type httpError struct {
	status int
	check  string
	msg    string
	// retryAfter, when not 0, is the Retry-After header, in seconds.
	retryAfter int
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// Handler returns the steward's HTTP handler (the endpoints of the wire
// protocol, see package stewardclient).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(stewardclient.PathChallenge, s.endpoint(http.MethodPost, s.challenge))
	// Verifying evidence costs; getting a nonce does not (see nonceStore).
	mux.Handle(stewardclient.PathAttest, s.endpoint(http.MethodPost, s.limited(s.clients, s.attest)))
	mux.Handle(stewardclient.PathCSR, s.endpoint(http.MethodPost, s.limited(s.clients, s.csr)))
	mux.Handle(stewardclient.PathCA, s.endpoint(http.MethodGet, s.ca))
	mux.Handle(stewardclient.PathJWKS, s.endpoint(http.MethodGet, s.jwksHandler))
	mux.Handle(stewardclient.PathHealth, s.endpoint(http.MethodGet, health))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, "no endpoint %s: the steward serves %s, %s, %s, %s, %s and %s",
			r.URL.Path, stewardclient.PathChallenge, stewardclient.PathAttest, stewardclient.PathCSR,
			stewardclient.PathCA, stewardclient.PathJWKS, stewardclient.PathHealth))
	})
	return mux
}

// answer is a successful response.
type answer struct {
	contentType string
	body        []byte
}

// endpoint adapts an endpoint function: method check, error encoding.
// GET endpoints also answer HEAD.
func (s *Server) endpoint(method string, f func(*http.Request) (answer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed on %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		a, err := f(r)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				s.log.WithError(err).Errorf("steward: %s %s", r.Method, r.URL.Path)
				he = errorf(http.StatusInternalServerError, "steward failure: %v", err)
			}
			writeError(w, he)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(a.body)
		}
	})
}

func writeError(w http.ResponseWriter, e *httpError) {
	body, _ := json.Marshal(stewardclient.ErrorBody{Error: e.msg, Check: e.check})
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	w.Header().Set("Content-Type", stewardclient.ContentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = w.Write(append(body, '\n'))
}

func health(*http.Request) (answer, error) {
	return answer{stewardclient.ContentTypeTextPlain, []byte("ok\n")}, nil
}

func (s *Server) ca(*http.Request) (answer, error) {
	return answer{stewardclient.ContentTypePEMChain, s.caPEM}, nil
}

func (s *Server) jwksHandler(*http.Request) (answer, error) {
	return answer{stewardclient.ContentTypeJWKS, s.jwksJSON}, nil
}

func (s *Server) challenge(r *http.Request) (answer, error) {
	// The body is ignored; reading a little of it lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	nonce, expires, err := s.nonces.issue(s.now())
	if err != nil {
		return answer{}, err
	}
	body, err := json.Marshal(stewardclient.Challenge{Nonce: nonce, ExpiresAt: expires.UTC()})
	if err != nil {
		return answer{}, err
	}
	return answer{stewardclient.ContentTypeJSON, body}, nil
}

func (s *Server) attest(r *http.Request) (answer, error) {
	body, err := readBody(r, stewardclient.ContentTypeEvidence, attestation.MaxEvidenceSize, "evidence")
	if err != nil {
		return answer{}, err
	}
	ev, err := attestation.ParseEvidence(body)
	if err != nil {
		return answer{}, errorf(http.StatusBadRequest, "%v", err)
	}
	a, err := s.verify(r.Context(), ev)
	if err != nil {
		return answer{}, err
	}
	token, err := s.token(a)
	if err != nil {
		return answer{}, err
	}
	s.log.WithField("tee", a.TEE).WithField("workload", a.WorkloadDigest).WithField("runtime", a.RuntimeVersion).
		Info("steward: issued a token")
	return answer{stewardclient.ContentTypeToken, []byte(token)}, nil
}

func (s *Server) csr(r *http.Request) (answer, error) {
	body, err := readBody(r, stewardclient.ContentTypeCSR, attestation.MaxCSRSize, "CSR")
	if err != nil {
		return answer{}, err
	}
	chain, err := s.issueFromCSR(r.Context(), body)
	if err != nil {
		return answer{}, err
	}
	return answer{stewardclient.ContentTypePEMChain, chain}, nil
}

// issueFromCSR checks a DER CSR and its evidence and returns the PEM chain.
func (s *Server) issueFromCSR(ctx context.Context, der []byte) ([]byte, error) {
	req, ev, err := attestation.ParseCSR(der)
	if errors.Is(err, attestation.ErrKeyMismatch) {
		return nil, &httpError{status: http.StatusForbidden, check: CheckCSRKey, msg: err.Error()}
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	a, err := s.verify(ctx, ev)
	if err != nil {
		return nil, err
	}
	cert, err := s.issueCertificate(req, a)
	if err != nil {
		return nil, err
	}
	s.log.WithField("tee", a.TEE).WithField("workload", a.WorkloadDigest).WithField("runtime", a.RuntimeVersion).
		WithField("serial", cert.SerialNumber.Text(16)).Info("steward: issued a certificate")
	return chainPEM(cert, s.caCert), nil
}

// verify checks the evidence's nonce and then the evidence, and uses the
// nonce once the evidence verified: only evidence the hardware signed can
// use one, and a nonce is used once.
func (s *Server) verify(ctx context.Context, ev *attestation.Evidence) (*attestation.Assertions, error) {
	nonce, err := s.checkNonce(ev.Inputs.Nonce)
	if err != nil {
		s.log.WithField("tee", ev.TEE).WithField("workload", ev.Inputs.WorkloadDigest).Warnf("steward: rejected evidence: %v", err)
		return nil, &httpError{status: http.StatusForbidden, check: CheckNonce, msg: err.Error()}
	}
	a, err := s.verifier.Verify(ctx, ev, nonce)
	if err == nil && nonce != nil {
		if err := s.nonces.use(nonce, s.now()); err != nil {
			s.log.WithField("tee", ev.TEE).WithField("workload", ev.Inputs.WorkloadDigest).Warnf("steward: rejected evidence: %v", err)
			if errors.Is(err, ErrTooManyNonces) {
				return nil, errorf(http.StatusServiceUnavailable, "%v", err)
			}
			return nil, &httpError{status: http.StatusForbidden, check: CheckNonce, msg: err.Error()}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, errorf(http.StatusServiceUnavailable, "verification did not finish: %v", ctx.Err())
		}
		check, rejected := checkOf(err)
		if !rejected {
			return nil, fmt.Errorf("verify: %w", err)
		}
		s.log.WithField("tee", ev.TEE).WithField("workload", ev.Inputs.WorkloadDigest).WithField("check", check).
			Warnf("steward: rejected evidence: %v", err)
		return nil, &httpError{status: http.StatusForbidden, check: check, msg: err.Error()}
	}
	if a == nil {
		return nil, errors.New("verify: no assertions and no error")
	}
	return a, nil
}

// checkNonce checks the evidence's nonce and returns the nonce to verify
// and then use (see verify) with. With require_nonce, the nonce must be
// one this steward issued. Without it, a nonce this steward issued is
// still checked and used, and any other nonce is the caller's own, passed
// through unchecked and not used.
func (s *Server) checkNonce(nonce []byte) ([]byte, error) {
	if len(nonce) == 0 {
		if s.cfg.RequireNonce {
			return nil, ErrNonceMissing
		}
		return nil, nil
	}
	if !s.cfg.RequireNonce && !s.nonces.known(nonce) {
		return nil, nil
	}
	if err := s.nonces.check(nonce, s.now()); err != nil {
		return nil, err
	}
	return nonce, nil
}

// readBody reads a request body of media type want, at most limit bytes.
func readBody(r *http.Request, want string, limit int64, what string) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		got := r.Header.Get("Content-Type")
		if got == "" {
			got = "none"
		}
		return nil, errorf(http.StatusUnsupportedMediaType, "Content-Type %s: send the %s as %s", quoteShort(got), what, want)
	}
	if r.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the %s is %d bytes, more than %d", what, r.ContentLength, limit)
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "reading the %s: %v", what, err)
	}
	if n > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the %s is more than %d bytes", what, limit)
	}
	if n == 0 {
		return nil, errorf(http.StatusBadRequest, "no %s in the request body", what)
	}
	return buf.Bytes(), nil
}

func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// chainPEM encodes certificates as a PEM chain.
func chainPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(pemCertificate(c.Raw))
	}
	return b.Bytes()
}
