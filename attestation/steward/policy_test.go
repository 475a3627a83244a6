package steward

import (
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

// TestDefaultPolicyFile: the policy.toml written on first start is the
// verifier's production default, with every key spelt out.
func TestDefaultPolicyFile(t *testing.T) {
	got, err := verify.ParsePolicy(defaultPolicy, PolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := toml.Marshal(verify.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	want, err := verify.ParsePolicy(b, PolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default policy.toml gives\n%+v\nverify.DefaultPolicy() is\n%+v", got, want)
	}
	// Every key of verify's policy appears in the file.
	var keys map[string]any
	if err := toml.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := toml.Unmarshal(defaultPolicy, &file); err != nil {
		t.Fatal(err)
	}
	var missing func(prefix string, want, have map[string]any)
	missing = func(prefix string, want, have map[string]any) {
		for k, v := range want {
			h, ok := have[k]
			if !ok {
				t.Errorf("the default policy.toml lacks %s%s", prefix, k)
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				if hsub, ok := h.(map[string]any); ok {
					missing(prefix+k+".", sub, hsub)
				}
			}
		}
	}
	missing("", keys, file)
}
