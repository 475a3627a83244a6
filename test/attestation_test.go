package test

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-sev-guest/abi"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
)

// simulateVersion is the runtime version of the simulate shim.
const simulateVersion = "v0.0.0-simulate"

// simulateBinDir builds the shim and the Keep's runtime binary with -tags
// enarx_simulate (the only build in which ENARX_SIMULATE_TEE works) once per
// run.
var simulateBin struct {
	once sync.Once
	dir  string
	err  error
}

func simulateBinDir(t *testing.T) string {
	t.Helper()
	requireBinaries(t)
	simulateBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "enarx-simulate-bin-")
		if err != nil {
			simulateBin.err = err
			return
		}
		for _, b := range []struct {
			out, pkg string
			env      []string
		}{
			{shimBinary, "./cmd/containerd-shim-enarx-v1", []string{"CGO_ENABLED=0"}},
			{serverBinary, "./cmd/enarx-shim", []string{"CGO_ENABLED=0"}},
			{keepBinary, "./cmd/enarx-keep", nil},
		} {
			if err := wasmfixture.GoBuild(context.Background(), harness.moduleRoot, b.env,
				"-tags", "enarx_simulate", "-ldflags", "-X github.com/enarx/containerd-shim-enarx/version.Version="+simulateVersion,
				"-o", filepath.Join(dir, b.out), b.pkg); err != nil {
				simulateBin.err = err
				return
			}
		}
		simulateBin.dir = dir
	})
	if simulateBin.err != nil {
		t.Fatalf("building the simulate shim: %v", simulateBin.err)
	}
	return simulateBin.dir
}

// TestSimulatedSEVSNP runs a container on the SEV-SNP backend through real
// containerd, with go-sev-guest's fake firmware behind the same provider code
// as /dev/sev-guest: the labels say sev-snp, and the evidence in the bundle
// carries an SNP report whose REPORT_DATA matches the binding recomputed
// from its inputs (key, workload, runtime, config).
func TestSimulatedSEVSNP(t *testing.T) {
	bin := simulateBinDir(t)
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			d := startDaemonWith(t, kind, bin, []string{"ENARX_SIMULATE_TEE=sev-snp"})
			ns := newNamespace(t, d)
			wasm := buildGoWasm(t, "sleep")
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", wasm, false)
			id := uniqueID("snp")
			d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h")
			labels := containerLabels(t, d, ns, id)
			if labels[enarxdev.LabelTEE] != "sev-snp" || labels[enarxdev.LabelBackend] != "sev-snp" || labels[enarxdev.LabelAttestation] != "ok" {
				t.Errorf("labels %v, want tee and backend sev-snp, attestation ok", labels)
			}
			if !strings.Contains(labels[enarxdev.LabelTEEVersion], "snp=") {
				t.Errorf(enarxdev.LabelTEEVersion+" = %q, want the SNP TCB", labels[enarxdev.LabelTEEVersion])
			}
			encoded, err := os.ReadFile(labels[enarxdev.LabelEvidencePath])
			if err != nil {
				t.Fatalf("evidence file: %v", err)
			}
			ev, err := attestation.ParseEvidence(encoded)
			if err != nil {
				t.Fatalf("evidence: %v", err)
			}
			if ev.Digest() != labels[enarxdev.LabelEvidenceDigest] {
				t.Errorf("evidence digest %s, label %s", ev.Digest(), labels[enarxdev.LabelEvidenceDigest])
			}
			if ev.TEE != attestation.TEESEVSNP || ev.Inputs.WorkloadDigest != fileDigest(t, wasm) ||
				ev.Inputs.RuntimeDigest != fileDigest(t, filepath.Join(bin, keepBinary)) {
				t.Errorf("evidence tee %s, workload %s, runtime %s", ev.TEE, ev.Inputs.WorkloadDigest, ev.Inputs.RuntimeDigest)
			}
			if err := ev.CheckBinding(); err != nil {
				t.Errorf("binding: %v", err)
			}
			// The raw report and its certificate table parse as SEV-SNP's;
			// their signatures against the (test) AMD chain are checked in
			// attestation/snp's tests, from the same provider code.
			if _, err := abi.ReportCertsToProto(append(append([]byte(nil), ev.Report...), ev.Certificates...)); err != nil {
				t.Errorf("SNP report and certificates: %v", err)
			}

			// Fresh evidence on demand, with a verifier's nonce bound in.
			nonce := "00112233445566778899aabbccddeeff"
			fresh := enarxAttest(t, d, ns, id, nonce)
			if hex.EncodeToString(fresh.Inputs.Nonce) != nonce || fresh.TEE != attestation.TEESEVSNP {
				t.Errorf("fresh evidence: tee %s, nonce %x, want %s", fresh.TEE, fresh.Inputs.Nonce, nonce)
			}
			if err := fresh.CheckBinding(); err != nil {
				t.Errorf("fresh evidence binding: %v", err)
			}
			if string(fresh.Inputs.KeepPublicKey) != string(ev.Inputs.KeepPublicKey) || fresh.Inputs.WorkloadDigest != ev.Inputs.WorkloadDigest {
				t.Errorf("fresh evidence is not from the same Keep")
			}
			if string(fresh.ReportData) == string(ev.ReportData) {
				t.Errorf("the nonce did not change REPORT_DATA")
			}
			for _, bad := range []struct{ id, nonce, want string }{
				{id, "xyz", "not hex"},
				{id, strings.Repeat("00", 65), "at most 64"},
				{"no-such-container", nonce, "no running task"},
			} {
				cmd := exec.Command(filepath.Join(requireBinaries(t), enarxBinary), "attest", "--state", d.State, "-n", ns, "--nonce", bad.nonce, bad.id)
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), bad.want) {
					t.Errorf("enarx attest %s --nonce %s: %v, %s; want an error saying %q", bad.id, bad.nonce, err, out, bad.want)
				}
			}

			d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
			waitStatus(t, d, ns, id, "STOPPED")
			d.mustCtr(t, ns, "tasks", "rm", id)
			d.mustCtr(t, ns, "containers", "rm", id)
		})
	}
}

// enarxAttest runs `enarx attest` for a running container and parses the
// evidence it prints.
func enarxAttest(t *testing.T, d *Daemon, ns, id, nonce string) *attestation.Evidence {
	t.Helper()
	cmd := exec.Command(filepath.Join(requireBinaries(t), enarxBinary), "attest", "--state", d.State, "--namespace", ns, "--nonce", nonce, id)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("enarx attest %s: %v: %s", id, err, stderr.String())
	}
	ev, err := attestation.ParseEvidence([]byte(strings.TrimSpace(string(out))))
	if err != nil {
		t.Fatalf("enarx attest printed: %v\n%s", err, out)
	}
	return ev
}

// TestAttestNil gets fresh evidence from a Keep without a TEE: it works, and
// says tee none.
func TestAttestNil(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		id := uniqueID("attest")
		d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h")
		waitStatus(t, d, ns, id, "RUNNING")
		ev := enarxAttest(t, d, ns, id, "cafe")
		if ev.TEE != attestation.TEENone || hex.EncodeToString(ev.Inputs.Nonce) != "cafe" || len(ev.Report) != 0 {
			t.Errorf("evidence tee %s, nonce %x, report %d bytes", ev.TEE, ev.Inputs.Nonce, len(ev.Report))
		}
		if err := ev.CheckBinding(); err != nil {
			t.Errorf("binding: %v", err)
		}
		d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
		waitStatus(t, d, ns, id, "STOPPED")
		d.mustCtr(t, ns, "tasks", "rm", id)
		d.mustCtr(t, ns, "containers", "rm", id)
	})
}
