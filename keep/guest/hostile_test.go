package guest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// TestHostileInputTruncatedCacheEntry truncates the module cache's entry
// of a module at every interesting length: the Keep recompiles, never
// hands the damaged bytes to the engine, says so in its cache status, and
// the next start is a hit again.
func TestHostileInputTruncatedCacheEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod")
	path := filepath.Join(dir, moduleKey("v1", "sha256:mod")+".entry")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 1, 8, st.Size() / 2, st.Size() - 24, st.Size() - 23, st.Size() - 1} {
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		e := &precompiler{fingerprint: "v1"}
		_, status := compileWith(t, e, dir, "mod")
		if !strings.HasPrefix(status, keep.CacheMiss+": replaced module cache: entry ") || !strings.Contains(status, "is damaged") || e.loads != 0 || e.compiles != 1 {
			t.Errorf("entry truncated to %d bytes: status %q, %d loads, %d compiles; want a recompile that says it replaced the damaged entry", size, status, e.loads, e.compiles)
		}
		if _, status := compileWith(t, &precompiler{fingerprint: "v1"}, dir, "mod"); status != keep.CacheHit {
			t.Errorf("after the rebuild of an entry truncated to %d bytes: status %q, want a hit", size, status)
		}
	}
	// A cache directory that is a file: the Keep compiles without it.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, status, err := compile(context.Background(), &precompiler{fingerprint: "v1"}, file, bytesOf([]byte("mod")), "sha256:mod"); err != nil || !strings.HasPrefix(status, keep.CacheOff+": ") {
		t.Errorf("cache directory a file: status %q, %v; want off with the reason", status, err)
	}
}
