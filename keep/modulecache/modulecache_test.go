package modulecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Environment of the helper process of TestFetchAcrossProcesses.
const (
	helperEnv    = "MODULECACHE_HELPER_DIR" // the cache directory
	helperLogEnv = "MODULECACHE_HELPER_LOG" // a file each build appends a line to
)

func openCache(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "modules"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fetch is Fetch that fails the test on error and returns the data, read
// back from the entry on a hit.
func fetch(t *testing.T, c *Cache, key string, build func() ([]byte, error)) (Result, []byte) {
	t.Helper()
	res, err := c.Fetch(context.Background(), key, build)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", key, err)
	}
	if res.Entry == nil {
		return res, nil
	}
	defer res.Entry.Close()
	data, err := res.Entry.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return res, data
}

func counting(n *atomic.Int32, data []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		n.Add(1)
		return data, nil
	}
}

func TestMissThenHit(t *testing.T) {
	c := openCache(t)
	data := bytes.Repeat([]byte("native code "), 1000)
	var builds atomic.Int32
	res, _ := fetch(t, c, "k1", counting(&builds, data))
	if !res.Built || res.Entry != nil || builds.Load() != 1 {
		t.Fatalf("first Fetch: %+v, %d builds; want a build", res, builds.Load())
	}
	res, got := fetch(t, c, "k1", counting(&builds, data))
	if res.Entry == nil || res.Built || builds.Load() != 1 {
		t.Fatalf("second Fetch: %+v, %d builds; want a hit", res, builds.Load())
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("hit returned %d bytes, want the %d stored", len(got), len(data))
	}
	if _, err := c.Get("other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an absent key: %v, want ErrNotFound", err)
	}
	fi, err := os.Stat(filepath.Join(c.Dir(), "k1"+entrySuffix))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("entry mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(c.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
}

// TestEntryPath checks that the path handed to engines names the verified
// file even after a new entry is renamed over its name.
func TestEntryPath(t *testing.T) {
	c := openCache(t)
	if err := c.Put("k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	e, err := c.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := c.Put("k", []byte("new")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(e.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("old")) || int64(len(b)) != e.Size()+trailerSize {
		t.Fatalf("%s holds %q, want \"old\" and the trailer", e.Path(), b)
	}
}

// TestDamagedEntries checks that every kind of damage is detected, the entry
// removed, and Fetch rebuilds it.
func TestDamagedEntries(t *testing.T) {
	data := bytes.Repeat([]byte{0xAB, 0xCD, 0xEF}, 4096)
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"flipped data byte", func(t *testing.T, p string) { flip(t, p, 100) }},
		{"flipped trailer byte", func(t *testing.T, p string) { flip(t, p, int64(len(data))+12) }},
		{"truncated data", func(t *testing.T, p string) { truncate(t, p, int64(len(data))/2) }},
		{"truncated trailer", func(t *testing.T, p string) { truncate(t, p, int64(len(data))+trailerSize-1) }},
		{"empty", func(t *testing.T, p string) { truncate(t, p, 0) }},
		{"appended bytes", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("junk"))
			f.Close()
		}},
		{"another key's entry", func(t *testing.T, p string) {
			if err := os.Rename(filepath.Join(filepath.Dir(p), "other"+entrySuffix), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"writable by others", func(t *testing.T, p string) { os.Chmod(p, 0o622) }},
		{"owned by another user", func(t *testing.T, p string) {
			if err := os.Chown(p, 4242, 4242); err != nil {
				t.Skipf("chown: %v (needs root)", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := openCache(t)
			path := storeBoth(t, cache, data)
			c.damage(t, path)
			// Peek sees the damage and leaves the entry to Get (or
			// Fetch) to remove.
			var corrupt *CorruptError
			if _, err := cache.Peek("k"); !errors.As(err, &corrupt) {
				t.Fatalf("Peek of a damaged entry: %v, want a *CorruptError", err)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("Peek removed the damaged entry: %v", err)
			}
			_, err := cache.Get("k")
			if !errors.As(err, &corrupt) {
				t.Fatalf("Get of a damaged entry: %v, want a *CorruptError", err)
			}
			t.Logf("detected: %v", err)
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("damaged entry not removed: %v", err)
			}

			c.damage(t, storeBoth(t, cache, data))
			var builds atomic.Int32
			res, _ := fetch(t, cache, "k", counting(&builds, data))
			if !res.Built || res.Replaced == nil || builds.Load() != 1 {
				t.Fatalf("Fetch of a damaged entry: %+v, %d builds; want a rebuild that says what it replaced", res, builds.Load())
			}
			res, got := fetch(t, cache, "k", counting(&builds, data))
			if res.Entry == nil || !bytes.Equal(got, data) || builds.Load() != 1 {
				t.Fatalf("Fetch after the rebuild: %+v, %d builds; want a hit", res, builds.Load())
			}
		})
	}
}

// storeBoth stores data under "k" and "other" and returns the path of k's
// entry ("another key's entry" renames other's over it).
func storeBoth(t *testing.T, c *Cache, data []byte) string {
	t.Helper()
	for _, key := range []string{"k", "other"} {
		if err := c.Put(key, data); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(c.Dir(), "k"+entrySuffix)
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentFetch starts many first Fetches of one key at once: one
// builds, the others wait and read what it stored.
func TestConcurrentFetch(t *testing.T) {
	c := openCache(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	var builds atomic.Int32
	build := func() ([]byte, error) {
		builds.Add(1)
		time.Sleep(200 * time.Millisecond)
		return data, nil
	}
	const n = 16
	var wg sync.WaitGroup
	var hits atomic.Int32
	for range n {
		wg.Go(func() {
			res, err := c.Fetch(context.Background(), "k", build)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Entry != nil {
				hits.Add(1)
				b, err := res.Entry.ReadAll()
				res.Entry.Close()
				if err != nil || !bytes.Equal(b, data) {
					t.Errorf("hit: %d bytes, %v", len(b), err)
				}
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 || hits.Load() != n-1 {
		t.Fatalf("%d builds and %d hits of %d Fetches, want 1 build", builds.Load(), hits.Load(), n)
	}
}

// TestFetchAcrossProcesses has several processes (this test binary again)
// fetch one key at once: the flock makes one of them build it.
func TestFetchAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "modules")
	log := filepath.Join(t.TempDir(), "builds")
	const n = 4
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), helperEnv+"="+dir, helperLogEnv+"="+log)
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if builds := strings.Count(string(b), "\n"); builds != 1 {
		t.Fatalf("%d processes built the entry %d times, want once:\n%s", n, builds, b)
	}
	hits := 0
	for _, out := range outs {
		hits += strings.Count(out.String(), "helper: hit")
	}
	if hits != n-1 {
		t.Fatalf("%d hits, want %d", hits, n-1)
	}
}

// TestHelperProcess is the child of TestFetchAcrossProcesses.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper of TestFetchAcrossProcesses")
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Fetch(context.Background(), "shared", func() ([]byte, error) {
		f, err := os.OpenFile(os.Getenv(helperLogEnv), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(f, "built by %d\n", os.Getpid())
		f.Close()
		time.Sleep(300 * time.Millisecond)
		return []byte("shared data"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry != nil {
		res.Entry.Close()
		fmt.Println("helper: hit")
	}
}

// TestBudget checks that storing beyond the budget removes the least
// recently used entries, and that a hit counts as a use.
func TestBudget(t *testing.T) {
	c := openCache(t)
	data := make([]byte, 1000)
	entrySize := int64(len(data) + trailerSize)
	c.Budget = 3 * entrySize
	old := time.Now().Add(-time.Hour)
	for i, key := range []string{"a", "b", "c"} {
		if err := c.Put(key, data); err != nil {
			t.Fatal(err)
		}
		// a is the oldest, then b, then c.
		mtime := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(filepath.Join(c.Dir(), key+entrySuffix), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// Using a makes b the least recently used.
	e, err := c.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := c.Put("d", data); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		_, err := os.Stat(filepath.Join(c.Dir(), key+entrySuffix))
		if got := err == nil; got != want {
			t.Errorf("entry %s present: %v, want %v", key, got, want)
		}
	}
	// An entry larger than the budget is kept: it is the one in use.
	c.Budget = 10
	if err := c.Put("big", data); err != nil {
		t.Fatal(err)
	}
	names := entryNames(t, c.Dir())
	if len(names) != 1 || names[0] != "big" {
		t.Errorf("entries after storing beyond the budget: %v, want [big]", names)
	}
}

func entryNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range ents {
		if k, ok := strings.CutSuffix(e.Name(), entrySuffix); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestTempCleanup checks that the files of dead writers are removed, and
// those of a live writer (holding the key's lock) kept.
func TestTempCleanup(t *testing.T) {
	c := openCache(t)
	dead := filepath.Join(c.Dir(), "dead"+tempInfix+"123-456")
	live := filepath.Join(c.Dir(), "live"+tempInfix+"789-012")
	for _, p := range []string{dead, live} {
		if err := os.WriteFile(p, []byte("half an entry"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := c.lock(context.Background(), "live")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := c.Put("k", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead writer's %s: %v, want removed", filepath.Base(dead), err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live writer's %s: %v, want kept", filepath.Base(live), err)
	}
}

// TestRefusedDirectories checks that a directory others could write, or
// replace, is refused with a reason.
func TestRefusedDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make directories of other users")
	}
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		dir  string
		want string
	}{
		{"group-writable", mk("gw", 0o770, 0), "mode"},
		{"world-writable", mk("ww", 0o777, 0), "mode"},
		{"another user's", mk("other", 0o700, 4242), "owned by uid 4242"},
		{"under a world-writable parent", filepath.Join(mk("open", 0o777, 0), "modules"), "parent directory"},
		{"under another user's parent", filepath.Join(mk("theirs", 0o755, 4242), "modules"), "parent directory"},
		{"relative", "modules", "absolute"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache, err := Open(c.dir)
			if err == nil {
				cache.Close()
				t.Fatalf("Open(%s) succeeded, want a refusal", c.dir)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open(%s): %v, want it to mention %q", c.dir, err, c.want)
			}
		})
	}
	// A sticky world-writable parent (/tmp) is fine: others cannot
	// rename what root made there.
	sticky := mk("sticky", 0o777|os.ModeSticky, 0)
	cache, err := Open(filepath.Join(sticky, "modules"))
	if err != nil {
		t.Fatalf("cache under a sticky directory: %v", err)
	}
	cache.Close()
}

func TestKeys(t *testing.T) {
	c := openCache(t)
	for _, key := range []string{"", "../x", "a/b", "A", "k.entry", strings.Repeat("k", maxKeyLen+1)} {
		if err := c.Put(key, nil); err == nil {
			t.Errorf("Put(%q) succeeded, want an invalid key", key)
		}
	}
	if err := c.Put("module-"+strings.Repeat("0", 64), nil); err != nil {
		t.Errorf("Put of a module key: %v", err)
	}
}

// BenchmarkChecksum measures the checksum candidates over an entry of the
// size of a Go hello's native code (8.5 MB); the package documentation
// cites the figures.
func BenchmarkChecksum(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 8500000/16)
	b.Run("xxhash64", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			xxhash.Sum64(data)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sha256.Sum256(data)
		}
	})
}

// BenchmarkGet measures a hit on an 8.5 MB entry: open, verify, touch.
func BenchmarkGet(b *testing.B) {
	c, err := Open(filepath.Join(b.TempDir(), "modules"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Put("k", make([]byte, 8500000)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		e, err := c.Get("k")
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}
