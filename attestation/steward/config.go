package steward

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx/containerd-shim-enarx/internal/tomlerr"
)

// File names in a steward's data directory.
const (
	ConfigFile = "steward.toml"
	PolicyFile = "policy.toml"
	CAKeyFile  = "ca.key"
	CACertFile = "ca.crt"
	TokenKey   = "token.key"
)

// defaultConfig is the steward.toml written on first start.
//
//go:embed defaults/steward.toml
var defaultConfig []byte

// defaultPolicy is the policy.toml written on first start: the verifier's
// production default, with comments.
//
//go:embed defaults/policy.toml
var defaultPolicy []byte

// Config is a steward's configuration, the TOML file steward.toml in its
// data directory. Relative paths are relative to the data directory.
type Config struct {
	// Listen is the host:port to listen on (listen).
	Listen string
	// Name is the issuer of tokens (name); empty means the steward's URL.
	Name string
	// Policy is the verification policy file (policy); empty means the
	// verifier's built-in default policy.
	Policy string
	// ReferenceValues is the reference values file (reference_values);
	// empty means the policy's.
	ReferenceValues string
	// NonceTTL, TokenTTL and CertificateTTL are the lifetimes of a nonce, a
	// token and a Keep certificate (nonce_ttl, token_ttl, certificate_ttl).
	NonceTTL, TokenTTL, CertificateTTL time.Duration
	// TLSCertificate and TLSKey are PEM files to serve HTTPS with
	// (tls_certificate, tls_key); both empty means plain HTTP.
	TLSCertificate, TLSKey string
	// RequireNonce requires evidence to bind a nonce this steward issued
	// (require_nonce).
	RequireNonce bool
	// MaxNonces bounds the used nonces remembered until they expire
	// (max_nonces); issuing one keeps nothing.
	MaxNonces int
	// ClientRate is how many evidence verifications (POST /v1/attest and
	// /v1/csr) a client (an IP address) may ask for per second, twice that
	// at once (client_rate); 0 for no limit.
	ClientRate float64
}

// configFile is Config as TOML.
type configFile struct {
	Listen          string  `toml:"listen"`
	Name            string  `toml:"name"`
	Policy          string  `toml:"policy"`
	ReferenceValues string  `toml:"reference_values"`
	NonceTTL        string  `toml:"nonce_ttl"`
	TokenTTL        string  `toml:"token_ttl"`
	CertificateTTL  string  `toml:"certificate_ttl"`
	TLSCertificate  string  `toml:"tls_certificate"`
	TLSKey          string  `toml:"tls_key"`
	RequireNonce    bool    `toml:"require_nonce"`
	MaxNonces       int     `toml:"max_nonces"`
	ClientRate      float64 `toml:"client_rate"`
}

// DefaultConfig returns the configuration of the default steward.toml.
func DefaultConfig() Config {
	c, err := parseConfig(defaultConfig, "built-in "+ConfigFile)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return c
}

// LoadConfig reads a steward.toml. Keys absent from the file keep their
// default values; unknown keys are an error.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("steward: configuration: %w", err)
	}
	return parseConfig(data, path)
}

// parseConfig decodes and checks a steward.toml; name says where it is from.
func parseConfig(data []byte, name string) (Config, error) {
	f := configFile{
		Listen:         "127.0.0.1:3443",
		Policy:         PolicyFile,
		NonceTTL:       "5m",
		TokenTTL:       "1h",
		CertificateTTL: "24h",
		RequireNonce:   true,
		MaxNonces:      DefaultMaxNonces,
		ClientRate:     DefaultClientRate,
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		if keys, ok := tomlerr.UnknownKeys(err); ok {
			return Config{}, fmt.Errorf("steward: %s: unknown key %s: known keys are %s", name, keys, knownKeys)
		}
		if row, col, _, ok := tomlerr.Position(err); ok {
			return Config{}, fmt.Errorf("steward: %s:%d:%d: %w", name, row, col, err)
		}
		return Config{}, fmt.Errorf("steward: %s: %w", name, err)
	}
	c := Config{
		Listen:          f.Listen,
		Name:            f.Name,
		Policy:          f.Policy,
		ReferenceValues: f.ReferenceValues,
		TLSCertificate:  f.TLSCertificate,
		TLSKey:          f.TLSKey,
		RequireNonce:    f.RequireNonce,
		MaxNonces:       f.MaxNonces,
		ClientRate:      f.ClientRate,
	}
	for _, d := range []struct {
		key, value string
		to         *time.Duration
	}{
		{"nonce_ttl", f.NonceTTL, &c.NonceTTL},
		{"token_ttl", f.TokenTTL, &c.TokenTTL},
		{"certificate_ttl", f.CertificateTTL, &c.CertificateTTL},
	} {
		v, err := time.ParseDuration(d.value)
		if err != nil {
			return Config{}, fmt.Errorf("steward: %s: %s %q is not a duration such as \"5m\" or \"24h\"", name, d.key, d.value)
		}
		*d.to = v
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("steward: %s: %w", name, err)
	}
	return c, nil
}

const knownKeys = "listen, name, policy, reference_values, nonce_ttl, token_ttl, certificate_ttl, tls_certificate, tls_key, require_nonce, max_nonces, client_rate"

// Validate reports the first setting of c that cannot work.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q is not host:port (e.g. \"127.0.0.1:3443\"): %w", c.Listen, err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"nonce_ttl", c.NonceTTL}, {"token_ttl", c.TokenTTL}, {"certificate_ttl", c.CertificateTTL}} {
		if d.v <= 0 {
			return fmt.Errorf("%s is %s, want a positive duration", d.key, d.v)
		}
	}
	if (c.TLSCertificate == "") != (c.TLSKey == "") {
		return errors.New("tls_certificate and tls_key must be set together (or both left empty for plain HTTP)")
	}
	if c.ClientRate < 0 {
		return fmt.Errorf("client_rate is %v, want 0 (no limit) or a positive number of verifications per second", c.ClientRate)
	}
	if c.MaxNonces <= 0 {
		return fmt.Errorf("max_nonces is %d, want a positive number", c.MaxNonces)
	}
	return nil
}

// TLS says whether c serves HTTPS.
func (c *Config) TLS() bool { return c.TLSCertificate != "" }

// resolve returns path relative to dir, unless it is absolute or empty.
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// issuer is the iss of tokens: the configured name, else the URL of listen.
func (c *Config) issuer() string {
	if c.Name != "" {
		return c.Name
	}
	scheme := "http"
	if c.TLS() {
		scheme = "https"
	}
	return scheme + "://" + c.Listen
}

// loopback says whether the listen address addr (host:port) is reachable
// only from this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
