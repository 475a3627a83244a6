package keep

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

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
		b, err := json.Marshal(Request{Config: &c})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"config":{"id":"x","module":"/m.wasm","sockets":[{}]}}`))
	f.Add([]byte(`{"config":null}`))
	f.Add([]byte(`{"config":{"memory_limit":1e99}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
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
		b, err := json.Marshal(Request{Config: &cfg})
		if err != nil {
			t.Fatalf("a valid config does not encode: %v", err)
		}
		var back Request
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
