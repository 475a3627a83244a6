package tlssock

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pion/dtls/v3"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/pion/dtls/v3/pkg/crypto/elliptic"
)

// Config names the algorithms and credentials of a TLS or DTLS endpoint. The
// zero value is a TLS 1.3 client that trusts the system roots and prefers the
// post-quantum hybrid X25519MLKEM768. Names are IANA's (Go's for groups,
// which are the same but for P-256/P-384/P-521); unknown names are errors
// that list the accepted ones.
type Config struct {
	// Groups are the key-exchange groups in order of preference; empty means
	// DefaultGroups. TLS accepts X25519MLKEM768, SecP256r1MLKEM768,
	// SecP384r1MLKEM1024, X25519, P-256, P-384, P-521. DTLS (pion/dtls)
	// implements X25519, P-256 and P-384 only: the other names are skipped
	// for DTLS, and a list left empty by that is an error.
	Groups []string `toml:"groups"`
	// SignatureSchemes restrict the schemes this endpoint signs with, e.g.
	// "ecdsa_secp256r1_sha256", "ed25519", "rsa_pss_rsae_sha256". For TLS
	// they become the certificates' SupportedSignatureAlgorithms (crypto/tls
	// accepts Go's fixed set of secure schemes from the peer); for DTLS they
	// are pion's SignatureSchemes, offered and accepted both ways, and pion
	// checks the certificates' own signatures against them too, so the list
	// must name the scheme the CA signed with.
	SignatureSchemes []string `toml:"signature_schemes"`
	// CipherSuites are TLS 1.2 / DTLS 1.2 suites by IANA name, e.g.
	// "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"; empty means the library's
	// secure defaults. TLS 1.3 suites are not configurable in crypto/tls
	// (all three are always enabled), so naming one is an error.
	CipherSuites []string `toml:"cipher_suites"`
	// MinVersion and MaxVersion are "1.2" or "1.3". TLS defaults to "1.3"
	// for both; DTLS is 1.2 only (pion/dtls has no DTLS 1.3).
	MinVersion string `toml:"min_version"`
	MaxVersion string `toml:"max_version"`
	// ServerName is the name a client sends (SNI) and verifies the server's
	// certificate against; empty means the host part of the dialed address.
	ServerName string `toml:"server_name"`
	// CertFile and KeyFile are PEM files of this endpoint's certificate chain
	// (leaf first) and private key, added to Certificates.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// RootCAFile is a PEM file of the CAs a client trusts for the server;
	// with RootCAs unset and no file, the system roots.
	RootCAFile string `toml:"root_ca_file"`
	// ClientCAFile is a PEM file of the CAs a server trusts for clients.
	ClientCAFile string `toml:"client_ca_file"`
	// ClientAuth is the server's demand for a client certificate: "none"
	// (default), "verify_if_given", or "require" (mutual TLS). A client
	// certificate is always verified against the client CAs.
	ClientAuth string `toml:"client_auth"`

	// Certificates, RootCAs and ClientCAs are the in-memory forms of the
	// files above, e.g. a Keep's identity from FromKeyAndChain.
	Certificates []tls.Certificate `toml:"-"`
	RootCAs      *x509.CertPool    `toml:"-"`
	ClientCAs    *x509.CertPool    `toml:"-"`

	// VerifyAttestation identifies the peer by its attestation rather than
	// by a name: an attested Keep's certificate carries the assertions its
	// attestation service verified (attestation.OIDAssertions) and no
	// names. The peer's chain must verify against the trusted CAs (a
	// client then needs RootCAs or RootCAFile: the attestation service's
	// CA; the system roots are never enough), its leaf must carry
	// assertions, and VerifyAttestation, given them, decides, e.g. by
	// checking the workload digest. A client so configured does not check
	// ServerName against the certificate (it still sends it as SNI), which
	// is why crypto/tls reports no verified chains: PeerAssertions refuses
	// such a connection, and the assertions reach VerifyAttestation
	// instead. TLS only.
	VerifyAttestation func(*attestation.Assertions) error `toml:"-"`
}

// ParseConfig decodes the TOML form of a Config: a [tls] table whose keys are
// the Config fields' toml names, e.g.
//
//	[tls]
//	groups = ["X25519MLKEM768", "X25519"]
//	min_version = "1.3"
//
// Unknown keys and unknown algorithm names are errors that say what to use.
// Files named in it are read when the Config is used.
func ParseConfig(data []byte) (*Config, error) {
	var doc struct {
		TLS *Config `toml:"tls"`
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			return nil, fmt.Errorf("tlssock: unknown key in TLS configuration (it is one [tls] table with keys groups, signature_schemes, cipher_suites, min_version, max_version, server_name, cert_file, key_file, root_ca_file, client_ca_file, client_auth):\n%s", strict.String())
		}
		return nil, fmt.Errorf("tlssock: TLS configuration: %w", err)
	}
	if doc.TLS == nil {
		return nil, fmt.Errorf("tlssock: TLS configuration has no [tls] table")
	}
	if err := doc.TLS.Validate(); err != nil {
		return nil, err
	}
	return doc.TLS, nil
}

// Validate checks every algorithm name and version in c for both TLS and
// DTLS use, without reading files.
func (c *Config) Validate() error {
	if _, err := c.tlsAlgorithms(); err != nil {
		return err
	}
	for _, n := range c.Groups {
		if _, err := canonicalGroup(n); err != nil {
			return err
		}
	}
	if _, err := clientAuth(c.ClientAuth); err != nil {
		return err
	}
	return nil
}

// tlsParams are the algorithm choices of a crypto/tls config.
type tlsParams struct {
	curves     []tls.CurveID
	schemes    []tls.SignatureScheme
	suites     []uint16
	minV, maxV uint16
}

func (c *Config) tlsAlgorithms() (*tlsParams, error) {
	p := &tlsParams{minV: tls.VersionTLS13, maxV: tls.VersionTLS13}
	names := c.Groups
	if len(names) == 0 {
		names = DefaultGroups
	}
	for _, n := range names {
		g, err := canonicalGroup(n)
		if err != nil {
			return nil, err
		}
		p.curves = append(p.curves, groups[g])
	}
	var err error
	if p.schemes, err = signatureSchemeIDs(c.SignatureSchemes); err != nil {
		return nil, err
	}
	suites, tls13 := tlsSuites()
	for _, n := range c.CipherSuites {
		if tls13[n] {
			return nil, fmt.Errorf("tlssock: cipher suite %q in cipher_suites is a TLS 1.3 suite, which Go always enables and does not let a configuration choose: list TLS 1.2 suites only", n)
		}
		id, ok := suites[n]
		if !ok {
			if _, dtlsOnly := dtlsSuites()[n]; !dtlsOnly {
				return nil, unknown("cipher suite", n, keys(suites), "cipher_suites")
			}
			continue // a DTLS-only suite (CCM): used by DTLS, ignored by TLS
		}
		p.suites = append(p.suites, id)
	}
	if c.MinVersion != "" {
		if p.minV, err = versionID(c.MinVersion, "min_version"); err != nil {
			return nil, err
		}
	}
	if c.MaxVersion != "" {
		if p.maxV, err = versionID(c.MaxVersion, "max_version"); err != nil {
			return nil, err
		}
	}
	if p.minV > p.maxV {
		return nil, fmt.Errorf("tlssock: min_version %s is above max_version %s", versionName(p.minV), versionName(p.maxV))
	}
	if len(c.CipherSuites) > 0 && len(p.suites) == 0 && p.minV <= tls.VersionTLS12 {
		return nil, fmt.Errorf("tlssock: cipher_suites names no suite crypto/tls implements for TLS 1.2: use one of %s", strings.Join(keys(suites), ", "))
	}
	return p, nil
}

func clientAuth(s string) (tls.ClientAuthType, error) {
	switch s {
	case "", "none":
		return tls.NoClientCert, nil
	case "verify_if_given":
		return tls.VerifyClientCertIfGiven, nil
	case "require":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("tlssock: unknown client_auth %q: use none, verify_if_given or require", s)
}

// credentials loads the files of c into certificates and pools.
func (c *Config) credentials() (certs []tls.Certificate, roots, clientCAs *x509.CertPool, err error) {
	certs = slices.Clone(c.Certificates)
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, nil, nil, fmt.Errorf("tlssock: cert_file and key_file go together: set both")
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("tlssock: load certificate %q and key %q: %w", c.CertFile, c.KeyFile, err)
		}
		certs = append(certs, cert)
	}
	roots = c.RootCAs
	if c.RootCAFile != "" {
		if roots, err = addPEMFile(roots, c.RootCAFile); err != nil {
			return nil, nil, nil, err
		}
	}
	clientCAs = c.ClientCAs
	if c.ClientCAFile != "" {
		if clientCAs, err = addPEMFile(clientCAs, c.ClientCAFile); err != nil {
			return nil, nil, nil, err
		}
	}
	return certs, roots, clientCAs, nil
}

func addPEMFile(pool *x509.CertPool, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tlssock: read CA file: %w", err)
	}
	if pool == nil {
		pool = x509.NewCertPool()
	} else {
		pool = pool.Clone()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlssock: CA file %q holds no PEM certificate", path)
	}
	return pool, nil
}

// TLSConfig returns the crypto/tls configuration c describes.
func (c *Config) TLSConfig() (*tls.Config, error) {
	if c == nil {
		c = &Config{}
	}
	p, err := c.tlsAlgorithms()
	if err != nil {
		return nil, err
	}
	auth, err := clientAuth(c.ClientAuth)
	if err != nil {
		return nil, err
	}
	certs, roots, clientCAs, err := c.credentials()
	if err != nil {
		return nil, err
	}
	if len(p.schemes) > 0 {
		for i := range certs {
			certs[i].SupportedSignatureAlgorithms = p.schemes
		}
	}
	tc := &tls.Config{
		Certificates:     certs,
		RootCAs:          roots,
		ClientCAs:        clientCAs,
		ClientAuth:       auth,
		ServerName:       c.ServerName,
		CurvePreferences: p.curves,
		CipherSuites:     p.suites,
		MinVersion:       p.minV,
		MaxVersion:       p.maxV,
	}
	if c.VerifyAttestation != nil {
		if err := verifyAttestation(tc, c.VerifyAttestation); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

// verifyAttestation makes tc identify the peer by its attestation (see
// Config.VerifyAttestation). InsecureSkipVerify only concerns a client: it
// turns off crypto/tls' own check, chain and name, and VerifyConnection
// checks the chain without the name. A server verifies client chains
// itself (client_auth), names playing no part: only the assertions are
// added.
func verifyAttestation(tc *tls.Config, check func(*attestation.Assertions) error) error {
	if tc.RootCAs == nil && tc.ClientCAs == nil {
		return errors.New("tlssock: VerifyAttestation needs the attestation service's CA as root_ca_file or client_ca_file (RootCAs, ClientCAs): the system roots do not certify Keeps")
	}
	if tc.ClientCAs == nil && tc.ClientAuth >= tls.VerifyClientCertIfGiven {
		// crypto/tls would verify client chains against the system roots.
		return errors.New("tlssock: VerifyAttestation with client_auth verifying client certificates needs client_ca_file (ClientCAs): the system roots do not certify Keeps")
	}
	roots := tc.RootCAs
	tc.InsecureSkipVerify = true
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // a client without a certificate: client_auth decides
		}
		if len(cs.VerifiedChains) == 0 {
			// A client: the chain, as crypto/tls checks it but for the
			// name.
			if roots == nil {
				return errors.New("tlssock: VerifyAttestation needs root_ca_file (RootCAs) on a client")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				return fmt.Errorf("tlssock: peer certificate: %w", err)
			}
		}
		a, err := attestation.CertificateAssertions(cs.PeerCertificates[0])
		if err != nil {
			return fmt.Errorf("tlssock: peer certificate: %w", err)
		}
		if err := check(a); err != nil {
			return fmt.Errorf("tlssock: peer attestation refused: %w", err)
		}
		return nil
	}
	return nil
}

// DTLSConfig returns the pion/dtls configuration c describes.
func (c *Config) DTLSConfig() (*dtls.Config, error) {
	if c == nil {
		c = &Config{}
	}
	if c.VerifyAttestation != nil {
		return nil, errors.New("tlssock: VerifyAttestation is TLS only: pion/dtls cannot replace the name check")
	}
	for field, v := range map[string]string{"min_version": c.MinVersion, "max_version": c.MaxVersion} {
		if v != "" && v != "1.2" {
			return nil, fmt.Errorf("tlssock: %s = %q: DTLS is 1.2 only (pion/dtls has no DTLS 1.3); set %s = \"1.2\" or leave it empty for udp", field, v, field)
		}
	}
	names := c.Groups
	if len(names) == 0 {
		names = DefaultGroups
	}
	var curves []elliptic.Curve
	for _, n := range names {
		g, err := canonicalGroup(n)
		if err != nil {
			return nil, err
		}
		if curve, ok := dtlsGroups[g]; ok {
			curves = append(curves, curve)
		}
	}
	if len(curves) == 0 {
		return nil, fmt.Errorf("tlssock: groups %v has none that DTLS implements: add one of %s", names, strings.Join(keys(dtlsGroups), ", "))
	}
	schemes, err := signatureSchemeIDs(c.SignatureSchemes)
	if err != nil {
		return nil, err
	}
	all := dtlsSuites()
	tlsOnly, _ := tlsSuites()
	var suites []dtls.CipherSuiteID
	for _, n := range c.CipherSuites {
		id, ok := all[n]
		if !ok {
			if _, isTLS := tlsOnly[n]; isTLS {
				continue // a TLS suite pion does not implement: used by TLS only
			}
			return nil, unknown("DTLS cipher suite", n, keys(all), "cipher_suites")
		}
		suites = append(suites, id)
	}
	if len(c.CipherSuites) > 0 && len(suites) == 0 {
		return nil, fmt.Errorf("tlssock: cipher_suites names no suite DTLS implements: use one of %s", strings.Join(keys(all), ", "))
	}
	auth, err := clientAuth(c.ClientAuth)
	if err != nil {
		return nil, err
	}
	certs, roots, clientCAs, err := c.credentials()
	if err != nil {
		return nil, err
	}
	dauth := dtls.NoClientCert
	switch auth {
	case tls.VerifyClientCertIfGiven:
		dauth = dtls.VerifyClientCertIfGiven
	case tls.RequireAndVerifyClientCert:
		dauth = dtls.RequireAndVerifyClientCert
	}
	return &dtls.Config{
		Certificates:         certs,
		RootCAs:              roots,
		ClientCAs:            clientCAs,
		ClientAuth:           dauth,
		ServerName:           c.ServerName,
		EllipticCurves:       curves,
		SignatureSchemes:     schemes,
		CipherSuites:         suites,
		ExtendedMasterSecret: dtls.RequireExtendedMasterSecret,
	}, nil
}
