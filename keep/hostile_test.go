package keep

import (
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// TestHostileInputKeepConfig: what the Keep refuses of its config, each
// error naming the container and the field.
func TestHostileInputKeepConfig(t *testing.T) {
	valid := func() Config {
		return Config{
			ID:       "c",
			Workload: workload.Workload{Module: "/m.wasm", Args: []string{"m"}, Env: []string{"A=1"}, Preopens: []engine.Preopen{{HostPath: "/data", GuestPath: "/data"}}, Sockets: []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: ":80"}}},
		}
	}
	if c := valid(); c.Validate() != nil {
		t.Fatalf("valid config refused: %v", c.Validate())
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"NUL in an argument", func(c *Config) { c.Args = append(c.Args, "a\x00b") }, `argument 1 "a\x00b" contains a NUL byte`},
		{"env entry without =", func(c *Config) { c.Env = append(c.Env, "NOVALUE") }, `environment entry 1 "NOVALUE" is not KEY=value`},
		{"env entry with a NUL", func(c *Config) { c.Env = []string{"A=\x00"} }, "not KEY=value without a NUL byte"},
		{"env entry without a name", func(c *Config) { c.Env = []string{"=x"} }, "not KEY=value"},
		{"null stream", func(c *Config) { c.NullStdio = []string{"stdlog"} }, `null_stdio: "stdlog" is not stdin, stdout or stderr`},
		{"relative preopen", func(c *Config) { c.Preopens[0].HostPath = "data" }, "both paths must be absolute"},
		{"relative guest path", func(c *Config) { c.Preopens[0].GuestPath = "data" }, "both paths must be absolute"},
		{"guest path with ':' next to sockets", func(c *Config) { c.Preopens[0].GuestPath = "/a:b" }, "cannot contain ':'"},
		{"negative memory limit", func(c *Config) { c.MemoryLimit = -1 }, "memory limit -1 is negative"},
		{"relative module cache", func(c *Config) { c.ModuleCache = "modules" }, `module cache "modules" is not absolute`},
		{"relative steward CA", func(c *Config) { c.Steward = &nodepolicy.Steward{Name: "s", URL: "https://s", CA: "ca.pem"} }, `ca = "ca.pem": give the absolute path`},
		{"steward over http elsewhere", func(c *Config) {
			c.Steward = &nodepolicy.Steward{Name: "s", URL: "http://10.0.0.1", CA: "/ca.pem", InsecureHTTP: true}
		}, "plain http is allowed only to a loopback address"},
	} {
		cfg := valid()
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), `keep config "c": `) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming the container and saying %q", c.name, err, c.want)
		}
	}
	// Without sockets, FD_NAMES is not set and ':' is allowed.
	cfg := valid()
	cfg.Sockets, cfg.Preopens[0].GuestPath = nil, "/a:b"
	if err := cfg.Validate(); err != nil {
		t.Errorf("guest path with ':' without sockets: %v", err)
	}
}
