package tlssock_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"time"

	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// selfSigned returns a certificate for localhost and 127.0.0.1, and a pool
// that trusts it. A Keep would use FromKeyAndChain with its attested chain.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tlssock.FromKeyAndChain(key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return cert, pool
}

// echoOnce accepts one connection and echoes what it reads once.
func echoOnce(l net.Listener) {
	c, err := l.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err == nil {
		_, _ = c.Write(buf[:n])
	}
}

// A TLS 1.3 server and client with the default, post-quantum hybrid key exchange.
func ExampleListen_tls() {
	cert, roots := selfSigned()
	ctx := context.Background()
	l, err := tlssock.Listen(ctx, "tcp", "127.0.0.1:0", &tlssock.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go echoOnce(l)

	c, err := tlssock.Dial(ctx, "tcp", l.Addr().String(), &tlssock.Config{RootCAs: roots})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Protocol, s.Version, s.Group)
	// Output: TLS 1.3 X25519MLKEM768
}

// A client whose algorithms come from its TOML configuration: only classical
// key exchange, so the server falls back to X25519.
func ExampleDial_configuration() {
	cert, roots := selfSigned()
	ctx := context.Background()
	l, err := tlssock.Listen(ctx, "tcp", "127.0.0.1:0", &tlssock.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go echoOnce(l)

	cfg, err := tlssock.ParseConfig([]byte(`
[tls]
groups = ["X25519", "P-256"]
signature_schemes = ["ecdsa_secp256r1_sha256"]
`))
	if err != nil {
		log.Fatal(err)
	}
	cfg.RootCAs = roots
	c, err := tlssock.Dial(ctx, "tcp", l.Addr().String(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Version, s.Group)
	// Output: 1.3 X25519
}

// A DTLS 1.2 echo over UDP with a configured cipher suite.
func ExampleListen_dtls() {
	cert, roots := selfSigned()
	ctx := context.Background()
	suite := []string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"}
	l, err := tlssock.Listen(ctx, "udp", "127.0.0.1:0", &tlssock.Config{Certificates: []tls.Certificate{cert}, CipherSuites: suite})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go echoOnce(l)

	c, err := tlssock.Dial(ctx, "udp", l.Addr().String(), &tlssock.Config{RootCAs: roots, CipherSuites: suite})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello over DTLS")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil && err != io.EOF {
		log.Fatal(err)
	}
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]))
	fmt.Println(s.Protocol, s.Version, s.CipherSuite)
	// Output:
	// hello over DTLS
	// DTLS 1.2 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
}
