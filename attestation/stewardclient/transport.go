package stewardclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// HTTPClient returns an http.Client for a steward that trusts, for https,
// the CA certificates in the PEM file caFile, or the system's roots when
// caFile is "". It does not use proxies from the environment: a steward is
// reached directly; and it follows no redirect. Timeouts come from each
// call's context.
func HTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("steward CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("steward CA %s holds no PEM certificate: give the steward's CA certificate (ca.crt in its data directory, or GET /v1/ca)", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// A steward's answer is its own: a redirect is not followed (it is an
	// answer other than 200, an error).
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}
