package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/enarx/containerd-shim-enarx/attestation/steward"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
)

// newStewardClient returns a client of the attestation service at url,
// trusting the CAs in caFile for https (the system's roots when "").
func newStewardClient(url, caFile string) (*stewardclient.Client, error) {
	hc, err := stewardclient.HTTPClient(caFile)
	if err != nil {
		return nil, err
	}
	return stewardclient.New(url, hc)
}

// defaultStewardDir is the steward's data directory when --data-dir is not
// given: /var/lib/enarx/steward for root, else under the user's data home.
func defaultStewardDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/enarx/steward"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "enarx", "steward")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "enarx", "steward")
	}
	return "enarx-steward"
}

func runSteward(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "steward", "[--data-dir DIR] [--listen HOST:PORT] [--policy FILE] [--reference-values FILE]",
		"Runs the attestation service: it issues single-use nonces (POST /v1/challenge), verifies\n"+
			"evidence into a signed attestation result (POST /v1/attest, a JWT whose keys are at\n"+
			"GET /v1/jwks), and certifies Keeps (POST /v1/csr, a PKCS#10 request carrying evidence;\n"+
			"its CA is GET /v1/ca). On first start it creates its data directory with steward.toml,\n"+
			"policy.toml, its CA and its token key. It serves plain HTTP on loopback unless\n"+
			"steward.toml names a TLS certificate. It prints its URL on stdout once it listens.")
	dir := fs.String("data-dir", defaultStewardDir(), "data `directory` (created on first start)")
	listen := fs.String("listen", "", "`host:port` to listen on, overriding steward.toml (port 0 picks a free one)")
	policy := fs.String("policy", "", "verifier policy `file`, overriding steward.toml")
	ref := fs.String("reference-values", "", "reference values `file`, overriding steward.toml and the policy")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("steward takes no arguments")
	}
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	srv, err := steward.Open(ctx, *dir, steward.WithConfig(func(c *steward.Config) {
		if *listen != "" {
			c.Listen = *listen
		}
		if *policy != "" {
			c.Policy = abs(*policy)
		}
		if *ref != "" {
			c.ReferenceValues = abs(*ref)
		}
	}))
	if err != nil {
		return err
	}
	cfg := srv.Config()
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	fmt.Fprintf(s.Stdout, "%s://%s\n", scheme, l.Addr())
	return srv.Serve(ctx, l)
}
