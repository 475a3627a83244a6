//go:build linux

package wasmtime

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// TestSocketsTLSStream serves HTTPS from a Go workload through the Keep's
// own TLS listen socket (package sockets), whose connections hostwasi
// takes as engine.Streams: TLS is read and written on the workload's
// thread, and poll_oneoff waits on the TCP connections. New connections
// and keep-alive ones, and a response the client reads after the
// workload has moved on, all arrive whole.
func TestSocketsTLSStream(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keep"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlssock.FromKeyAndChain(key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	set, err := sockets.Open(context.Background(),
		[]socketspec.Spec{{Name: "https", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:0"}},
		sockets.Options{ServerTLS: &tlssock.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	socks := set.Sockets()
	if _, ok := socks[0].Acceptor.(engine.StreamAcceptor); !ok {
		t.Fatalf("the TLS listen socket's Acceptor %T is not a StreamAcceptor", socks[0].Acceptor)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	base := "https://" + set.Addr("https").String()
	s := startServer(t, engine.RunOptions{Sockets: socks}, "https", &http.Client{Transport: tr, Timeout: 10 * time.Second}, base)
	for i := range 30 {
		if got, want := s.get(t, fmt.Sprintf("/s%d", i)), fmt.Sprintf("hello from /s%d\n", i); got != want {
			t.Fatalf("GET /s%d = %q, want %q", i, got, want)
		}
		if i%4 == 0 {
			tr.CloseIdleConnections() // the next request needs a new connection
		}
	}
	if got, want := s.get(t, "/env"), "FD_COUNT=4\nFD_NAMES=stdin:stdout:stderr:https\n"; got != want {
		t.Errorf("the workload's FD_COUNT and FD_NAMES:\n%s\nwant:\n%s", got, want)
	}
	tr.CloseIdleConnections()
	s.cancel()
	if r := s.wait(t, 5*time.Second); !errors.Is(r.err, engine.ErrInterrupted) {
		t.Errorf("Run() after cancel = %d, %v; want ErrInterrupted", r.status, r.err)
	}
}
