package tlssock_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
	pem  []byte
}

func newCA(tb testing.TB, name string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf for cn, valid for localhost, 127.0.0.1 and names,
// for both server and client use, with extra extensions.
func (ca *testCA) issue(tb testing.TB, cn string, names []string, ext ...pkix.Extension) (tls.Certificate, crypto.Signer, []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(time.Now().UnixNano()),
		Subject:         pkix.Name{CommonName: cn},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		DNSNames:        append([]string{"localhost"}, names...),
		IPAddresses:     []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: ext,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem...)
	cert, err := tlssock.FromKeyAndChain(key, chain)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key, chain
}

// result is one side of a loopback exchange.
type result struct {
	state *tlssock.State
	err   error
}

// exchange listens with srv on network, dials with cli, echoes one message,
// and returns both sides' states (or errors).
func exchange(tb testing.TB, network string, srv, cli *tlssock.Config) (server, client result) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := tlssock.Listen(ctx, network, "127.0.0.1:0", srv)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s, err := tlssock.ConnectionState(c)
		if err != nil {
			done <- result{err: err}
			return
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil {
			_, err = c.Write(buf[:n])
		}
		done <- result{state: s, err: err}
	}()
	client = dialEcho(ctx, network, l.Addr().String(), cli)
	if client.err != nil && network != "tcp" {
		l.Close() // a failed DTLS client leaves Accept waiting
	}
	server = <-done
	return server, client
}

func dialEcho(ctx context.Context, network, addr string, cli *tlssock.Config) result {
	c, err := tlssock.Dial(ctx, network, addr, cli)
	if err != nil {
		return result{err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		return result{err: err}
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return result{state: s, err: err}
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil && string(buf[:n]) != "ping" {
		err = io.ErrUnexpectedEOF
	}
	return result{state: s, err: err}
}
