package keep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
)

// compile compiles the module whose sha256 digest is digest, through the
// node's module cache in cacheDir when there is one and the engine can
// precompile. It also returns what Ready.ModuleCache reports. A cache that
// cannot be used never fails the Keep: it compiles without it, and the
// status says why.
func compile(ctx context.Context, eng engine.Engine, cacheDir string, wasm []byte, digest string) (engine.Module, string, error) {
	pc, ok := eng.(engine.Precompiler)
	if cacheDir == "" || !ok {
		status := CacheOff
		if cacheDir != "" {
			status += ": engine " + eng.Name() + " cannot precompile"
		}
		m, err := eng.Compile(ctx, wasm)
		return m, status, err
	}
	cache, err := modulecache.Open(cacheDir)
	if err != nil {
		m, cerr := eng.Compile(ctx, wasm)
		return m, CacheOff + ": " + err.Error(), cerr
	}
	defer cache.Close()

	key := moduleKey(pc.Fingerprint(), digest)
	var (
		module     engine.Module
		compileErr error
	)
	build := func() ([]byte, error) {
		module, compileErr = eng.Compile(ctx, wasm)
		if compileErr != nil {
			return nil, compileErr
		}
		return pc.Serialize(module)
	}
	var unusable error
	for attempt := 0; attempt < 2; attempt++ {
		res, err := cache.Fetch(ctx, key, build)
		switch {
		case compileErr != nil:
			return nil, "", compileErr
		case res.Entry != nil:
			m, lerr := pc.Load(ctx, res.Entry.Path())
			if lerr == nil {
				res.Entry.Close()
				return m, CacheHit, nil
			}
			// The entry is intact but the engine refuses it (made
			// on another CPU, or by an engine whose fingerprint
			// missed a setting): replace it, once.
			unusable = lerr
			_ = cache.Remove(key, res.Entry)
			res.Entry.Close()
			continue
		case module != nil:
			status := CacheMiss
			switch {
			case err != nil:
				status += ": not stored: " + err.Error()
			case unusable != nil:
				status += ": replaced an entry the engine refused: " + unusable.Error()
			case res.Replaced != nil:
				status += ": replaced " + res.Replaced.Error()
			}
			return module, status, nil
		default:
			// The cache failed before building (its lock, a read).
			m, cerr := eng.Compile(ctx, wasm)
			return m, CacheOff + ": " + err.Error(), cerr
		}
	}
	m, err := eng.Compile(ctx, wasm)
	return m, CacheMiss + ": not stored: the engine refuses what the cache holds: " + unusable.Error(), err
}

// moduleKey is the cache key of a module's native code: the module's
// digest and the engine's fingerprint, hashed into a file name.
func moduleKey(fingerprint, digest string) string {
	sum := sha256.Sum256([]byte("enarx module\x00" + fingerprint + "\x00" + digest))
	return "module-" + hex.EncodeToString(sum[:])
}
