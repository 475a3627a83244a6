package keep

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// FuzzKeepConfig decodes the shim's request to a Keep as the Keep does and
// validates its config: a config that validates survives a JSON round trip
// (the shim encodes it, the Keep decodes it) and still validates; a refused
// one gets an error naming the Keep config.
func FuzzKeepConfig(f *testing.F) {
	full := Config{
		ID: "c1", Backend: nodepolicy.BackendNil, Steward: &nodepolicy.Steward{Name: "main", URL: "https://steward.example", CA: "/etc/ca.pem"},
		StateDir: "/run/bundle/enarx", ModuleCache: "/var/lib/modules", MemoryLimit: 64 << 20,
		Workload: workload.Workload{
			Module: "/run/bundle/rootfs/app.wasm", Entrypoint: "main", Args: []string{"/app.wasm", "x"},
			Env:       []string{"PATH=/", "A=b=c"},
			Preopens:  []engine.Preopen{{HostPath: "/run/bundle/rootfs", GuestPath: "/", ReadOnly: true}, {HostPath: "/data", GuestPath: "/data"}},
			Cwd:       "/data",
			NullStdio: []string{"stdout"},
			Sockets: []socketspec.Spec{
				{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "[::]:8443"},
				{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "db.example:5432"},
			},
			NetNS: "/var/run/netns/cni-1",
		},
	}
	for _, edit := range []func(c *Config){
		nil,
		func(c *Config) { *c = Config{ID: "min", Workload: workload.Workload{Module: "/m.wasm"}} },
		func(c *Config) { c.Module = "app.wasm" },
		func(c *Config) { c.Steward = &nodepolicy.Steward{Name: "x", URL: "ftp://x", CA: "/ca.pem"} },
		func(c *Config) {
			c.Steward = &nodepolicy.Steward{Name: "x", URL: "http://127.0.0.1:1", CA: "/ca.pem", InsecureHTTP: true}
		},
		func(c *Config) { c.NetNS, c.NewNetNS = "", true },
		func(c *Config) { c.Preopens[1].GuestPath = "/a:b" },
		func(c *Config) { c.Env = append(c.Env, "NOVALUE") },
		func(c *Config) { c.Args = append(c.Args, "a\x00b") },
		func(c *Config) { c.NullStdio = []string{"stdlog"} },
		func(c *Config) { c.Sockets[0].Addr = "example.com:80" },
		func(c *Config) { c.Backend = "sgx" },
		func(c *Config) { c.MemoryLimit = -1 },
	} {
		c := full
		c.Preopens = append([]engine.Preopen(nil), full.Preopens...)
		c.Sockets = append([]socketspec.Spec(nil), full.Sockets...)
		if edit != nil {
			edit(&c)
		}
		b, err := json.Marshal(request{Config: &c})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"config":{"id":"x","module":"/m.wasm","sockets":[{}]}}`))
	f.Add([]byte(`{"config":null}`))
	f.Add([]byte(`{"config":{"memory_limit":1e99}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&req); err != nil || req.Config == nil {
			return
		}
		cfg := *req.Config
		if err := cfg.Validate(); err != nil {
			if !strings.HasPrefix(err.Error(), "keep config") {
				t.Fatalf("error does not name the Keep config: %v", err)
			}
			return
		}
		b, err := json.Marshal(request{Config: &cfg})
		if err != nil {
			t.Fatalf("a valid config does not encode: %v", err)
		}
		var back request
		if err := json.Unmarshal(b, &back); err != nil || back.Config == nil {
			t.Fatalf("a valid config does not decode after encoding: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normalize(*back.Config), normalize(cfg)) {
			t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", *back.Config, cfg)
		}
		if err := back.Config.Validate(); err != nil {
			t.Fatalf("a valid config is refused after a round trip: %v", err)
		}
	})
}

// normalize makes empty and nil slices equal, as omitempty does.
func normalize(c Config) Config {
	for _, s := range []*[]string{&c.Env, &c.NullStdio} {
		if len(*s) == 0 {
			*s = nil
		}
	}
	if len(c.Preopens) == 0 {
		c.Preopens = nil
	}
	if len(c.Sockets) == 0 {
		c.Sockets = nil
	}
	return c
}

// FuzzModuleCacheEntry writes the input as the module cache's entry of a
// module and starts the module: the Keep always gets its module; bytes
// that are not an intact entry (the trailer's length and checksum) are
// never handed to the engine's Load, are replaced, and the status says so.
func FuzzModuleCacheEntry(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "modules")
	const wasm, digest, fingerprint = "mod", "sha256:mod", "v1"
	key := moduleKey(fingerprint, digest)
	entry := filepath.Join(dir, key+".entry")
	if _, status, err := compile(context.Background(), &precompiler{fingerprint: fingerprint}, dir, bytesOf([]byte(wasm)), digest); err != nil || status != CacheMiss {
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
		if !strings.HasPrefix(status, CacheMiss+": replaced module cache: entry "+key+" is damaged") {
			t.Fatalf("damaged entry: status %q, want a miss that says it replaced the damaged entry", status)
		}
		again := &precompiler{fingerprint: fingerprint}
		if _, status, err := compile(context.Background(), again, dir, bytesOf([]byte(wasm)), digest); err != nil || status != CacheHit {
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
