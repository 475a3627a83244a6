package tlssock_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/internal/testpki"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// pki is a server and a client certificate from one CA.
type pki struct {
	ca             *testpki.CA
	server, client tls.Certificate
}

func newPKI(t *testing.T) *pki {
	ca := testpki.NewCA(t, "test CA")
	srv, _, _ := ca.Issue(t, "server", []string{"keep.example"})
	cli, _, _ := ca.Issue(t, "client", nil)
	return &pki{ca: ca, server: srv, client: cli}
}

func (p *pki) serverConfig() *tlssock.Config {
	return &tlssock.Config{Certificates: []tls.Certificate{p.server}}
}

func (p *pki) clientConfig() *tlssock.Config {
	return &tlssock.Config{RootCAs: p.ca.Pool}
}

func mustOK(t *testing.T, srv, cli result) {
	t.Helper()
	if srv.err != nil || cli.err != nil {
		t.Fatalf("exchange failed: server: %v; client: %v", srv.err, cli.err)
	}
}

func TestDefaultIsPostQuantumTLS13(t *testing.T) {
	p := newPKI(t)
	srv, cli := exchange(t, "tcp", p.serverConfig(), p.clientConfig())
	mustOK(t, srv, cli)
	for side, s := range map[string]*tlssock.State{"server": srv.state, "client": cli.state} {
		if s.Protocol != "TLS" || s.Version != "1.3" || s.Group != "X25519MLKEM768" {
			t.Errorf("%s negotiated %s %s group %q, want TLS 1.3 with X25519MLKEM768", side, s.Protocol, s.Version, s.Group)
		}
	}
	if !cli.state.Verified || cli.state.PeerCertificates[0].Subject.CommonName != "server" {
		t.Errorf("client state: verified %v, peer %v", cli.state.Verified, cli.state.PeerCertificates)
	}
}

func TestClassicalClientFallsBack(t *testing.T) {
	p := newPKI(t)
	for _, group := range []string{"X25519", "P-384", "secp256r1"} {
		cli := p.clientConfig()
		cli.Groups = []string{group}
		srv, c := exchange(t, "tcp", p.serverConfig(), cli)
		mustOK(t, srv, c)
		want := map[string]string{"secp256r1": "P-256"}[group]
		if want == "" {
			want = group
		}
		if srv.state.Group != want || c.state.Group != want {
			t.Errorf("client offering only %s: server got %q, client %q", group, srv.state.Group, c.state.Group)
		}
	}
}

func TestServerGroupsRestrict(t *testing.T) {
	p := newPKI(t)
	srvCfg := p.serverConfig()
	srvCfg.Groups = []string{"P-256"}
	srv, cli := exchange(t, "tcp", srvCfg, p.clientConfig())
	mustOK(t, srv, cli)
	if cli.state.Group != "P-256" {
		t.Errorf("server restricted to P-256: negotiated %q", cli.state.Group)
	}
	cliCfg := p.clientConfig()
	cliCfg.Groups = []string{"X25519"}
	_, cli = exchange(t, "tcp", srvCfg, cliCfg)
	if cli.err == nil {
		t.Error("client X25519 only against server P-256 only: handshake succeeded")
	}
}

// tap records what a connection reads.
type tap struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *tap) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.got = append(c.got, b[:n]...)
	c.mu.Unlock()
	return n, err
}

// serverKeyExchange finds the TLS 1.2 ServerKeyExchange in plaintext
// handshake records (record header: type, version, length) and returns its
// named group and signature scheme.
func serverKeyExchange(t *testing.T, stream []byte) (tls.CurveID, tls.SignatureScheme) {
	t.Helper()
	var hs []byte
	for len(stream) >= 5 {
		typ, n := stream[0], int(binary.BigEndian.Uint16(stream[3:5]))
		if typ != 22 { // the ChangeCipherSpec ends the plaintext
			break
		}
		hs = append(hs, stream[5:5+n]...)
		stream = stream[5+n:]
	}
	for len(hs) >= 4 {
		typ, n := hs[0], int(hs[1])<<16|int(hs[2])<<8|int(hs[3])
		body := hs[4 : 4+n]
		if typ == 12 && body[0] == 3 { // server_key_exchange, named_curve
			pk := int(body[3])
			return tls.CurveID(binary.BigEndian.Uint16(body[1:3])), tls.SignatureScheme(binary.BigEndian.Uint16(body[4+pk:]))
		}
		hs = hs[4+n:]
	}
	t.Fatal("no ServerKeyExchange on the wire")
	return 0, 0
}

func TestTLS12SuiteAndSignatureOnTheWire(t *testing.T) {
	p := newPKI(t)
	srvCfg := p.serverConfig()
	srvCfg.MinVersion = "1.2"
	srvCfg.SignatureSchemes = []string{"ecdsa_secp384r1_sha384"}
	ctx := context.Background()
	l, err := tlssock.Listen(ctx, "tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_, _ = tlssock.ConnectionState(c)
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	w := &tap{Conn: raw}
	cliCfg := p.clientConfig()
	cliCfg.ServerName = "localhost"
	cliCfg.MinVersion, cliCfg.MaxVersion = "1.2", "1.2"
	cliCfg.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
	cliCfg.Groups = []string{"P-384"}
	c, err := tlssock.Client(w, cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.2" || s.CipherSuite != "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" {
		t.Errorf("negotiated %s %s, want 1.2 with the configured suite", s.Version, s.CipherSuite)
	}
	w.mu.Lock()
	curve, scheme := serverKeyExchange(t, w.got)
	w.mu.Unlock()
	if curve != tls.CurveP384 || s.Group != "P-384" {
		t.Errorf("key exchange group on the wire %v (state %q), want P-384", curve, s.Group)
	}
	if scheme != tls.ECDSAWithP384AndSHA384 {
		t.Errorf("server signed with %v on the wire, want the configured ecdsa_secp384r1_sha384", scheme)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srvCfg := p.serverConfig()
	srvCfg.ClientAuth = "require"
	srvCfg.ClientCAs = p.ca.Pool

	cli := p.clientConfig()
	cli.Certificates = []tls.Certificate{p.client}
	srv, c := exchange(t, "tcp", srvCfg, cli)
	mustOK(t, srv, c)
	if !srv.state.Verified || srv.state.PeerCertificates[0].Subject.CommonName != "client" {
		t.Errorf("server saw client verified=%v %v", srv.state.Verified, srv.state.PeerCertificates)
	}

	other, _, _ := testpki.NewCA(t, "other CA").Issue(t, "intruder", nil)
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "certificate from another CA": {other}} {
		cli := p.clientConfig()
		cli.Certificates = certs
		srv, c := exchange(t, "tcp", srvCfg, cli)
		if srv.err == nil || c.err == nil {
			t.Errorf("%s: accepted (server err %v, client err %v)", name, srv.err, c.err)
		}
	}
}

func TestSNI(t *testing.T) {
	p := newPKI(t)
	cli := p.clientConfig()
	cli.ServerName = "keep.example"
	srv, c := exchange(t, "tcp", p.serverConfig(), cli)
	mustOK(t, srv, c)
	if srv.state.ServerName != "keep.example" {
		t.Errorf("server saw SNI %q, want keep.example", srv.state.ServerName)
	}
	cli.ServerName = "elsewhere.example"
	if _, c := exchange(t, "tcp", p.serverConfig(), cli); c.err == nil {
		t.Error("certificate accepted for a name it does not hold")
	}
}

func TestUntrustedCAFails(t *testing.T) {
	p := newPKI(t)
	for _, network := range []string{"tcp", "udp"} {
		cli := &tlssock.Config{RootCAs: testpki.NewCA(t, "other CA").Pool}
		_, c := exchange(t, network, p.serverConfig(), cli)
		if c.err == nil || !strings.Contains(c.err.Error(), "unknown authority") {
			t.Errorf("%s: client trusting another CA: err = %v, want unknown authority", network, c.err)
		}
	}
}

func TestUnknownNamesRejected(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{`[tls]
groups = ["X448"]`, `unknown group "X448" in groups: use one of P-256, P-384, P-521, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519, X25519MLKEM768`},
		{`[tls]
signature_schemes = ["dsa_sha1"]`, `unknown signature scheme "dsa_sha1" in signature_schemes: use one of ecdsa_secp256r1_sha256`},
		{`[tls]
cipher_suites = ["TLS_RSA_WITH_RC4_128_SHA"]`, `unknown cipher suite "TLS_RSA_WITH_RC4_128_SHA" in cipher_suites: use one of TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, `},
		{`[tls]
cipher_suites = ["TLS_AES_128_GCM_SHA256"]`, `is a TLS 1.3 suite, which Go always enables`},
		{`[tls]
min_version = "1.1"`, `unknown TLS version "1.1" in min_version: use one of 1.2, 1.3`},
		{`[tls]
client_auth = "maybe"`, `use none, verify_if_given or require`},
		{`[tls]
curves = ["X25519"]`, `unknown key in TLS configuration (it is one [tls] table with keys groups,`},
		{`groups = ["X25519"]`, `unknown key in TLS configuration`},
		{`# nothing`, `no [tls] table`},
	} {
		_, err := tlssock.ParseConfig([]byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%q) = %v, want an error containing %q", tc.toml, err, tc.want)
		}
	}
	// The same check guards Listen and Dial of a Config built in code.
	_, err := tlssock.Dial(context.Background(), "tcp", "127.0.0.1:1", &tlssock.Config{Groups: []string{"Kyber512"}})
	if err == nil || !strings.Contains(err.Error(), `unknown group "Kyber512"`) {
		t.Errorf("Dial with an unknown group: %v", err)
	}
}

func TestParseConfigAndFiles(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	_, key, chain := p.ca.Issue(t, "file server", nil)
	der, err := x509MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	certFile, keyFile, caFile := write("cert.pem", chain), write("key.pem", der), write("ca.pem", p.ca.PEM)
	srv, err := tlssock.ParseConfig([]byte(`[tls]
groups = ["X25519MLKEM768", "X25519"]
signature_schemes = ["ecdsa_secp256r1_sha256"]
cert_file = "` + certFile + `"
key_file = "` + keyFile + `"
`))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlssock.ParseConfig([]byte(`[tls]
root_ca_file = "` + caFile + `"
server_name = "localhost"
`))
	if err != nil {
		t.Fatal(err)
	}
	s, c := exchange(t, "tcp", srv, cli)
	mustOK(t, s, c)
	if c.state.PeerCertificates[0].Subject.CommonName != "file server" || c.state.Group != "X25519MLKEM768" {
		t.Errorf("client saw %v over %q", c.state.PeerCertificates[0].Subject, c.state.Group)
	}
}

func TestPeerAssertions(t *testing.T) {
	ca := testpki.NewCA(t, "steward")
	want := &attestation.Assertions{TEE: "none", RuntimeDigest: "sha256:aa", WorkloadDigest: "sha256:bb", RuntimeVersion: "v1", Insecure: true, VerifiedAt: time.Unix(0, 0).UTC()}
	ext, err := attestation.AssertionsExtension(want)
	if err != nil {
		t.Fatal(err)
	}
	keepCert, _, _ := ca.Issue(t, "keep", nil, ext)
	plainCert, _, _ := ca.Issue(t, "plain", nil)
	for _, network := range []string{"tcp", "udp"} {
		for name, cert := range map[string]tls.Certificate{"keep": keepCert, "plain": plainCert} {
			l, err := tlssock.Listen(context.Background(), network, "127.0.0.1:0", &tlssock.Config{Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				if c, err := l.Accept(); err == nil {
					_, _ = tlssock.ConnectionState(c)
					time.Sleep(100 * time.Millisecond)
					c.Close()
				}
			}()
			c, err := tlssock.Dial(context.Background(), network, l.Addr().String(), &tlssock.Config{RootCAs: ca.Pool})
			if err != nil {
				t.Fatal(err)
			}
			got, err := tlssock.PeerAssertions(c)
			c.Close()
			l.Close()
			if name == "plain" {
				if !errors.Is(err, attestation.ErrNoAssertions) {
					t.Errorf("%s %s: err = %v, want ErrNoAssertions", network, name, err)
				}
				continue
			}
			if err != nil || got.TEE != want.TEE || got.WorkloadDigest != want.WorkloadDigest || !got.Insecure {
				t.Errorf("%s %s: PeerAssertions = %+v, %v; want %+v", network, name, got, err, want)
			}
		}
	}
}

func TestFromKeyAndChainRejectsOtherKey(t *testing.T) {
	ca := testpki.NewCA(t, "ca")
	_, _, chain := ca.Issue(t, "a", nil)
	_, otherKey, _ := ca.Issue(t, "b", nil)
	if _, err := tlssock.FromKeyAndChain(otherKey, chain); err == nil || !strings.Contains(err.Error(), "does not certify the given key") {
		t.Errorf("FromKeyAndChain with another key: %v", err)
	}
	if _, err := tlssock.FromKeyAndChain(otherKey, []byte("junk")); err == nil {
		t.Error("FromKeyAndChain accepted a chain with no certificate")
	}
}

func TestNetworkAndCertificateErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := tlssock.Listen(ctx, "unix", "/tmp/x", &tlssock.Config{}); err == nil || !strings.Contains(err.Error(), "use tcp (TLS) or udp (DTLS)") {
		t.Errorf("Listen unix: %v", err)
	}
	for _, network := range []string{"tcp", "udp"} {
		if _, err := tlssock.Listen(ctx, network, "127.0.0.1:0", nil); err == nil || !strings.Contains(err.Error(), "a server needs a certificate") {
			t.Errorf("Listen %s without certificate: %v", network, err)
		}
	}
}
