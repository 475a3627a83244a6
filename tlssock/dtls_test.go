package tlssock_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/tlssock"
	"github.com/pion/dtls/v3"
)

func TestDTLSEchoDefaults(t *testing.T) {
	p := newPKI(t)
	// A configuration shared with TLS: the post-quantum group, which DTLS
	// lacks, is skipped and the classical ones remain.
	srv, cli := exchange(t, "udp", p.serverConfig(), p.clientConfig())
	mustOK(t, srv, cli)
	for side, s := range map[string]*tlssock.State{"server": srv.state, "client": cli.state} {
		if s.Protocol != "DTLS" || s.Version != "1.2" || s.CipherSuite != "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" {
			t.Errorf("%s: %+v, want DTLS 1.2 with pion's first ECDSA suite", side, s)
		}
	}
	if !cli.state.Verified || cli.state.PeerCertificates[0].Subject.CommonName != "server" {
		t.Errorf("client saw %v", cli.state.PeerCertificates)
	}
}

func TestDTLSMutual(t *testing.T) {
	p := newPKI(t)
	srvCfg := p.serverConfig()
	srvCfg.ClientAuth, srvCfg.ClientCAs = "require", p.ca.Pool
	cli := p.clientConfig()
	cli.Certificates = []tls.Certificate{p.client}
	srv, c := exchange(t, "udp", srvCfg, cli)
	mustOK(t, srv, c)
	if srv.state.PeerCertificates[0].Subject.CommonName != "client" {
		t.Errorf("server saw %v", srv.state.PeerCertificates)
	}
	if _, c := exchange(t, "udp", srvCfg, p.clientConfig()); c.err == nil {
		t.Error("DTLS client without certificate accepted by a server requiring one")
	}
}

// packetTap records the datagrams a PacketConn reads.
type packetTap struct {
	net.PacketConn
	mu  sync.Mutex
	got [][]byte
}

func (c *packetTap) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if n > 0 {
		c.mu.Lock()
		c.got = append(c.got, append([]byte(nil), b[:n]...))
		c.mu.Unlock()
	}
	return n, a, err
}

// dtlsServerKeyExchange finds the ServerKeyExchange in epoch-0 DTLS records
// (13-byte record header, 12-byte handshake header) and returns its named
// group and signature scheme.
func dtlsServerKeyExchange(t *testing.T, datagrams [][]byte) (uint16, tls.SignatureScheme) {
	t.Helper()
	for _, d := range datagrams {
		for len(d) >= 13 {
			typ, epoch, n := d[0], binary.BigEndian.Uint16(d[3:5]), int(binary.BigEndian.Uint16(d[11:13]))
			rec := d[13 : 13+n]
			d = d[13+n:]
			if typ != 22 || epoch != 0 {
				continue
			}
			for len(rec) >= 12 {
				htyp, fl := rec[0], int(rec[9])<<16|int(rec[10])<<8|int(rec[11])
				body := rec[12 : 12+fl]
				rec = rec[12+fl:]
				if htyp == 12 && body[0] == 3 {
					pk := int(body[3])
					return binary.BigEndian.Uint16(body[1:3]), tls.SignatureScheme(binary.BigEndian.Uint16(body[4+pk:]))
				}
			}
		}
	}
	t.Fatal("no ServerKeyExchange on the wire")
	return 0, 0
}

func TestDTLSConfiguredAlgorithmsOnTheWire(t *testing.T) {
	p := newPKI(t)
	algs := func(c *tlssock.Config) *tlssock.Config {
		c.Groups = []string{"X25519MLKEM768", "P-384"}
		c.CipherSuites = []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}
		// pion checks the certificates' own signatures (ECDSA-SHA256 here) against
		// the same list, so it must name them too.
		c.SignatureSchemes = []string{"ecdsa_secp384r1_sha384", "ecdsa_secp256r1_sha256"}
		return c
	}
	l, err := tlssock.Listen(context.Background(), "udp", "127.0.0.1:0", algs(p.serverConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serverState := make(chan *tlssock.State, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			serverState <- nil
			return
		}
		defer c.Close()
		s, _ := tlssock.ConnectionState(c)
		serverState <- s
		buf := make([]byte, 64)
		if n, err := c.Read(buf); err == nil {
			_, _ = c.Write(buf[:n])
		}
	}()

	dc, err := algs(p.clientConfig()).DTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	dc.ServerName = "localhost"
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &packetTap{PacketConn: pc}
	c, err := dtls.Client(w, l.Addr(), dc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("echo: %q, %v", buf[:n], err)
	}
	cs, err := tlssock.ConnectionState(c)
	if err != nil {
		t.Fatal(err)
	}
	ss := <-serverState
	for side, s := range map[string]*tlssock.State{"client": cs, "server": ss} {
		if s == nil || s.CipherSuite != "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" {
			t.Errorf("%s state %+v, want the configured suite", side, s)
		}
	}
	w.mu.Lock()
	curve, scheme := dtlsServerKeyExchange(t, w.got)
	w.mu.Unlock()
	if curve != uint16(tls.CurveP384) {
		t.Errorf("group on the wire 0x%04x, want P-384 (0x0018)", curve)
	}
	if scheme != tls.ECDSAWithP384AndSHA384 {
		t.Errorf("signature on the wire %v, want ecdsa_secp384r1_sha384", scheme)
	}
}

func TestDTLSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  tlssock.Config
		want string
	}{
		{tlssock.Config{Groups: []string{"X25519MLKEM768"}}, "has none that DTLS implements: add one of P-256, P-384, X25519"},
		{tlssock.Config{MinVersion: "1.3"}, "DTLS is 1.2 only"},
		{tlssock.Config{CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}}, "cipher_suites names no suite DTLS implements"},
		{tlssock.Config{CipherSuites: []string{"TLS_NOPE"}}, `unknown DTLS cipher suite "TLS_NOPE"`},
	} {
		if _, err := tc.cfg.DTLSConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DTLSConfig(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// A DTLS-only suite (CCM) in a shared configuration leaves TLS its defaults.
	c := tlssock.Config{CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}, MinVersion: "1.2"}
	if _, err := c.DTLSConfig(); err != nil {
		t.Error(err)
	}
	if tc, err := c.TLSConfig(); err != nil || len(tc.CipherSuites) != 1 {
		t.Errorf("TLSConfig: %v, %v", tc, err)
	}
}
