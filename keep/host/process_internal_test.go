package host

import (
	"slices"
	"testing"
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
