package attestation_test

import (
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// FuzzParseEvidence: no input makes parsing or the binding check panic, and
// whatever parses re-encodes to something that parses to the same digest.
func FuzzParseEvidence(f *testing.F) {
	for _, p := range []attestation.Provider{attestation.None{}, snpProvider(), tdxProvider(f)} {
		b, err := collect(f, p).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"tee":"tdx","report":"BAACAIEAAAA="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := attestation.ParseEvidence(data)
		if err != nil {
			return
		}
		_ = e.CheckBinding()
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := attestation.ParseEvidence(b)
		if err != nil {
			t.Fatalf("re-encoded evidence does not parse: %v", err)
		}
		if back.Digest() != e.Digest() {
			t.Fatal("digest changed after a round trip")
		}
	})
}
