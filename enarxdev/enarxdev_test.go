package enarxdev

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The keys are a contract with ctr users, pod specs, scripts and relying
// parties: pin every one. (A map literal with two equal constant keys does
// not compile, so no two of these share a key.)
func TestKeys(t *testing.T) {
	keys := map[string]string{
		LabelTEE:                 "enarx.dev/tee",
		LabelBackend:             "enarx.dev/backend",
		LabelAttestation:         "enarx.dev/attestation",
		LabelRuntimeVersion:      "enarx.dev/runtime.version",
		LabelWorkloadDigest:      "enarx.dev/workload.digest",
		LabelEngine:              "enarx.dev/engine",
		LabelTEEVersion:          "enarx.dev/tee.version",
		LabelRuntimeDigest:       "enarx.dev/runtime.digest",
		LabelEvidenceDigest:      "enarx.dev/evidence.digest",
		LabelEvidencePath:        "enarx.dev/evidence.path",
		LabelCertificateSerial:   "enarx.dev/certificate.serial",
		LabelCertificateNotAfter: "enarx.dev/certificate.not-after",
		LabelCertificateIssuer:   "enarx.dev/certificate.issuer",
		LabelCertificatePath:     "enarx.dev/certificate.path",
		LabelSteward:             "enarx.dev/steward",
		LabelSockets:             "enarx.dev/sockets",
		LabelTLSIdentity:         "enarx.dev/tls.identity",
		AnnotationListenPrefix:   "enarx.dev/listen.",
		AnnotationConnectPrefix:  "enarx.dev/connect.",
		AnnotationInstances:      "enarx.dev/instances",
	}
	for got, want := range keys {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
		if !strings.HasPrefix(got, Prefix) {
			t.Errorf("key %q does not start with %q", got, Prefix)
		}
	}
	// The request and what the Keep got share their keys.
	if AnnotationBackend != LabelBackend || AnnotationSteward != LabelSteward {
		t.Errorf("AnnotationBackend %q, LabelBackend %q, AnnotationSteward %q, LabelSteward %q: want the same keys",
			AnnotationBackend, LabelBackend, AnnotationSteward, LabelSteward)
	}
}

// The containerd configurations pass the annotations to the shim by Prefix.
func TestDeployPassesPrefix(t *testing.T) {
	files, err := filepath.Glob("../deploy/containerd/*.snippet")
	if err != nil || len(files) == 0 {
		t.Fatalf("no containerd snippets in ../deploy/containerd: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"pod_annotations", "container_annotations"} {
			if want := key + ` = ["` + Prefix + `*"]`; !strings.Contains(string(b), want) {
				t.Errorf("%s: no %s", f, want)
			}
		}
	}
}

// enarxdev is a leaf: naming a key must not link anything.
func TestImportsNothing(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			t.Errorf("%s imports %s: enarxdev is a leaf package", name, imp.Path.Value)
		}
	}
}
