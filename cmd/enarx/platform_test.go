package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

func runEnarx(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), stdio{Stdout: &out, Stderr: &errb}, args)
	return out.String(), errb.String(), code
}

// TestPlatform: on this machine (no TEE), every hardware backend is
// unavailable with the reason, nil is available, and the default policy
// gives nil while require_tee refuses.
func TestPlatform(t *testing.T) {
	if p := attestation.Detect(); p.Best().TEE != attestation.TEENone {
		t.Skipf("this node has a TEE (%s)", p.Best().TEE)
	}
	stdout, stderr, code := runEnarx(t, "platform", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r platformReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	got := map[string]backendReport{}
	for _, b := range r.Backends {
		got[b.Name] = b
	}
	for _, name := range []string{"sev-snp", "tdx"} {
		if b := got[name]; b.Available || !strings.Contains(b.Reason, "not") {
			t.Errorf("%s: %+v, want unavailable with a reason", name, b)
		}
	}
	if b := got["nil"]; !b.Available || b.TEE != "none" {
		t.Errorf("nil: %+v, want available, tee none", b)
	}
	if r.Chosen != "nil" || r.ChoiceError != "" {
		t.Errorf("default policy chose %q (%s), want nil", r.Chosen, r.ChoiceError)
	}

	policy := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(policy, []byte("require_tee = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runEnarx(t, "platform", "--policy", policy)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"sev-snp  unavailable:", "tdx      unavailable:", "nil      available", "require_tee = true", "cannot start here"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, code := runEnarx(t, "platform", "extra"); code != 2 {
		t.Errorf("platform with an argument: exit %d, want 2", code)
	}
}
