package nodepolicy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Policy
		// errs are substrings the error must contain; none means success.
		errs []string
	}{
		{name: "empty", doc: "", want: Policy{Backend: BackendAuto}},
		{name: "comments only", doc: "# nothing set\n", want: Policy{Backend: BackendAuto}},
		{name: "all settings", doc: "backend = \"sev-snp\"\nrequire_tee = true\ndefault_steward = \"main\"\n[stewards.main]\nurl = \"https://steward.example.com/api\"\nca = \"/etc/enarx/steward-ca.pem\"\n",
			want: Policy{Backend: BackendSEVSNP, RequireTEE: true, DefaultSteward: "main", Stewards: map[string]Steward{"main": {URL: "https://steward.example.com/api", CA: "/etc/enarx/steward-ca.pem"}}}},
		{name: "auto require", doc: "require_tee = true\n", want: Policy{Backend: BackendAuto, RequireTEE: true}},
		{name: "nil", doc: "backend = \"nil\"\n", want: Policy{Backend: BackendNil}},
		{name: "tdx", doc: "backend = \"tdx\"\n", want: Policy{Backend: BackendTDX}},
		{name: "http steward on loopback", doc: "[stewards.local]\nurl = \"http://127.0.0.1:8080\"\nca = \"/ca.pem\"\ninsecure_http = true\n",
			want: Policy{Backend: BackendAuto, Stewards: map[string]Steward{"local": {URL: "http://127.0.0.1:8080", CA: "/ca.pem", InsecureHTTP: true}}}},
		// containerd's CRI plugin passes the runtime's whole options table,
		// which may hold runtimeoptions' own TypeUrl.
		{name: "containerd TypeUrl ignored", doc: "TypeUrl = \"io.containerd.enarx.v1.policy\"\nbackend = \"tdx\"\n", want: Policy{Backend: BackendTDX}},

		{name: "unknown key", doc: "backend = \"tdx\"\nrequire_te = true\n",
			errs: []string{"/etc/enarx/policy.toml", `unknown setting "require_te" (line 2, column 1)`, "backend, require_tee, module_cache, compile_memory_limit, default_steward and [stewards.NAME]"}},
		{name: "unknown table", doc: "[keep]\nbackend = \"tdx\"\n",
			errs: []string{`unknown setting "keep`, "line 1", "[stewards.NAME] tables"}},
		{name: "syntax error", doc: "backend = \"tdx\"\n\nrequire_tee = yes\n",
			errs: []string{"/etc/enarx/policy.toml", "line 3, column 15", "require_tee = true"}},
		{name: "wrong type", doc: "require_tee = \"true\"\n",
			errs: []string{"line 1, column 15", `setting "require_tee"`, "boolean require_tee"}},
		{name: "duplicate key", doc: "backend = \"tdx\"\nbackend = \"nil\"\n", errs: []string{"line 2", "already defined"}},
		{name: "unknown backend", doc: "backend = \"sgx\"\n",
			errs: []string{`backend = "sgx" is not a backend`, `"auto", "nil", "sev-snp", "tdx"`}},
		{name: "backend case", doc: "backend = \"TDX\"\n", errs: []string{`backend = "TDX" is not a backend`}},
		{name: "nil with require_tee", doc: "backend = \"nil\"\nrequire_tee = true\n",
			errs: []string{`backend = "nil" contradicts require_tee = true`, "require_tee = false"}},
		{name: "steward relative", doc: "[stewards.s]\nurl = \"steward.example.com\"\nca = \"/ca.pem\"\n",
			errs: []string{`[stewards.s] url = "steward.example.com" is not an absolute http or https URL`}},
		{name: "steward scheme", doc: "[stewards.s]\nurl = \"ftp://steward.example.com\"\nca = \"/ca.pem\"\n", errs: []string{"not an absolute http or https URL"}},
		{name: "steward no host", doc: "[stewards.s]\nurl = \"https:///x\"\nca = \"/ca.pem\"\n", errs: []string{"not an absolute http or https URL"}},
		{name: "steward unparsable", doc: "[stewards.s]\nurl = \"http://[::1\"\nca = \"/ca.pem\"\n", errs: []string{"is not a URL", "absolute URL"}},
		{name: "steward over http", doc: "[stewards.s]\nurl = \"http://10.0.0.1:8080\"\nca = \"/ca.pem\"\ninsecure_http = true\n",
			errs: []string{"plain http is allowed only to a loopback address"}},
		{name: "steward over http on loopback, not marked insecure", doc: "[stewards.s]\nurl = \"http://127.0.0.1:8080\"\nca = \"/ca.pem\"\n",
			errs: []string{"insecure_http = true"}},
		{name: "steward over http to a name", doc: "[stewards.s]\nurl = \"http://localhost:8080\"\nca = \"/ca.pem\"\ninsecure_http = true\n",
			errs: []string{"loopback address"}},
		{name: "steward without a CA", doc: "[stewards.s]\nurl = \"https://s.example\"\n", errs: []string{`ca = "": give the absolute path of the steward's CA`}},
		{name: "steward ca relative", doc: "[stewards.s]\nurl = \"https://s.example\"\nca = \"ca.pem\"\n", errs: []string{`ca = "ca.pem"`}},
		{name: "steward with credentials", doc: "[stewards.s]\nurl = \"https://u:p@s.example\"\nca = \"/ca.pem\"\n", errs: []string{"without credentials"}},
		{name: "steward name", doc: "[stewards.\"Big Steward\"]\nurl = \"https://s.example\"\nca = \"/ca.pem\"\n", errs: []string{"a steward's name is"}},
		{name: "default steward not listed", doc: "default_steward = \"main\"\n", errs: []string{`default_steward = "main" names no steward`}},
		{name: "old steward key", doc: "steward = \"https://s.example\"\n", errs: []string{`unknown setting "steward"`, "[stewards.NAME] tables with url and ca"}},
		{name: "too large", doc: "# " + strings.Repeat("x", MaxSize) + "\n", errs: []string{"larger than 65536 bytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const file = "/etc/enarx/policy.toml"
			got, err := Parse(file, []byte(tc.doc))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				tc.want.Source = file
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Parse = %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", got)
			}
			if !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file", err)
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestParsePolicyWrapsTOMLErrors(t *testing.T) {
	_, err := Parse("p.toml", []byte("backend = \n"))
	if err == nil || errors.Unwrap(err) == nil {
		t.Fatalf("Parse error %v wraps nothing", err)
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(path, []byte("backend = \"nil\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := (Policy{Backend: BackendNil, Source: path}); !reflect.DeepEqual(p, want) {
		t.Fatalf("Load = %+v, want %+v", p, want)
	}

	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) = %v, want not a regular file", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", MaxSize+10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	if p.Backend != BackendAuto || p.RequireTEE || len(p.Stewards) != 0 || p.DefaultSteward != "" {
		t.Fatalf("Default = %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

// errNoSNP and errNoTDX are what a node without that TEE reports.
var (
	errNoSNP = errors.New("no /dev/sev-guest and no configfs-tsm SEV-SNP provider")
	errNoTDX = errors.New("no configfs-tsm TDX provider")
)

// node returns an available func for a node offering the given TEEs, and
// records which backends Choose asked about in asked.
func node(asked *[]string, tees ...string) func(string) error {
	return func(b string) error {
		*asked = append(*asked, b)
		for _, t := range tees {
			if t == b {
				return nil
			}
		}
		switch b {
		case BackendSEVSNP:
			return errNoSNP
		case BackendTDX:
			return errNoTDX
		}
		return errors.New("asked about " + b)
	}
}

func TestChoose(t *testing.T) {
	const file = "/etc/enarx/policy.toml"
	auto := Policy{Backend: BackendAuto, Source: file}
	autoReq := Policy{Backend: BackendAuto, RequireTEE: true, Source: file}
	nilP := Policy{Backend: BackendNil, Source: file}
	snp := Policy{Backend: BackendSEVSNP, Source: file}
	tdxReq := Policy{Backend: BackendTDX, RequireTEE: true, Source: file}

	tests := []struct {
		name      string
		policy    Policy
		requested string
		tees      []string // the TEEs the node offers
		want      string
		wantErr   error    // ErrBackendNotAllowed or ErrBackendUnavailable
		errs      []string // substrings of the error message
		causes    []error  // errors from available the error wraps
	}{
		// No request: the node's choice.
		{name: "auto picks sev-snp first", policy: auto, tees: []string{BackendSEVSNP, BackendTDX}, want: BackendSEVSNP},
		{name: "auto picks tdx", policy: auto, tees: []string{BackendTDX}, want: BackendTDX},
		{name: "auto falls back to nil", policy: auto, want: BackendNil},
		{name: "empty backend is auto", policy: Policy{}, tees: []string{BackendTDX}, want: BackendTDX},
		{name: "default policy without TEE", policy: Default(), want: BackendNil},
		{name: "requested auto is not set", policy: auto, requested: BackendAuto, tees: []string{BackendTDX}, want: BackendTDX},
		{name: "auto require_tee picks TEE", policy: autoReq, tees: []string{BackendTDX}, want: BackendTDX},
		{name: "auto require_tee without TEE", policy: autoReq, wantErr: ErrBackendUnavailable,
			errs:   []string{"require_tee = true", file, "sev-snp: " + errNoSNP.Error(), "tdx: " + errNoTDX.Error(), "set require_tee = false"},
			causes: []error{errNoSNP, errNoTDX}},
		{name: "node nil", policy: nilP, tees: []string{BackendSEVSNP}, want: BackendNil},
		{name: "node pins available TEE", policy: snp, tees: []string{BackendSEVSNP}, want: BackendSEVSNP},
		{name: "node pins unavailable TEE", policy: snp, tees: []string{BackendTDX}, wantErr: ErrBackendUnavailable,
			errs: []string{`sets backend = "sev-snp"`, file, errNoSNP.Error(), `set backend = "auto"`}, causes: []error{errNoSNP}},
		{name: "node pins unavailable TEE without require_tee", policy: Policy{Backend: BackendTDX}, wantErr: ErrBackendUnavailable,
			errs: []string{`the node policy sets backend = "tdx"`}, causes: []error{errNoTDX}},

		// Requests for nil: never weaker than the node requires.
		{name: "nil on auto node", policy: auto, requested: BackendNil, tees: []string{BackendSEVSNP}, want: BackendNil},
		{name: "nil on nil node", policy: nilP, requested: BackendNil, want: BackendNil},
		{name: "nil on require_tee node", policy: autoReq, requested: BackendNil, tees: []string{BackendSEVSNP}, wantErr: ErrBackendNotAllowed,
			errs: []string{enarxdev.AnnotationBackend + "=nil", "require_tee = true", file, "never weaker than the node requires", "remove the annotation"}},
		{name: "nil on TEE node", policy: snp, requested: BackendNil, tees: []string{BackendSEVSNP}, wantErr: ErrBackendNotAllowed,
			errs: []string{enarxdev.AnnotationBackend + "=nil", `backend = "sev-snp"`, "never weaker than the node requires"}},

		// Requests for a TEE.
		{name: "TEE on auto node", policy: auto, requested: BackendTDX, tees: []string{BackendSEVSNP, BackendTDX}, want: BackendTDX},
		{name: "TEE on nil node", policy: nilP, requested: BackendSEVSNP, tees: []string{BackendSEVSNP}, want: BackendSEVSNP},
		{name: "TEE on require_tee node", policy: autoReq, requested: BackendSEVSNP, tees: []string{BackendSEVSNP}, want: BackendSEVSNP},
		{name: "same TEE as node", policy: tdxReq, requested: BackendTDX, tees: []string{BackendTDX}, want: BackendTDX},
		{name: "unavailable TEE", policy: auto, requested: BackendTDX, tees: []string{BackendSEVSNP}, wantErr: ErrBackendUnavailable,
			errs: []string{enarxdev.AnnotationBackend + "=tdx", errNoTDX.Error(), "remove the annotation"}, causes: []error{errNoTDX}},
		{name: "unavailable TEE on nil node", policy: nilP, requested: BackendSEVSNP, wantErr: ErrBackendUnavailable,
			errs: []string{enarxdev.AnnotationBackend + "=sev-snp", errNoSNP.Error()}, causes: []error{errNoSNP}},
		{name: "other TEE than node", policy: snp, requested: BackendTDX, tees: []string{BackendSEVSNP, BackendTDX}, wantErr: ErrBackendNotAllowed,
			errs: []string{enarxdev.AnnotationBackend + "=tdx", `sets backend = "sev-snp"`, file, `set it to "sev-snp"`}},

		// Names that are no backend.
		{name: "unknown name", policy: auto, requested: "sgx", wantErr: ErrBackendNotAllowed,
			errs: []string{enarxdev.AnnotationBackend + `="sgx" is not a backend`, `"auto", "nil", "sev-snp", "tdx"`}},
		{name: "names are case sensitive", policy: auto, requested: "TDX", tees: []string{BackendTDX}, wantErr: ErrBackendNotAllowed,
			errs: []string{`="TDX" is not a backend`}},
		{name: "invalid policy", policy: Policy{Backend: "kvm", Source: file}, wantErr: ErrBackendUnavailable,
			errs: []string{`backend = "kvm" is not a backend`, file}},
		{name: "contradictory policy", policy: Policy{Backend: BackendNil, RequireTEE: true}, wantErr: ErrBackendUnavailable,
			errs: []string{"contradicts"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []string
			got, err := tc.policy.Choose(tc.requested, node(&asked, tc.tees...))
			for _, b := range asked {
				if !isTEE(b) {
					t.Errorf("Choose asked available(%q)", b)
				}
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Choose(%q) = %v", tc.requested, err)
				}
				if got != tc.want {
					t.Fatalf("Choose(%q) = %q, want %q", tc.requested, got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Choose(%q) = %q, want an error", tc.requested, got)
			}
			if got != "" {
				t.Errorf("Choose(%q) returned %q with its error", tc.requested, got)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error %q is not %v", err, tc.wantErr)
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, c := range tc.causes {
				if !errors.Is(err, c) {
					t.Errorf("error %q does not wrap %q", err, c)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

// An auto node stops asking at the first TEE that is available.
func TestChooseAutoOrder(t *testing.T) {
	var asked []string
	if _, err := Default().Choose("", node(&asked, BackendSEVSNP, BackendTDX)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, ",") != BackendSEVSNP {
		t.Fatalf("asked %v, want only sev-snp", asked)
	}
}

func TestChooseNilAvailable(t *testing.T) {
	if got, err := Default().Choose("", nil); err != nil || got != BackendNil {
		t.Fatalf("Choose with no detection = %q, %v; want nil", got, err)
	}
	if _, err := (Policy{RequireTEE: true}).Choose("", nil); !errors.Is(err, ErrBackendUnavailable) {
		t.Fatalf("Choose with no detection and require_tee = %v", err)
	}
}

func TestChooseSteward(t *testing.T) {
	node := Policy{Stewards: map[string]Steward{"main": {URL: "https://main.example", CA: "/ca.pem"}, "test": {URL: "https://test.example", CA: "/test-ca.pem"}},
		DefaultSteward: "main", Source: "/etc/enarx/policy.toml"}
	for _, c := range []struct {
		name      string
		policy    Policy
		requested string
		want      string // the URL, "" for none
		err       string
	}{
		{name: "none anywhere", policy: Default()},
		{name: "the node's default", policy: node, want: "https://main.example"},
		{name: "another of the node's, by name", policy: node, requested: "test", want: "https://test.example"},
		{name: "a URL", policy: node, requested: "http://127.0.0.1:2379/v3/kv",
			err: `annotation enarx.dev/steward="http://127.0.0.1:2379/v3/kv" names no steward of the node policy in /etc/enarx/policy.toml (it lists main, test)`},
		{name: "a URL, on a node without stewards", policy: Default(), requested: "https://steward.example",
			err: "(it lists none)"},
		{name: "an unknown name", policy: node, requested: "other", err: `"other" names no steward`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.policy.ChooseSteward(c.requested)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrStewardNotAllowed) {
					t.Fatalf("ChooseSteward(%q) = %+v, %v; want an ErrStewardNotAllowed error containing %q", c.requested, got, err, c.err)
				}
				return
			}
			url := ""
			if got != nil {
				url = got.URL
			}
			if err != nil || url != c.want {
				t.Fatalf("ChooseSteward(%q) = %+v, %v; want %q", c.requested, got, err, c.want)
			}
		})
	}
}

func TestModuleCacheDir(t *testing.T) {
	for in, want := range map[string]string{"": DefaultModuleCache, "off": "", "/srv/m": "/srv/m"} {
		if got := (Policy{ModuleCache: in}).ModuleCacheDir(); got != want {
			t.Errorf("module_cache %q: dir %q, want %q", in, got, want)
		}
	}
}

func TestPolicyCompileMemory(t *testing.T) {
	for in, want := range map[int64]int64{0: DefaultCompileMemoryLimit, -1: 0, 256 << 20: 256 << 20} {
		if got := (Policy{CompileMemoryLimit: in}).CompileMemory(); got != want {
			t.Errorf("compile_memory_limit %d: CompileMemory() = %d, want %d", in, got, want)
		}
	}
}
