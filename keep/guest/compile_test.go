package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
)

// precompiler is an engine whose "native code" is "native:" and the module
// bytes: enough to see what compile loads, compiles and stores.
type precompiler struct {
	fingerprint string
	compiles    int
	loads       int
	// refuse makes Load fail, as wasmtime does for code made elsewhere.
	refuse bool
}

type fakeModule struct{ code string }

func (fakeModule) Run(context.Context, engine.RunOptions) (int, error) { return 0, nil }

func (e *precompiler) Name() string { return "precompiler 1.0" }

func (e *precompiler) Compile(_ context.Context, wasm []byte) (engine.Module, error) {
	e.compiles++
	if bytes.HasPrefix(wasm, []byte("bad")) {
		return nil, errors.New("invalid module")
	}
	return fakeModule{code: string(wasm)}, nil
}

func (e *precompiler) Fingerprint() string { return e.fingerprint }

func (e *precompiler) Serialize(m engine.Module) ([]byte, error) {
	return []byte("native:" + m.(fakeModule).code + ";"), nil
}

func (e *precompiler) Load(_ context.Context, path string) (engine.Module, error) {
	e.loads++
	if e.refuse {
		return nil, errors.New("compiled for another CPU")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// What follows ';' is the cache's trailer.
	code, _, ok := bytes.Cut(bytes.TrimPrefix(b, []byte("native:")), []byte(";"))
	if !ok {
		return nil, fmt.Errorf("not native code: %q", b)
	}
	return fakeModule{code: string(code)}, nil
}

// plainEngine cannot precompile.
type plainEngine struct{}

func (plainEngine) Name() string { return "plain 1.0" }
func (plainEngine) Compile(_ context.Context, wasm []byte) (engine.Module, error) {
	return fakeModule{code: string(wasm)}, nil
}

func compileWith(t *testing.T, e engine.Engine, dir, wasm string) (engine.Module, string) {
	t.Helper()
	m, status, err := compile(context.Background(), e, dir, bytesOf([]byte(wasm)), "sha256:"+wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if got := m.(fakeModule).code; got != wasm {
		t.Fatalf("compile returned module %q, want %q", got, wasm)
	}
	return m, status
}

func TestCompileCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	first := &precompiler{fingerprint: "v1"}
	if _, status := compileWith(t, first, dir, "mod"); status != keep.CacheMiss || first.compiles != 1 {
		t.Fatalf("first start: status %q, %d compiles; want a miss", status, first.compiles)
	}
	// Another Keep: a fresh engine loads what the first stored.
	second := &precompiler{fingerprint: "v1"}
	if _, status := compileWith(t, second, dir, "mod"); status != keep.CacheHit || second.compiles != 0 || second.loads != 1 {
		t.Fatalf("second start: status %q, %d compiles, %d loads; want a hit", status, second.compiles, second.loads)
	}
	// Another engine version or setting does not load it.
	other := &precompiler{fingerprint: "v2"}
	if _, status := compileWith(t, other, dir, "mod"); status != keep.CacheMiss || other.compiles != 1 {
		t.Fatalf("other fingerprint: status %q, %d compiles; want a miss", status, other.compiles)
	}
	// Nor is another module's entry used.
	if _, status := compileWith(t, second, dir, "mod2"); status != keep.CacheMiss {
		t.Fatalf("other module: status %q, want a miss", status)
	}
}

func TestCompileCacheOff(t *testing.T) {
	e := &precompiler{fingerprint: "v1"}
	if _, status := compileWith(t, e, "", "mod"); status != keep.CacheOff {
		t.Errorf("no cache directory: status %q, want %q", status, keep.CacheOff)
	}
	if _, status := compileWith(t, plainEngine{}, t.TempDir(), "mod"); !strings.HasPrefix(status, keep.CacheOff+": engine plain 1.0 cannot precompile") {
		t.Errorf("engine without precompilation: status %q", status)
	}
	// A directory others can write is refused, and the Keep compiles.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	_, status := compileWith(t, e, open, "mod")
	if !strings.HasPrefix(status, keep.CacheOff+": ") || !strings.Contains(status, "lets others write it") {
		t.Errorf("world-writable cache: status %q, want off with the reason", status)
	}
}

func TestCompileErrorNotCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	e := &precompiler{fingerprint: "v1"}
	if _, _, err := compile(context.Background(), e, dir, bytesOf([]byte("bad module")), "sha256:bad"); err == nil || err.Error() != "invalid module" {
		t.Fatalf("compile of a bad module: %v, want the engine's error", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.entry"))
	if len(names) != 0 {
		t.Fatalf("a module that does not compile left entries: %v", names)
	}
}

func TestCompileReplacesRefusedEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod")
	// The entry verifies, but the engine refuses it: it is rebuilt.
	refusing := &precompiler{fingerprint: "v1", refuse: true}
	_, status := compileWith(t, refusing, dir, "mod")
	if !strings.HasPrefix(status, keep.CacheMiss+": replaced an entry the engine refused") || refusing.compiles != 1 {
		t.Fatalf("refused entry: status %q, %d compiles", status, refusing.compiles)
	}
	if _, status := compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod"); status != keep.CacheHit {
		t.Fatalf("after the rebuild: status %q, want a hit", status)
	}
}

func TestCompileReplacesDamagedEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod")
	path := filepath.Join(dir, moduleKey("v1", "sha256:mod")+".entry")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &precompiler{fingerprint: "v1"}
	_, status := compileWith(t, e, dir, "mod")
	if !strings.HasPrefix(status, keep.CacheMiss+": replaced module cache: entry") || e.loads != 0 {
		t.Fatalf("damaged entry: status %q, %d loads; want a rebuild that never loads it", status, e.loads)
	}
	if _, status := compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod"); status != keep.CacheHit {
		t.Fatalf("after the rebuild: status %q, want a hit", status)
	}
}

// TestFileDigestCache checks the runtime digest's cache: a hit for the same
// file, a new digest when the file changes even with its mtime restored.
func TestFileDigestCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	bin := filepath.Join(t.TempDir(), "shim")
	if err := os.WriteFile(bin, bytes.Repeat([]byte("runtime v1 "), 100000), 0o755); err != nil {
		t.Fatal(err)
	}
	digest := func() (string, bool) {
		t.Helper()
		f, err := os.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		want, err := hashFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, hit, err := fileDigest(f, dir)
		if err != nil {
			t.Fatal(err)
		}
		if d != want {
			t.Fatalf("fileDigest = %s, want %s", d, want)
		}
		return d, hit
	}
	d1, hit := digest()
	if hit {
		t.Fatal("first digest was a hit")
	}
	if d, hit := digest(); !hit || d != d1 {
		t.Fatalf("second digest: %s, hit %v; want a hit", d, hit)
	}

	// Rewrite the binary in place, same size, and put its mtime back:
	// the ctime still changes, so the key does.
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, bytes.Repeat([]byte("runtime v2 "), 100000), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(bin, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	d2, hit := digest()
	if hit || d2 == d1 {
		t.Fatalf("changed binary: %s, hit %v; want a new digest, hashed", d2, hit)
	}

	// An entry that is not a digest is not believed.
	putFileRecord(t, dir, bin, "runtime", true, "sha256:not-a-digest\n")
	if d, hit := digest(); hit || d != d2 {
		t.Fatalf("malformed entry: %s, hit %v; want the hashed digest", d, hit)
	}
	if d, hit := digest(); !hit || d != d2 {
		t.Fatalf("after a malformed entry: %s, hit %v; want a hit again", d, hit)
	}
}

// putFileRecord stores data in the cache in dir as what is recorded of the
// file at path (fileKey of kind).
func putFileRecord(t *testing.T, dir, path, kind string, withDevice bool, data string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key, err := fileKey(f, kind, withDevice)
	if err != nil {
		t.Fatal(err)
	}
	c, err := modulecache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Put(key, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

func TestExecutableDigest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	plain, err := executableDigest("")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		cached, err := executableDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if cached != plain {
			t.Fatalf("cached runtime digest %s, want %s", cached, plain)
		}
	}
}

// bytesOf is a module's bytes as compile reads them.
func bytesOf(wasm []byte) func() ([]byte, error) {
	return func() ([]byte, error) { return wasm, nil }
}

// TestMeasuredModule: a module file is measured by its digest, read only
// when it is compiled, and refused when what is read is not what was
// measured; a cache hit never reads it.
func TestMeasuredModule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(path, []byte("mod"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := openModule(path)
	if err != nil {
		t.Fatalf("openModule: %v", err)
	}
	defer m.Close()
	sum := sha256.Sum256([]byte("mod"))
	if want := "sha256:" + hex.EncodeToString(sum[:]); m.digest != want {
		t.Fatalf("digest %s, want %s", m.digest, want)
	}
	for range 2 {
		if b, err := m.read(); err != nil || string(b) != "mod" {
			t.Fatalf("read = %q, %v; want the module", b, err)
		}
	}

	dir := filepath.Join(t.TempDir(), "modules")
	if _, status, err := compile(context.Background(), &precompiler{fingerprint: "v1"}, dir, m.read, m.digest); err != nil || status != keep.CacheMiss {
		t.Fatalf("first compile: %q, %v; want a miss", status, err)
	}
	unread := func() ([]byte, error) { return nil, errors.New("read on a cache hit") }
	if _, status, err := compile(context.Background(), &precompiler{fingerprint: "v1"}, dir, unread, m.digest); err != nil || status != keep.CacheHit {
		t.Fatalf("second compile: %q, %v; want a hit that reads nothing", status, err)
	}

	// Changed in place after it was measured: not what the Keep measured.
	if err := os.WriteFile(path, []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.read(); err == nil || !strings.Contains(err.Error(), "changed while the Keep read it") {
		t.Fatalf("read of a changed module: %v, want refused", err)
	}
	if _, err := openModule(filepath.Join(t.TempDir(), "missing.wasm")); err == nil || !strings.Contains(err.Error(), "read module") {
		t.Fatalf("openModule of a missing file: %v", err)
	}
}

// TestPrepareRecalledDigest: a Keep whose module file the cache recalls
// loads the code of the recalled digest while it measures the file, and
// keeps it only when the measurement agrees; a recalled digest that is
// wrong, or whose code is not cached, never reaches Ready.
func TestPrepareRecalledDigest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	path := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(path, []byte("mod"), 0o644); err != nil {
		t.Fatal(err)
	}
	digestOf := func(b string) string {
		sum := sha256.Sum256([]byte(b))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	want := digestOf("mod")
	e := &precompiler{fingerprint: "v1"}
	cfg := keep.Config{ID: "recall", ModuleCache: dir}
	cfg.Module = path
	prep := func() *prepared {
		t.Helper()
		f, err := openModuleFile(path)
		if err != nil {
			t.Fatal(err)
		}
		enginec := make(chan engineMade, 1)
		enginec <- engineMade{eng: e}
		k, err := prepare(context.Background(), cfg, f, enginec)
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		if k.ready.WorkloadDigest != want || k.identity.inputs.WorkloadDigest != want {
			t.Fatalf("ready digest %s, attested %s; want %s", k.ready.WorkloadDigest, k.identity.inputs.WorkloadDigest, want)
		}
		if code := k.module.(fakeModule).code; code != "mod" {
			t.Fatalf("loaded the code of %q, want the module's", code)
		}
		return k
	}
	record := func(digest string) {
		t.Helper()
		putFileRecord(t, dir, path, "workload", false, digest+"\n")
	}
	recalled := func() string {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return recallDigest(dir, f).digest
	}

	if k := prep(); k.ready.ModuleCache != keep.CacheMiss || e.compiles != 1 {
		t.Fatalf("first start: cache %q, %d compiles; want a miss", k.ready.ModuleCache, e.compiles)
	}
	if d := recalled(); d != want {
		t.Fatalf("recalled %q after the first start, want %s", d, want)
	}
	// Measured as what it recalled (the path a Keep with a Steward
	// takes): the record is left alone, not written again.
	records, err := filepath.Glob(filepath.Join(dir, "workload-*.entry"))
	if err != nil || len(records) != 1 {
		t.Fatalf("workload records %v, %v; want one", records, err)
	}
	before, err := os.Stat(records[0])
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	recallDigest(dir, f).record(f, want)()
	f.Close()
	if after, err := os.Stat(records[0]); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("recording the recalled digest again rewrote the record (%v)", err)
	}
	if k := prep(); k.ready.ModuleCache != keep.CacheHit || e.compiles != 1 || e.loads != 1 {
		t.Fatalf("recalled start: cache %q, %d compiles, %d loads; want one load", k.ready.ModuleCache, e.compiles, e.loads)
	}

	// A wrong digest recalled, whose code is cached: the measurement wins.
	other := digestOf("other")
	if _, _, err := compile(context.Background(), e, dir, bytesOf([]byte("other")), other); err != nil {
		t.Fatal(err)
	}
	record(other)
	if k := prep(); k.ready.ModuleCache != keep.CacheHit {
		t.Fatalf("wrong digest recalled: cache %q, want the module's own code, cached", k.ready.ModuleCache)
	}
	if d := recalled(); d != want {
		t.Fatalf("recalled %q after a wrong one, want it corrected to %s", d, want)
	}

	// A recalled digest with no code cached: compiled from the file.
	record(digestOf("gone"))
	compiles := e.compiles
	if k := prep(); k.ready.ModuleCache != keep.CacheHit || e.compiles != compiles {
		t.Fatalf("uncached digest recalled: cache %q, %d compiles; want the module's cached code", k.ready.ModuleCache, e.compiles-compiles)
	}
	record(want)
	if err := os.WriteFile(filepath.Join(dir, moduleKey("v1", want)+".entry"), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k := prep(); k.ready.ModuleCache != keep.CacheMiss+": replaced module cache: entry "+moduleKey("v1", want)+" is damaged (7 bytes, shorter than a trailer)" || e.compiles != compiles+1 {
		t.Fatalf("recalled digest, damaged code: cache %q, %d compiles; want compiled again", k.ready.ModuleCache, e.compiles-compiles)
	}
}

// TestPreloadModule: a spare Keep loads the cached code of the digest it
// is given, and takes it once, for that digest and cache only; a digest
// or cache that is not one, or code not cached, preloads nothing.
func TestPreloadModule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	e := &precompiler{fingerprint: "v1"}
	sum := sha256.Sum256([]byte("mod"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if _, _, err := compile(context.Background(), e, dir, bytesOf([]byte("mod")), digest); err != nil {
		t.Fatal(err)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct{ name, cache, digest string }{
		{"not cached", dir, other},
		{"no digest", dir, "sha256:mod"},
		{"another algorithm", dir, "sha512:" + hex.EncodeToString(sum[:])},
		{"relative cache", "modules", digest},
		{"no cache", "", digest},
	} {
		if p := preloadModule(e, tc.cache, tc.digest); p != nil {
			t.Errorf("%s: preloaded %+v", tc.name, p)
		}
	}
	p := preloadModule(e, dir, digest)
	if p == nil {
		t.Fatal("nothing preloaded of a cached module")
	}
	if m := p.take(dir, other); m != nil {
		t.Errorf("taken for another digest: %v", m)
	}
	if m := p.take(dir+"2", digest); m != nil {
		t.Errorf("taken for another cache: %v", m)
	}
	if m := p.take(dir, digest); m == nil || m.(fakeModule).code != "mod" {
		t.Errorf("take(digest) = %v, want the cached module", m)
	}
	if m := p.take(dir, digest); m != nil {
		t.Errorf("taken twice")
	}
	var none *preloadedModule
	if m := none.take(dir, digest); m != nil {
		t.Errorf("nil preload took %v", m)
	}

	// An entry written since it was loaded (and verified) is not taken:
	// the start's own load finds it damaged, and replaces it.
	p = preloadModule(e, dir, digest)
	entries, _ := filepath.Glob(filepath.Join(dir, "*.entry"))
	if p == nil || len(entries) != 1 {
		t.Fatalf("preload %v, entries %v", p, entries)
	}
	b, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if err := os.WriteFile(entries[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	if m := p.take(dir, digest); m != nil {
		t.Errorf("taken after its entry was written: %v", m)
	}
}
