package host

import (
	"slices"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// TestKeepEnv: a Keep gets the runtime's variables and Go's settings of the
// shim's environment, nothing of containerd's.
func TestKeepEnv(t *testing.T) {
	got := keepEnv([]string{"ENARX_SIMULATE_TEE=sev-snp", "GODEBUG=x=1", "TTRPC_ADDRESS=/run/containerd/containerd.sock.ttrpc",
		"AWS_SECRET_ACCESS_KEY=k", "NAMESPACE=k8s.io", "PATH=/opt/bin", "GOMAXPROCS=2"})
	want := []string{"ENARX_SIMULATE_TEE=sev-snp", "GODEBUG=x=1", "GOMAXPROCS=2", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("keepEnv = %q, want %q", got, want)
	}
}

// TestServesNetNS: a Keep made in its container's new network namespace
// serves only a config that allows it; one not made in it serves any.
func TestServesNetNS(t *testing.T) {
	allows := StartOptions{Config: keep.Config{Container: &confine.Spec{}, Workload: workload.Workload{NewNetNS: true}}}
	steward := allows
	steward.Config.Steward = &nodepolicy.Steward{}
	for _, tc := range []struct {
		name     string
		newNetNS bool
		opts     StartOptions
		want     bool
	}{
		{"made in it, a config that allows it", true, allows, true},
		{"made in it, a config with a Steward", true, steward, false},
		{"made in it, a container on the host's network", true, StartOptions{Config: keep.Config{Container: &confine.Spec{}}}, false},
		{"not made in it, a config that allows it", false, allows, true},
		{"not made in it, a config with a Steward", false, steward, true},
	} {
		if got := servesNetNS(tc.newNetNS, tc.opts); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
