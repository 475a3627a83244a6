package guest

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// FuzzModuleCacheEntry writes the input as the module cache's entry of a
// module and starts the module: the Keep always gets its module; bytes
// that are not an intact entry (the trailer's length and checksum) are
// never handed to the engine's Load, are replaced, and the status says so.
func FuzzModuleCacheEntry(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "modules")
	const wasm, digest, fingerprint = "mod", "sha256:mod", "v1"
	key := moduleKey(fingerprint, digest)
	entry := filepath.Join(dir, key+".entry")
	if _, status, err := compile(context.Background(), &precompiler{fingerprint: fingerprint}, dir, bytesOf([]byte(wasm)), digest); err != nil || status != keep.CacheMiss {
		f.Fatalf("first compile: %q, %v", status, err)
	}
	valid, err := os.ReadFile(entry)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, n := range []int{0, 1, len(valid) / 2, len(valid) - 24, len(valid) - 1} {
		f.Add(valid[:n])
	}
	flipped := bytes.Clone(valid)
	flipped[2] ^= 1
	f.Add(flipped)
	f.Add(append(bytes.Clone(valid), "junk"...))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(entry, data, 0o600); err != nil {
			t.Fatal(err)
		}
		e := &precompiler{fingerprint: fingerprint}
		m, status, err := compile(context.Background(), e, dir, bytesOf([]byte(wasm)), digest)
		if err != nil {
			t.Fatalf("compile: %v (status %q)", err, status)
		}
		if got := m.(fakeModule).code; got != wasm {
			// Only an intact entry of other code could do this: the
			// fuzzer would have to forge the checksum.
			if !intactEntry(key, data) {
				t.Fatalf("module %q from a damaged entry", got)
			}
			return
		}
		if intactEntry(key, data) {
			if e.loads == 0 {
				t.Fatalf("an intact entry was not loaded: status %q", status)
			}
			return
		}
		if e.loads != 0 {
			t.Fatalf("a damaged entry (%d bytes) was handed to Load: status %q", len(data), status)
		}
		if !strings.HasPrefix(status, keep.CacheMiss+": replaced module cache: entry "+key+" is damaged") {
			t.Fatalf("damaged entry: status %q, want a miss that says it replaced the damaged entry", status)
		}
		again := &precompiler{fingerprint: fingerprint}
		if _, status, err := compile(context.Background(), again, dir, bytesOf([]byte(wasm)), digest); err != nil || status != keep.CacheHit {
			t.Fatalf("after the rebuild: status %q, %v; want a hit", status, err)
		}
	})
}

// intactEntry reports whether b is an entry of key as the module cache
// writes them: data, then "ENXMC\0v1", the data's length and the xxHash64
// of key, NUL and data, little-endian.
func intactEntry(key string, b []byte) bool {
	if len(b) < 24 {
		return false
	}
	data, tr := b[:len(b)-24], b[len(b)-24:]
	h := xxhash.New()
	h.WriteString(key + "\x00")
	h.Write(data)
	return string(tr[:8]) == "ENXMC\x00v1" && binary.LittleEndian.Uint64(tr[8:16]) == uint64(len(data)) &&
		binary.LittleEndian.Uint64(tr[16:24]) == h.Sum64()
}
