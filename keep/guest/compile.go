package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
)

// errNotCached is compile's error when it may only load (read is nil) and
// the cache holds no code of the module that the engine takes.
var errNotCached = errors.New("the module's code is not in the module cache")

// compile compiles the module whose sha256 digest is digest, through the
// node's module cache in cacheDir when there is one and the engine can
// precompile. It also returns what Ready.ModuleCache reports. A cache that
// cannot be used never fails the Keep: it compiles without it, and the
// status says why. read gives the module's bytes, which a cache hit never
// needs (see openModule); a nil read only loads what the cache holds, and
// anything else is errNotCached.
func compile(ctx context.Context, eng engine.Engine, cacheDir string, read func() ([]byte, error), digest string) (engine.Module, string, error) {
	if read == nil {
		m, err := loadCached(ctx, eng, cacheDir, digest)
		return m, keep.CacheHit, err
	}
	compileModule := func(ctx context.Context) (engine.Module, error) {
		wasm, err := read()
		if err != nil {
			return nil, err
		}
		return eng.Compile(ctx, wasm)
	}
	pc, ok := eng.(engine.Precompiler)
	if cacheDir == "" || !ok {
		status := keep.CacheOff
		if cacheDir != "" {
			status += ": engine " + eng.Name() + " cannot precompile"
		}
		m, err := compileModule(ctx)
		return m, status, err
	}
	cache, err := modulecache.Open(cacheDir)
	if err != nil {
		m, cerr := compileModule(ctx)
		return m, keep.CacheOff + ": " + err.Error(), cerr
	}
	defer cache.Close()

	key := moduleKey(pc.Fingerprint(), digest)
	var (
		module     engine.Module
		compileErr error
	)
	build := func() ([]byte, error) {
		module, compileErr = compileModule(ctx)
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
				return m, keep.CacheHit, nil
			}
			// The entry is intact but the engine refuses it (made
			// on another CPU, or by an engine whose fingerprint
			// missed a setting): replace it, once.
			unusable = lerr
			_ = cache.Remove(key, res.Entry)
			res.Entry.Close()
			continue
		case module != nil:
			status := keep.CacheMiss
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
			m, cerr := compileModule(ctx)
			return m, keep.CacheOff + ": " + err.Error(), cerr
		}
	}
	m, err := compileModule(ctx)
	return m, keep.CacheMiss + ": not stored: the engine refuses what the cache holds: " + unusable.Error(), err
}

// loadCached loads the code of the module whose digest is digest from the
// cache in cacheDir, or returns errNotCached. It never compiles, and
// removes nothing (a hit marks the entry used, as every hit does): an
// entry that is damaged, or that the engine refuses, is left for compile
// to replace, and to report.
func loadCached(ctx context.Context, eng engine.Engine, cacheDir, digest string) (engine.Module, error) {
	m, _, err := loadCachedEntry(ctx, eng, cacheDir, digest)
	return m, err
}

// loadedEntry is the file a module was loaded from: its path, and its
// stamps (entryStamps) when it was verified.
type loadedEntry struct {
	path, stamps string
}

// entryStamps is what identifies the cache entry at path and changes with
// any write, truncation or replacement of it: fileKey's stamps (device,
// inode, size, mtime, ctime). "" when path cannot be read.
func entryStamps(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	k, _ := statKey(fi, path, "entry", true)
	return k
}

// unchanged reports whether the file at the entry's path is still the one
// that was verified, unwritten since.
func (l loadedEntry) unchanged() bool {
	return l.stamps != "" && entryStamps(l.path) == l.stamps
}

// loadCachedEntry is loadCached, and the entry it loaded.
func loadCachedEntry(ctx context.Context, eng engine.Engine, cacheDir, digest string) (engine.Module, loadedEntry, error) {
	pc, ok := eng.(engine.Precompiler)
	if cacheDir == "" || !ok {
		return nil, loadedEntry{}, errNotCached
	}
	cache, err := modulecache.Open(cacheDir)
	if err != nil {
		return nil, loadedEntry{}, errNotCached
	}
	defer cache.Close()
	e, err := cache.Peek(moduleKey(pc.Fingerprint(), digest))
	if err != nil {
		return nil, loadedEntry{}, errNotCached
	}
	defer e.Close()
	// The verified file (its descriptor's), before anything reads it.
	var loaded loadedEntry
	loaded.stamps = entryStamps(e.Path())
	loaded.path, _ = os.Readlink(e.Path())
	m, err := pc.Load(ctx, e.Path())
	if err != nil {
		return nil, loadedEntry{}, errNotCached
	}
	return m, loaded, nil
}

// recalledDigest is what the module cache in cacheDir recorded of a module
// file with the stamps the Keep's module file has (fileKey of kind
// "workload", without the device: every container made from one image
// layer has an overlay mount of its own of the same file): the digest it
// was measured as, "" if none; key is "" when there is no cache or the
// file has no stamps. A recalled digest is never trusted: the Keep
// measures the file all the same (prepareRecalled).
type recalledDigest struct {
	cacheDir, key, digest string
}

// recallDigest looks up what the cache in cacheDir recorded of the file f.
func recallDigest(cacheDir string, f *os.File) recalledDigest {
	if cacheDir == "" {
		return recalledDigest{}
	}
	key, err := fileKey(f, "workload", false)
	if err != nil {
		return recalledDigest{}
	}
	r := recalledDigest{cacheDir: cacheDir, key: key}
	cache, err := modulecache.Open(cacheDir)
	if err != nil {
		return r
	}
	defer cache.Close()
	if e, err := cache.Get(key); err == nil {
		r.digest = storedDigest(e)
		e.Close()
	}
	return r
}

// record records that the file f measured as digest, beside what the
// caller goes on with, unless that is what it recalled already or its
// stamps changed since recallDigest (the file changed while it was
// measured); the function it returns waits until that is done. A failure
// only costs the next start its head start.
func (r recalledDigest) record(f *os.File, digest string) (wait func()) {
	if r.key == "" || digest == r.digest {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if now, err := fileKey(f, "workload", false); err != nil || now != r.key {
			return
		}
		cache, err := modulecache.Open(r.cacheDir)
		if err != nil {
			return
		}
		defer cache.Close()
		if r.digest != "" {
			_ = cache.Remove(r.key, nil) // what it recalled was wrong
		}
		// Stored under the key's lock, as every entry is: another Keep's
		// store cleans up only the files of keys nobody holds.
		_, _ = cache.Fetch(context.Background(), r.key, func() ([]byte, error) { return []byte(digest + "\n"), nil })
	}()
	return func() { <-done }
}

// storedDigest is the digest a cache entry of a file's digest holds (a
// digest and a newline), "" when it holds anything else.
func storedDigest(e *modulecache.Entry) string {
	b, err := e.ReadAll()
	if d, ok := strings.CutSuffix(string(b), "\n"); err == nil && ok && isSHA256Digest(d) {
		return d
	}
	return ""
}

// measuredModule is a workload's module file, open, and measured: its sha256
// digest is read as a stream, without holding its bytes, because a warm
// start needs the digest only (the cache holds the module's code, under
// its digest); a compile reads the bytes again, from the same open file,
// and checks them against the digest.
type measuredModule struct {
	f      *os.File
	digest string
}

// openModule opens and measures the module at path.
func openModule(path string) (*measuredModule, error) {
	f, err := openModuleFile(path)
	if err != nil {
		return nil, err
	}
	return measureModule(f)
}

// openModuleFile opens the module at path, to measure (measureModule).
func openModuleFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	return f, nil
}

// measureModule measures the module open as f, which it takes: f is closed
// when measuring fails, else by the measuredModule's Close.
func measureModule(f *os.File) (*measuredModule, error) {
	path := f.Name()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 64<<10)); err != nil {
		f.Close()
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	return &measuredModule{f: f, digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

// read reads the module's bytes: those it measured, or an error.
func (m *measuredModule) read() ([]byte, error) {
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read module %s: %w", m.f.Name(), err)
	}
	wasm, err := io.ReadAll(m.f)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", m.f.Name(), err)
	}
	if sum := sha256.Sum256(wasm); "sha256:"+hex.EncodeToString(sum[:]) != m.digest {
		return nil, fmt.Errorf("module %s changed while the Keep read it: it was measured as %s; start the container again", m.f.Name(), m.digest)
	}
	return wasm, nil
}

// Close closes the module file.
func (m *measuredModule) Close() error { return m.f.Close() }

// moduleKey is the cache key of a module's native code: the module's
// digest and the engine's fingerprint, hashed into a file name.
func moduleKey(fingerprint, digest string) string {
	sum := sha256.Sum256([]byte("enarx module\x00" + fingerprint + "\x00" + digest))
	return "module-" + hex.EncodeToString(sum[:])
}
