package guest

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

func TestWithPWD(t *testing.T) {
	for _, c := range []struct {
		env  []string
		cwd  string
		want []string
	}{
		{[]string{"A=1"}, "/data", []string{"A=1", "PWD=/data"}},
		{[]string{"PWD=/mine", "A=1"}, "/data", []string{"PWD=/mine", "A=1"}},
		{[]string{"A=1"}, "", []string{"A=1"}},
		{nil, "/", []string{"PWD=/"}},
	} {
		env := append([]string(nil), c.env...)
		if got := withPWD(env, c.cwd); !reflect.DeepEqual(got, c.want) {
			t.Errorf("withPWD(%q, %q) = %q, want %q", c.env, c.cwd, got, c.want)
		}
		if !reflect.DeepEqual(env, c.env) {
			t.Errorf("withPWD changed its input: %q", env)
		}
	}
}

// TestBuildAheadOnlyWhenSafe: the container is built beside prepare only
// when prepare needs nothing Build changes (buildAhead).
func TestBuildAheadOnlyWhenSafe(t *testing.T) {
	userns := &confine.Spec{Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}}
	for name, cfg := range map[string]keep.Config{
		"no container":     {},
		"a user namespace": {Container: userns},
		"sockets":          {Container: &confine.Spec{}, Workload: workload.Workload{Sockets: []socketspec.Spec{{Name: "http"}}}},
		"a steward":        {Container: &confine.Spec{}, Steward: &nodepolicy.Steward{}},
	} {
		if c := buildAhead(cfg, nil); c != nil {
			t.Errorf("%s: the container is built beside prepare", name)
		}
	}
}
