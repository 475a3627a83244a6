package steward

import (
	"context"
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDataDirFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "steward")
	writeTestDataDir(t, dir, false) // the test policy; the other files are made by Open
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		ConfigFile: 0o644, PolicyFile: 0o644, CAKeyFile: 0o600, CACertFile: 0o644, TokenKey: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil || string(cfg) != string(defaultConfig) {
		t.Errorf("steward.toml is not the default: %v", err)
	}
	if got, want := s.Config(), DefaultConfig(); got != want {
		t.Errorf("config %+v, want the default %+v", got, want)
	}
	ca := s.CA()
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA IsCA %v, MaxPathLen %d", ca.IsCA, ca.MaxPathLen)
	}
	if d := ca.NotAfter.Sub(now); d < caLifetime-time.Hour || d > caLifetime+time.Hour {
		t.Errorf("CA valid for %s", d)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}

	// Reopening reuses the CA and the token key.
	s2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.CA().Equal(ca) {
		t.Error("a second Open made a new CA")
	}
	if s2.JWKS().Keys[0].KeyID != s.JWKS().Keys[0].KeyID {
		t.Error("a second Open made a new token key")
	}
	if s.JWKS().Keys[0].KeyID == "" || !s.JWKS().Keys[0].IsPublic() {
		t.Error("the JWKS key has no kid or is not public")
	}
}

func TestDataDirNewDirectoryMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	if _, err := Open(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %04o, want 0700", fi.Mode().Perm())
	}
	policy, err := os.ReadFile(filepath.Join(dir, PolicyFile))
	if err != nil || string(policy) != string(defaultPolicy) {
		t.Errorf("policy.toml is not the default: %v", err)
	}
}

func TestDataDirErrors(t *testing.T) {
	ctx := context.Background()
	fresh := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "steward")
		writeTestDataDir(t, dir, false)
		if _, err := Open(ctx, dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name   string
		change func(dir string) error
		want   []string
	}{
		{"unknown key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ConfigFile), []byte("listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n"), 0o644)
		}, []string{ConfigFile, `unknown key "listen_adress" (line 2, column 1)`}},
		{"bad duration", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, ConfigFile), []byte("token_ttl = \"an hour\"\n"), 0o644)
		}, []string{ConfigFile, "token_ttl"}},
		{"corrupted CA key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
		}, []string{CAKeyFile, "restore it from a backup"}},
		{"corrupted token key", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, TokenKey), []byte("garbage"), 0o600)
		}, []string{TokenKey, "remove it"}},
		{"corrupted CA certificate", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, CACertFile), []byte("garbage"), 0o644)
		}, []string{CACertFile, "PEM CERTIFICATE"}},
		{"CA certificate without its key", func(dir string) error {
			return os.Remove(filepath.Join(dir, CAKeyFile))
		}, []string{CACertFile, CAKeyFile, "restore"}},
		{"CA certificate of another key", func(dir string) error {
			other := fresh(t)
			b, err := os.ReadFile(filepath.Join(other, CACertFile))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, CACertFile), b, 0o644)
		}, []string{CACertFile, "not a CA certificate for the key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fresh(t)
			if err := tc.change(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Open(ctx, dir)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDataDirMissingCACertificateIsRemade(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "steward")
	writeTestDataDir(t, dir, false)
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.CA().PublicKey.(*ecdsa.PublicKey).Equal(s.CA().PublicKey) {
		t.Error("the new CA certificate is not for the existing key")
	}
}

func TestConfig(t *testing.T) {
	c := DefaultConfig()
	want := Config{
		Listen: "127.0.0.1:3443", Policy: PolicyFile, NonceTTL: 5 * time.Minute, TokenTTL: time.Hour,
		CertificateTTL: 24 * time.Hour, RequireNonce: true, MaxNonces: DefaultMaxNonces, ClientRate: DefaultClientRate,
	}
	if c != want {
		t.Fatalf("default config %+v, want %+v", c, want)
	}
	if c.issuer() != "http://127.0.0.1:3443" {
		t.Errorf("issuer %q", c.issuer())
	}
	// An empty file is the default configuration.
	if c, err := parseConfig(nil, "empty"); err != nil || c != want {
		t.Errorf("empty file: %+v, %v", c, err)
	}
	for _, bad := range []string{
		`listen = "3443"`,
		`nonce_ttl = "-1s"`,
		`tls_certificate = "cert.pem"`,
		`max_nonces = 0`,
		`require_nonce = "yes"`,
		`[sev-snp]`,
	} {
		if _, err := parseConfig([]byte(bad), "test.toml"); err == nil || !strings.Contains(err.Error(), "test.toml") {
			t.Errorf("%s: error %v, want one naming the file", bad, err)
		}
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "0.0.0.0:1": false, "[::]:1": false, "192.0.2.1:1": false,
	} {
		if loopback(addr) != want {
			t.Errorf("loopback(%q) = %v", addr, !want)
		}
	}
}
