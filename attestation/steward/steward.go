// Package steward is the attestation service: it hands out nonces, verifies
// Keeps' evidence with package verify, and vouches for a verified Keep with
// a signed token (an EAT, as a JWT) or an X.509 certificate from its own CA
// carrying the verified assertions. Its wire protocol is described in
// package stewardclient, which holds its types and a client.
//
// A steward keeps its state in a data directory: steward.toml (Config),
// policy.toml (the verification policy), ca.key and ca.crt (the CA that
// issues Keep certificates) and token.key (the key that signs tokens). Open
// creates the missing ones on first start.
package steward

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
	"github.com/go-jose/go-jose/v4"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// Verifier checks evidence. *verify.Verifier is the one Open builds; nonce,
// when not nil, must be the nonce the evidence binds.
type Verifier interface {
	Verify(ctx context.Context, ev *attestation.Evidence, nonce []byte) (*attestation.Assertions, error)
}

// Option changes how Open sets a steward up.
type Option func(*options)

type options struct {
	verifier Verifier
	now      func() time.Time
	edit     []func(*Config)
}

// WithVerifier makes the steward check evidence with v instead of the
// verifier built from its policy and reference values.
func WithVerifier(v Verifier) Option { return func(o *options) { o.verifier = v } }

// WithClock gives the steward its clock (time.Now by default), for nonces,
// tokens, certificates and the verifier Open builds.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithConfig changes the configuration read from steward.toml before it is
// used (e.g. a command-line flag overriding listen). The result is validated.
func WithConfig(edit func(*Config)) Option {
	return func(o *options) { o.edit = append(o.edit, edit) }
}

// Server is a steward. It is safe for concurrent use.
type Server struct {
	cfg      Config
	dir      string
	verifier Verifier
	now      func() time.Time
	nonces   *nonceStore
	clients  *clientLimiter
	issuer   atomic.Pointer[string] // iss of tokens

	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte

	signer   jose.Signer
	jwks     jose.JSONWebKeySet
	jwksJSON []byte

	tlsCert *tls.Certificate
	log     *log.Entry
}

// Open sets up the steward whose data directory is dataDir: it creates the
// directory (mode 0700) and its missing files (the default steward.toml and
// policy.toml, a new CA and token key), reads them, and builds the verifier
// from the policy and reference values. It logs through ctx's logger.
func Open(ctx context.Context, dataDir string, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if dataDir == "" {
		return nil, errors.New("steward: no data directory")
	}
	d, err := openDataDir(ctx, dataDir, o.now())
	if err != nil {
		return nil, err
	}
	cfg := d.cfg
	for _, edit := range o.edit {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("steward: configuration: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		dir:      dataDir,
		verifier: o.verifier,
		now:      o.now,
		nonces:   newNonceStore(cfg.NonceTTL, cfg.MaxNonces),
		clients:  newClientLimiter(cfg.ClientRate, o.now),
		caKey:    d.caKey,
		caCert:   d.caCert,
		caPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.caCert.Raw}),
		log:      log.G(ctx),
	}
	iss := cfg.issuer()
	s.issuer.Store(&iss)
	if err := s.setTokenKey(d.tokenKey); err != nil {
		return nil, err
	}
	if cfg.TLS() {
		certPath, keyPath := resolve(dataDir, cfg.TLSCertificate), resolve(dataDir, cfg.TLSKey)
		c, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("steward: tls_certificate %s and tls_key %s: %w", certPath, keyPath, err)
		}
		s.tlsCert = &c
	}
	if s.verifier == nil {
		if s.verifier, err = newVerifier(ctx, cfg, dataDir, o.now); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// setTokenKey makes key the token signing key and publishes it in the JWKS,
// named by its RFC 7638 thumbprint.
func (s *Server) setTokenKey(key *ecdsa.PrivateKey) error {
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(cryptoSHA256)
	if err != nil {
		return fmt.Errorf("steward: token key thumbprint: %w", err)
	}
	pub.KeyID = base64URL(tp)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType(stewardclient.TokenType),
	)
	if err != nil {
		return fmt.Errorf("steward: token signer: %w", err)
	}
	s.signer = signer
	s.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
	if s.jwksJSON, err = json.Marshal(s.jwks); err != nil {
		return fmt.Errorf("steward: encode JWKS: %w", err)
	}
	return nil
}

// Config returns the configuration the steward runs with.
func (s *Server) Config() Config { return s.cfg }

// CA returns the steward's CA certificate.
func (s *Server) CA() *x509.Certificate { return s.caCert }

// JWKS returns the public keys that verify the steward's tokens.
func (s *Server) JWKS() *jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), s.jwks.Keys...)}
	return &set
}

// ListenAndServe listens on the configured address and serves until ctx
// ends (see Serve).
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("steward: listen on %s (listen in %s): %w", s.cfg.Listen, ConfigFile, err)
	}
	return s.Serve(ctx, l)
}

// shutdownTimeout bounds how long Serve waits for requests in flight once
// its context ends.
const shutdownTimeout = 10 * time.Second

// Serve answers requests on l, over TLS when tls_certificate is configured,
// until ctx ends; it then stops accepting connections, lets the requests in
// flight finish (for at most 10 s) and returns nil. It closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	scheme := "http"
	if s.tlsCert != nil {
		scheme = "https"
		l = tls.NewListener(l, &tls.Config{
			Certificates: []tls.Certificate{*s.tlsCert},
			MinVersion:   tls.VersionTLS12,
		})
	} else if !loopback(l.Addr().String()) {
		s.log.Warnf("steward: serving plain HTTP on %s, which is not a loopback address: tokens and certificates travel unprotected and anyone on the network can talk to this steward; set tls_certificate and tls_key in %s, or listen on 127.0.0.1", l.Addr(), ConfigFile)
	}
	if _, port, _ := net.SplitHostPort(s.cfg.Listen); s.cfg.Name == "" && port == "0" {
		// The issuer is the steward's URL: with a port picked by the
		// system, the one it got.
		iss := scheme + "://" + l.Addr().String()
		s.issuer.Store(&iss)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute, // verification may fetch certificates
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return log.WithLogger(context.WithoutCancel(ctx), s.log) },
		ErrorLog:          nil,
	}
	done := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			stopped <- nil
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		stopped <- srv.Shutdown(sctx)
	}()
	s.log.Infof("steward: serving %s://%s", scheme, l.Addr())
	err := srv.Serve(l)
	close(done)
	serr := <-stopped
	if errors.Is(err, http.ErrServerClosed) {
		if serr != nil {
			return fmt.Errorf("steward: shutdown: %w", serr)
		}
		s.log.Info("steward: stopped")
		return nil
	}
	return fmt.Errorf("steward: serve: %w", err)
}
