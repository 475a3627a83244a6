package nodepolicy

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// FuzzPolicy parses node policies (the runtime options' ConfigBody, or
// the file at ConfigPath): an accepted one validates, survives a TOML round
// trip, and chooses a backend and a Steward without panicking; a refused
// one gets an error naming the policy.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		"backend = \"auto\"\nrequire_tee = true\ndefault_steward = \"main\"\nmodule_cache = \"/var/lib/containerd-shim-enarx/modules\"\n[stewards.main]\nurl = \"https://steward.example.com\"\nca = \"/etc/enarx/steward-ca.pem\"\n",
		"[stewards.local]\nurl = \"http://127.0.0.1:3443\"\nca = \"/ca.pem\"\ninsecure_http = true\n",
		"backend = \"nil\"\n",
		"backend = \"sev-snp\"\nmodule_cache = \"off\"\n",
		"TypeUrl = \"io.containerd.runc.v1.Options\"\nbackend = \"tdx\"\n",
		"backend = \"nil\"\nrequire_tee = true\n",
		"backend = \"sgx\"\n",
		"backend = 1\n",
		"[backend]\nx = 1\n",
		"steward = \"steward.example.com\"\n",
		"module_cache = \"modules\"\n",
		"SystemdCgroup = true\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("policy.toml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "enarx node policy") || !strings.Contains(err.Error(), "policy.toml") {
				t.Fatalf("error does not name the policy: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("a parsed policy does not validate: %v", err)
		}
		b, err := toml.Marshal(p)
		if err != nil {
			t.Fatalf("a parsed policy does not encode: %v", err)
		}
		back, err := Parse("policy.toml", b)
		if err != nil {
			t.Fatalf("a parsed policy, encoded, does not parse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip changed the policy:\n got %+v\nwant %+v", back, p)
		}
		if d := p.ModuleCacheDir(); d != "" && !filepath.IsAbs(d) {
			t.Fatalf("module cache %q is not absolute", d)
		}
		for _, requested := range []string{"", BackendNil, BackendSEVSNP, "x"} {
			for _, avail := range []func(string) error{nil, func(string) error { return nil }} {
				b, err := p.Choose(requested, avail)
				if err == nil && b != BackendNil && !isTEE(b) {
					t.Fatalf("Choose(%q) = %q", requested, b)
				}
				if err != nil && !errors.Is(err, ErrBackendNotAllowed) && !errors.Is(err, ErrBackendUnavailable) {
					t.Fatalf("Choose(%q): %v wraps neither kind", requested, err)
				}
			}
		}
		if s, err := p.ChooseSteward(""); err != nil || (s == nil) != (p.DefaultSteward == "") || (s != nil && s.URL != p.Stewards[p.DefaultSteward].URL) {
			t.Fatalf("ChooseSteward(\"\") = %+v, %v; want the policy's default", s, err)
		}
		if s, err := p.ChooseSteward("https://steward.example"); err == nil || s != nil {
			t.Fatalf("ChooseSteward(a URL) = %+v, %v; want a refusal", s, err)
		}
	})
}
