package steward

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"
)

// caLifetime is the validity of a new steward CA.
const caLifetime = 10 * 365 * 24 * time.Hour

// dataDir is what a steward keeps in its data directory.
type dataDir struct {
	cfg      Config
	caKey    *ecdsa.PrivateKey
	caCert   *x509.Certificate
	tokenKey *ecdsa.PrivateKey
}

// openDataDir creates dir and the files it lacks (steward.toml, policy.toml,
// ca.key, ca.crt, token.key), then reads them.
func openDataDir(ctx context.Context, dir string, now time.Time) (*dataDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("steward: data directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("steward: data directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("steward: data directory %s is not a directory", dir)
	} else if fi.Mode().Perm()&0o077 != 0 {
		log.G(ctx).Warnf("steward: data directory %s is accessible to other users (mode %04o); it holds the CA and token keys: chmod 0700 %s", dir, fi.Mode().Perm(), dir)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ConfigFile, defaultConfig}, {PolicyFile, defaultPolicy}} {
		path := filepath.Join(dir, f.name)
		created, err := writeIfMissing(path, f.data, 0o644)
		if err != nil {
			return nil, fmt.Errorf("steward: %w", err)
		}
		if created {
			log.G(ctx).Infof("steward: wrote the default %s", path)
		}
	}
	d := &dataDir{}
	var err error
	if d.cfg, err = LoadConfig(filepath.Join(dir, ConfigFile)); err != nil {
		return nil, err
	}
	if d.caKey, d.caCert, err = openCA(ctx, dir, now); err != nil {
		return nil, err
	}
	if d.tokenKey, _, err = openKey(ctx, filepath.Join(dir, TokenKey), "remove it to make a new token key (tokens issued with the old key will no longer verify)"); err != nil {
		return nil, err
	}
	return d, nil
}

// openCA reads ca.key and ca.crt, creating those that are missing.
func openCA(ctx context.Context, dir string, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	_, keyErr := os.Stat(keyPath)
	_, certErr := os.Stat(certPath)
	if errors.Is(keyErr, fs.ErrNotExist) && certErr == nil {
		return nil, nil, fmt.Errorf("steward: %s exists without its key %s: restore %s from a backup, or remove %s to make a new CA (Keep certificates of the old CA will no longer verify)", certPath, keyPath, CAKeyFile, CACertFile)
	}
	key, _, err := openKey(ctx, keyPath, fmt.Sprintf("restore it from a backup, or remove %s and %s to make a new CA (Keep certificates of the old CA will no longer verify)", CAKeyFile, CACertFile))
	if err != nil {
		return nil, nil, err
	}
	if errors.Is(certErr, fs.ErrNotExist) {
		der, err := newCACertificate(key, now)
		if err != nil {
			return nil, nil, fmt.Errorf("steward: CA certificate: %w", err)
		}
		created, err := writeIfMissing(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("steward: %w", err)
		}
		if created {
			log.G(ctx).Infof("steward: created the CA certificate %s", certPath)
		}
	}
	fix := fmt.Sprintf("restore it from a backup, or remove it to make a new certificate for %s", CAKeyFile)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("steward: CA certificate: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("steward: %s is not one PEM CERTIFICATE: %s", certPath, fix)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("steward: %s: %w: %s", certPath, err, fix)
	}
	if !cert.IsCA || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("steward: %s is not a CA certificate for the key in %s: %s", certPath, keyPath, fix)
	}
	if !now.Before(cert.NotAfter) {
		log.G(ctx).Errorf("steward: the CA certificate %s expired at %s: no certificate can be issued; remove %s to make a new one", certPath, cert.NotAfter.Format(time.RFC3339), CACertFile)
	}
	return key, cert, nil
}

// newCACertificate returns a self-signed CA certificate for key, DER.
func newCACertificate(key *ecdsa.PrivateKey, now time.Time) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Enarx Steward CA", Organization: []string{"Enarx"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random serial number: %w", err)
	}
	b[0] &= 0x7f // positive in two's complement, as DER wants
	b[0] |= 0x40 // and 16 bytes long
	return new(big.Int).SetBytes(b), nil
}

// openKey reads an ECDSA P-256 private key (PKCS#8 PEM) from path, or
// creates one there (mode 0600) if the file does not exist. fix says how to
// repair a file that cannot be read.
func openKey(ctx context.Context, path, fix string) (*ecdsa.PrivateKey, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("steward: new key for %s: %w", path, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, fmt.Errorf("steward: new key for %s: %w", path, err)
		}
		created, err := writeIfMissing(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("steward: %w", err)
		}
		if created {
			log.G(ctx).Infof("steward: created the key %s", path)
			return key, true, nil
		}
		// Another steward created it first: read theirs.
		if data, err = os.ReadFile(path); err != nil {
			return nil, false, fmt.Errorf("steward: %w", err)
		}
	} else if err != nil {
		return nil, false, fmt.Errorf("steward: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.G(ctx).Warnf("steward: the private key %s is accessible to other users (mode %04o): chmod 0600 %s", path, fi.Mode().Perm(), path)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, false, fmt.Errorf("steward: %s is not one PEM PRIVATE KEY (PKCS#8): %s", path, fix)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// Not quoting err's details about the key's bytes.
		return nil, false, fmt.Errorf("steward: %s is not a valid PKCS#8 private key: %s", path, fix)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, false, fmt.Errorf("steward: %s is not an ECDSA P-256 key: %s", path, fix)
	}
	return key, false, nil
}

// writeIfMissing creates path with data and mode unless it exists; it says
// whether it did. The file appears whole or not at all.
func writeIfMissing(path string, data []byte, mode os.FileMode) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// Link, unlike rename, fails if path exists: a concurrent first start
	// does not replace a key another steward already uses.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
