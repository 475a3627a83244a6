package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/modulecache"
)

// keepReady is what the shim's "keep ready" log line says of one Keep.
type keepReady struct {
	cache           string
	compile, attest time.Duration
	workload        string
	line            string
}

// keepReadyField matches one field of a logrus text line: key=value or
// key="quoted value".
var keepReadyField = regexp.MustCompile(`\b(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// waitKeepReady finds the "keep ready" line of container id in what the
// daemon logged after offset. The shim's log reaches the daemon's through a
// FIFO, so it may trail ctr by a moment.
func waitKeepReady(t *testing.T, d *Daemon, offset int64, id string) keepReady {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(d.logSince(offset, 1000), "\n") {
			if !strings.Contains(line, `msg="keep ready"`) || !strings.Contains(line, "id="+id+" ") {
				continue
			}
			r := keepReady{line: line}
			for _, m := range keepReadyField.FindAllStringSubmatch(line, -1) {
				v := m[2]
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				switch m[1] {
				case "cache":
					r.cache = v
				case "compile":
					r.compile, _ = time.ParseDuration(v)
				case "attest":
					r.attest, _ = time.ParseDuration(v)
				case "workload":
					r.workload = v
				}
			}
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"keep ready\" line for %s in the daemon's log:\n%s", id, d.logSince(offset, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cacheTestPolicy writes a node policy whose Keeps use dir as their
// module cache, and returns its path for --runtime-config-path.
func cacheTestPolicy(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(p, []byte("module_cache = "+strconv.Quote(dir)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// moduleEntry is the path of the one module entry in the cache dir.
func moduleEntry(t *testing.T, dir string) string {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(dir, "module-*.entry"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("module entries in %s: %v, %v; want one", dir, entries, err)
	}
	return entries[0]
}

// TestModuleCache runs one module in successive containers with a module
// cache: the first start compiles and stores it, the next ones load it, and a
// damaged entry is rebuilt, never loaded.
func TestModuleCache(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		dir := filepath.Join(t.TempDir(), "modules")
		opts := []string{"--runtime-config-path", cacheTestPolicy(t, dir)}

		// start runs the module in a new container and returns what its
		// Keep said when ready.
		start := func(what string) keepReady {
			t.Helper()
			id := uniqueID("cache")
			offset := d.logSize()
			stdout, stderr, exit := runWasm(t, d, ns, opts, ref, id)
			if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
				t.Fatalf("%s: exit %d, stdout %q, stderr %q\n%s", what, exit, stdout, stderr, d.logSince(offset, 30))
			}
			r := waitKeepReady(t, d, offset, id)
			t.Logf("%s: cache=%q compile=%v attest=%v", what, r.cache, r.compile, r.attest)
			return r
		}

		cold := start("cold start")
		if cold.cache != "miss" {
			t.Fatalf("cold start: cache=%q, want miss\n%s", cold.cache, cold.line)
		}
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("cache directory %s: %v, %v; want mode 0700", dir, fi.Mode(), err)
		}
		entry := moduleEntry(t, dir)
		if runtime, _ := filepath.Glob(filepath.Join(dir, "runtime-*.entry")); len(runtime) != 1 {
			t.Errorf("runtime digest entries: %v, want one", runtime)
		}
		if fi, err := os.Stat(entry); err == nil {
			t.Logf("entry %s: %d bytes", filepath.Base(entry), fi.Size())
		}
		// The digest the module file measured as is recorded (under its
		// inode and times, the same in every container of the image), and
		// lets the next starts load the code while they measure the file.
		records, _ := filepath.Glob(filepath.Join(dir, "workload-*.entry"))
		if len(records) != 1 {
			t.Fatalf("workload digest records: %v, want one", records)
		}
		for i := range 2 {
			if r := start("warm start " + strconv.Itoa(i+1)); r.cache != "hit" || r.workload != cold.workload {
				t.Fatalf("warm start: cache=%q, workload %s; want hit, %s\n%s", r.cache, r.workload, cold.workload, r.line)
			}
		}

		// A record that is wrong is not believed: the Keep runs and
		// reports what it measured, and corrects the record.
		c, err := modulecache.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSuffix(filepath.Base(records[0]), ".entry")
		wrong := "sha256:" + strings.Repeat("0", 64)
		if err := c.Put(key, []byte(wrong+"\n")); err != nil {
			t.Fatal(err)
		}
		if r := start("wrong digest recorded"); r.cache != "hit" || r.workload != cold.workload {
			t.Fatalf("wrong digest recorded: cache=%q, workload %s; want hit, %s\n%s", r.cache, r.workload, cold.workload, r.line)
		}
		e, err := c.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		recorded, err := e.ReadAll()
		e.Close()
		c.Close()
		if err != nil || string(recorded) != cold.workload+"\n" {
			t.Fatalf("record after a wrong one: %q, %v; want %s", recorded, err, cold.workload)
		}

		// A flipped byte, then a truncation: each is detected, the
		// entry rebuilt, and the start after that a hit again.
		for _, damage := range []struct {
			name string
			do   func(path string) error
		}{
			{"flipped byte", func(p string) error {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				b[len(b)/2] ^= 0x01
				return os.WriteFile(p, b, 0o600)
			}},
			{"truncated", func(p string) error {
				fi, err := os.Stat(p)
				if err != nil {
					return err
				}
				return os.Truncate(p, fi.Size()/3)
			}},
		} {
			if err := damage.do(moduleEntry(t, dir)); err != nil {
				t.Fatal(err)
			}
			r := start("after " + damage.name)
			if !strings.HasPrefix(r.cache, "miss: replaced") || !strings.Contains(r.cache, "damaged") {
				t.Fatalf("after %s: cache=%q, want a miss that replaced the damaged entry\n%s", damage.name, r.cache, r.line)
			}
			if r := start("after the rebuild"); r.cache != "hit" {
				t.Fatalf("after the rebuild: cache=%q, want hit\n%s", r.cache, r.line)
			}
		}
	})
}

// TestModuleCacheRefused points the Keeps at a directory anyone may write:
// they refuse it, say why, and run the module all the same.
func TestModuleCacheRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	opts := []string{"--runtime-config-path", cacheTestPolicy(t, dir)}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		id := uniqueID("cache-refused")
		offset := d.logSize()
		stdout, stderr, exit := runWasm(t, d, ns, opts, ref, id)
		if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
			t.Fatalf("exit %d, stdout %q, stderr %q", exit, stdout, stderr)
		}
		r := waitKeepReady(t, d, offset, id)
		if !strings.HasPrefix(r.cache, "off: ") || !strings.Contains(r.cache, "lets others write it") {
			t.Fatalf("cache=%q, want off with the reason\n%s", r.cache, r.line)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused directory holds %d files", len(entries))
		}
	})
}
