package keep

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// TestMadeInNewNetNS: a Keep is made in its container's new network
// namespace only when nothing it does before it confines itself needs the
// host's network.
func TestMadeInNewNetNS(t *testing.T) {
	newNet := func(c Config) Config { c.NewNetNS = true; return c }
	container := &confine.Spec{}
	userns := &confine.Spec{Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}}
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"a container with a new network namespace", newNet(Config{Container: container}), true},
		{"the host's network (ctr run --net-host)", Config{Container: container}, false},
		{"a namespace joined by path (a pod's, CNI's)", Config{Container: container, Workload: workload.Workload{NetNS: "/var/run/netns/x"}}, false},
		{"sockets, opened in it", newNet(Config{Container: container, Workload: workload.Workload{Sockets: []socketspec.Spec{{Name: "http"}}}}), true},
		{"a Steward", newNet(Config{Container: container, Steward: &nodepolicy.Steward{}}), false},
		{"a user namespace", newNet(Config{Container: userns}), false},
		{"no container (enarx run)", newNet(Config{}), false},
	} {
		if got := tc.cfg.MadeInNewNetNS(); got != tc.want {
			t.Errorf("%s: MadeInNewNetNS %v, want %v", tc.name, got, tc.want)
		}
	}
}
