package main

import (
	"bytes"
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/verify"
)

// TestHostileInputVerify gives `enarx verify` oversized and damaged
// evidence, policies and reference values: each is refused with an error
// naming it (or the check that failed), never a crash.
func TestHostileInputVerify(t *testing.T) {
	dir := t.TempDir()
	k := newVerifyKeep(t)
	evidence := k.evidence(t, attestation.None{}, nil, nil)
	writeVerifyFile(t, dir, "reference.json", verifyReferenceValues(t)) // insecure.toml's
	insecure := writeVerifyFile(t, dir, "insecure.toml", []byte("allow_insecure = true\nreference_values = \"reference.json\"\n"))
	big := writeVerifyFile(t, dir, "big.json", append(append(bytes.Clone(evidence), bytes.Repeat([]byte(" "), attestation.MaxEvidenceSize)...), "garbage"...))
	huge := writeVerifyFile(t, dir, "huge.json", append([]byte(`{"version":1,"tee":"none","pad":"`), bytes.Repeat([]byte("x"), attestation.MaxEvidenceSize+1)...))
	truncated := writeVerifyFile(t, dir, "truncated.json", evidence[:len(evidence)/2])
	binary := writeVerifyFile(t, dir, "binary.json", []byte{0x00, 0xff, 0xfe, 0x7b})
	bigPolicy := writeVerifyFile(t, dir, "big.toml", append([]byte("allow_insecure = true\n"), bytes.Repeat([]byte("#\n"), verify.MaxPolicySize/2)...))
	bigRef := writeVerifyFile(t, dir, "big-ref.json", append([]byte(`{"runtimes":[]}`), bytes.Repeat([]byte(" "), verify.MaxReferenceValuesSize)...))
	badRef := writeVerifyFile(t, dir, "bad-ref.json", []byte(`{"runtimes":[{"version":"v1","digest":"sha256:AB"}]}`))
	evFile := writeVerifyFile(t, dir, "evidence.json", evidence)
	for _, tc := range []verifyCase{{
		// Valid evidence, then whitespace past the limit, then garbage
		// that a reader stopping at the limit would never see.
		name: "evidence padded past the limit", args: []string{"verify", "--policy", insecure, big},
		code: 1, stderr: []string{big, "more than 1048576 bytes", "enarx attest"},
	}, {
		name: "oversized evidence", args: []string{"verify", "--policy", insecure, huge},
		code: 1, stderr: []string{huge, "more than 1048576 bytes"},
	}, {
		name: "oversized evidence on stdin", args: []string{"verify", "--policy", insecure, "-"},
		stdin: bytes.Repeat([]byte("{"), 2*attestation.MaxEvidenceSize),
		code:  1, stderr: []string{"evidence - is more than 1048576 bytes"},
	}, {
		name: "truncated evidence", args: []string{"verify", "--policy", insecure, truncated},
		code: 1, stderr: []string{"check " + verify.CheckEvidence + " failed"},
	}, {
		name: "binary evidence", args: []string{"verify", "--policy", insecure, binary},
		code: 1, stderr: []string{"check " + verify.CheckEvidence + " failed"},
	}, {
		name: "oversized policy", args: []string{"verify", "--policy", bigPolicy, evFile},
		code: 1, stderr: []string{bigPolicy, "larger than 1048576 bytes"},
	}, {
		name: "oversized reference values", args: []string{"verify", "--policy", insecure, "--reference-values", bigRef, evFile},
		code: 1, stderr: []string{bigRef, "larger than 4194304 bytes"},
	}, {
		name: "malformed reference values", args: []string{"verify", "--policy", insecure, "--reference-values", badRef, evFile},
		code: 1, stderr: []string{badRef, "runtimes[0]", "sha256:<64 lowercase hex digits>"},
	}, {
		name: "policy is a directory", args: []string{"verify", "--policy", dir, evFile},
		code: 1, stderr: []string{dir, "not a regular file"},
	}} {
		t.Run(tc.name, tc.run)
	}
}
