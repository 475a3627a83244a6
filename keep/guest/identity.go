package guest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
	"github.com/enarx/containerd-shim-enarx/version"
)

// identity is who a Keep is: a key pair made fresh at start, the evidence
// that binds its public key, the workload and the runtime into the TEE's
// report, and the certificate chain a Steward issued to the key (none
// without a Steward). The private key never leaves the Keep and is never
// logged.
type identity struct {
	provider attestation.Provider
	key      *ecdsa.PrivateKey
	// inputs are the evidence inputs without a nonce.
	inputs attestation.Inputs
	// evidence is the Keep's evidence at start, without a nonce.
	evidence *attestation.Evidence
	// chain is the PEM certificate chain of the Keep's Steward: the Keep's
	// certificate, then the Steward's CA as the node policy pins it (see
	// certify); nil without a Steward.
	chain []byte
	// attestTime is what making the key and the evidence took, and
	// certifyTime what getting the certificate took.
	attestTime, certifyTime time.Duration
}

// newIdentity makes the identity of the Keep that runs the workload whose
// digest is workloadDigest under cfg, on the backend called backend whose
// provider asks the TEE for reports. An error says which step failed: the
// backend's (the key, the runtime digest, the TEE's report) or certifying
// with the Steward.
func newIdentity(ctx context.Context, cfg keep.Config, workloadDigest, backend string, provider attestation.Provider) (*identity, error) {
	began := time.Now()
	id, err := attestedKey(cfg, workloadDigest, provider)
	if err == nil {
		id.evidence, err = id.evidenceWith(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%s backend: %w", backend, err)
	}
	id.attestTime = time.Since(began)
	if cfg.Steward != nil {
		began = time.Now()
		if id.chain, err = certify(ctx, cfg, id); err != nil {
			return nil, fmt.Errorf("certify the Keep: %w", err)
		}
		id.certifyTime = time.Since(began)
	}
	return id, nil
}

// attestedKey makes the key pair and the evidence inputs of an identity.
func attestedKey(cfg keep.Config, workloadDigest string, provider attestation.Provider) (*identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate keep key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode keep public key: %w", err)
	}
	runtimeDigest, err := executableDigest(cfg.ModuleCache)
	if err != nil {
		return nil, err
	}
	configDigest, err := digestJSON(cfg)
	if err != nil {
		return nil, err
	}
	return &identity{
		provider: provider,
		key:      key,
		inputs: attestation.Inputs{
			KeepPublicKey:  pub,
			WorkloadDigest: workloadDigest,
			RuntimeDigest:  runtimeDigest,
			RuntimeVersion: version.Version,
			ConfigDigest:   configDigest,
		},
	}, nil
}

// evidenceWith asks the TEE for fresh evidence, with nonce bound when given.
func (id *identity) evidenceWith(ctx context.Context, nonce []byte) (*attestation.Evidence, error) {
	in := id.inputs
	in.Nonce = nonce
	return attestation.Collect(ctx, id.provider, in)
}

// executableDigest is the runtime digest: sha256 of the running binary, the
// runtime binary the Keep runs from (Binary). Hashing its 40 MB takes about
// 46 ms, on the path of every start once the module comes from the cache, so
// the digest is cached in cacheDir (the module cache; "" for none): see
// fileDigest.
func executableDigest(cacheDir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("runtime digest: %w", err)
	}
	// /proc/self/exe is the file this process runs, even when exe has
	// been replaced since (an upgrade renames a new binary over it).
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		if f, err = os.Open(exe); err != nil {
			return "", fmt.Errorf("runtime digest: %w", err)
		}
	}
	defer f.Close()
	digest, _, err := fileDigest(f, cacheDir)
	if err != nil {
		return "", fmt.Errorf("runtime digest of %s: %w", exe, err)
	}
	return digest, nil
}

// fileDigest is "sha256:" of the file f, cached in cacheDir when it is not
// "" and usable; hit reports that the digest came from the cache.
//
// The cache key is the file's identity and change stamps from fstat of f
// itself: device, inode, size, mtime and ctime. Any write to the file, or a
// new file in its place, changes the ctime (or the inode), which no user can
// set back — the kernel sets it to the current time, and only root can set
// the clock — so a changed binary gets a new key and is hashed again. The entry is trusted as far as
// the cache directory is: modulecache.Open refuses one that anyone but
// root could write, and root could replace the binary itself. Entries are
// checked for damage by the cache and for their format here; anything wrong
// falls back to hashing.
func fileDigest(f *os.File, cacheDir string) (digest string, hit bool, err error) {
	if cacheDir == "" {
		digest, err = hashFile(f)
		return digest, false, err
	}
	key, err := fileKey(f, "runtime", true)
	if err != nil {
		return "", false, err
	}
	cache, err := modulecache.Open(cacheDir)
	if err != nil {
		digest, err = hashFile(f)
		return digest, false, err
	}
	defer cache.Close()
	build := func() ([]byte, error) {
		d, err := hashFile(f)
		if err != nil {
			return nil, err
		}
		// Store only what is known to match the key: the file did not
		// change while it was hashed.
		if now, err := fileKey(f, "runtime", true); err != nil || now != key {
			return nil, errors.New("the file changed while it was hashed")
		}
		digest = d
		return []byte(d + "\n"), nil
	}
	// A failure of the cache only costs hashing; an entry that is not a
	// digest is replaced, once.
	for attempt := 0; attempt < 2 && digest == ""; attempt++ {
		res, _ := cache.Fetch(context.Background(), key, build)
		if res.Entry == nil {
			break
		}
		if d := storedDigest(res.Entry); d != "" {
			res.Entry.Close()
			return d, true, nil
		}
		_ = cache.Remove(key, res.Entry)
		res.Entry.Close()
	}
	if digest != "" {
		// Hashed; storing it may have failed, which costs only time.
		return digest, false, nil
	}
	digest, err = hashFile(f)
	return digest, false, err
}

// fileKey is the cache key of what is recorded of the file f, kind (a
// runtime's or a workload's digest), under its identity and change stamps
// from fstat of f itself: its device (when withDevice), inode, size, mtime
// and ctime.
func fileKey(f *os.File, kind string, withDevice bool) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	return statKey(fi, f.Name(), kind, withDevice)
}

// statKey is fileKey of the file whose status is fi, named name.
func statKey(fi os.FileInfo, name, kind string, withDevice bool) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%s: no inode information", name)
	}
	var dev uint64
	if withDevice {
		dev = st.Dev
	}
	id := fmt.Sprintf("enarx %s\x00%d %d %d %d.%09d %d.%09d", kind, dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	sum := sha256.Sum256([]byte(id))
	return kind + "-" + hex.EncodeToString(sum[:16]), nil
}

// hashFile is "sha256:" of the file f, read from its start.
func hashFile(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// isSHA256Digest reports whether d is "sha256:" and 64 lowercase hex digits.
func isSHA256Digest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// digestJSON is "sha256:" of the JSON encoding of v (Go encodes struct
// fields in a fixed order, so the encoding is canonical for a Config).
func digestJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode keep config: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
