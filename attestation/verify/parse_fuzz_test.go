package verify

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// FuzzVerifyPolicy parses verifier policies: an accepted one validates,
// survives a TOML round trip, makes a verifier, and that verifier judges
// SEV-SNP, TDX and nil evidence with assertions or a *CheckError, never a
// panic; a refused one gets an error naming the policy file.
func FuzzVerifyPolicy(f *testing.F) {
	fx := getFixture(f)
	var blobs [][]byte
	for _, ev := range []interface{ Marshal() ([]byte, error) }{fx.snpA, fx.tdxEv, fx.none} {
		b, err := ev.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	hex96 := strings.Repeat("ab", 48)
	for _, s := range []string{
		"",
		"allow_insecure = true\nallow_test_roots = true\nreference_values = \"reference-values.json\"\ntees = [\"sev-snp\", \"tdx\"]\n" +
			"runtime_versions = [\"v0.1.0\"]\nworkload_digests = [\"sha256:" + strings.Repeat("0", 64) + "\"]\n",
		"[sev-snp]\nminimum_tcb = { bootloader = 1, tee = 2, snp = 3, microcode = 4 }\nminimum_launch_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }\n" +
			"minimum_build = 1\nminimum_version = \"1.51\"\nminimum_abi = \"0.0\"\npermit_provisional_firmware = true\nallow_debug = false\n" +
			"allow_migration_agent = false\nallow_smt = false\nrequire_single_socket = true\nvmpl = -1\nminimum_guest_svn = 1\n" +
			"measurements = [\"" + hex96 + "\"]\nhost_data = \"" + strings.Repeat("00", 32) + "\"\nid_key_digests = [\"" + hex96 + "\"]\n" +
			"author_key_digests = [\"" + hex96 + "\"]\nfetch = true\ncheck_revocations = true\n",
		"[tdx]\nminimum_tee_tcb_svn = \"" + strings.Repeat("01", 16) + "\"\nminimum_qe_svn = 1\nminimum_pce_svn = 2\nallow_debug = true\nmr_td = [\"" + hex96 + "\"]\nfetch = true\ncheck_revocations = true\n",
		"allow_insecur = true\n",
		"tees = [\"none\"]\n",
		"[sev-snp]\nvmpl = 4\n",
		"[sev-snp]\nminimum_version = \"1\"\n",
		"[sev-snp]\nminimum_tcb = { bootloader = 200 }\n",
		"[sev-snp]\nmeasurements = [\"zz\"]\n",
		"[sev-snp]\ncheck_revocations = true\n",
		"[tdx]\nminimum_qe_svn = 70000\n",
		"workload_digests = [\"sha256:AB\"]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, "policy.toml")
		if err != nil {
			if p != nil || !strings.HasPrefix(err.Error(), "verify: policy policy.toml") {
				t.Fatalf("policy %v and error %v; want only an error naming the policy", p, err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("a parsed policy does not validate: %v", err)
		}
		enc, err := toml.Marshal(p)
		if err != nil {
			t.Fatalf("a parsed policy does not encode: %v", err)
		}
		back, err := ParsePolicy(enc, "policy.toml")
		if err != nil {
			t.Fatalf("a parsed policy, encoded, does not parse: %v\n%s", err, enc)
		}
		if again, err := toml.Marshal(back); err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("round trip changed the policy:\n%s\nthen\n%s", enc, again)
		}
		// Offline: fetching would reach AMD's and Intel's servers.
		p.SNP.Fetch, p.SNP.CheckRevocations, p.TDX.Fetch, p.TDX.CheckRevocations = false, false, false, false
		v, err := New(Options{
			Policy:    p,
			Reference: reference(t),
			Now:       func() time.Time { return testNow.Add(time.Minute) },
			SNPRoots:  rootsOf(fx.signerA),
			TDXRoots:  fx.tdx.Roots(),
		})
		if err != nil {
			t.Fatalf("a parsed policy makes no verifier: %v", err)
		}
		for _, b := range blobs {
			a, err := v.VerifyBlob(context.Background(), b, nil)
			if (a == nil) == (err == nil) {
				t.Fatalf("assertions %v and error %v", a, err)
			}
			if _, ok := err.(*CheckError); err != nil && !ok {
				t.Fatalf("error %v (%T) is not a *CheckError", err, err)
			}
		}
	})
}

// FuzzReferenceValues parses reference values files: accepted values
// survive Marshal and parse back to the same entries, and look up by their
// digests; a refused file gets an error naming it.
func FuzzReferenceValues(f *testing.F) {
	for _, s := range []string{
		`{"runtimes": [{"name": "enarx-keep", "version": "v0.1.0", "digest": "` + digestA + `"}]}`,
		`{"runtimes": [{"version": "v0.1.0", "digest": "` + digestA + `"}, {"name": "x", "version": "v0.2.0-rc.1+g1234", "digest": "` + digestB + `"}]}`,
		`{"runtimes": []}`,
		`{"runtimes": [{"version": "v0.1.0", "digest": "` + digestA + `"}], "measurements": [{"tee": "sev-snp", "measurement": "` + strings.Repeat("ab", 48) + `", "runtimes": ["` + digestA + `"]}]}`,
		`{"runtimes": [], "measurements": [{"tee": "tdx", "measurement": "` + strings.Repeat("cd", 48) + `", "rtmrs": ["", "` + strings.Repeat("ef", 48) + `"], "runtimes": ["` + digestB + `"]}]}`,
		`{"runtimes": [], "measurements": [{"tee": "sev-snp", "measurement": "AB", "runtimes": []}]}`,
		`{"runtimes": [{"version": "v0.1.0", "digest": "` + digestA + `"}, {"version": "v0.2.0", "digest": "` + digestA + `"}]}`,
		`{"runtimes": [{"version": "v 1", "digest": "` + digestA + `"}]}`,
		`{"runtimes": [{"version": "v1", "digest": "sha256:AA"}]}`,
		`{"runtimes": [{"version": "", "digest": "` + digestA + `"}]}`,
		`{"runtimes": [], "extra": 1}`,
		`{"runtimes": []} {}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReferenceValues(data, "reference-values.json")
		if err != nil {
			if r != nil || !strings.HasPrefix(err.Error(), "verify: reference values reference-values.json") {
				t.Fatalf("values %v and error %v; want only an error naming the file", r, err)
			}
			return
		}
		for _, rt := range r.Runtimes {
			if got, ok := r.Lookup(rt.Digest); !ok || got.Version != rt.Version {
				t.Fatalf("Lookup(%s) = %+v, %v; want version %q", rt.Digest, got, ok, rt.Version)
			}
		}
		b, err := r.Marshal()
		if err != nil {
			t.Fatalf("accepted values do not encode: %v", err)
		}
		back, err := ParseReferenceValues(b, "reference-values.json")
		if err != nil {
			t.Fatalf("accepted values, encoded, do not parse: %v\n%s", err, b)
		}
		if len(back.Runtimes) != len(r.Runtimes) {
			t.Fatalf("%d runtimes after a round trip, want %d", len(back.Runtimes), len(r.Runtimes))
		}
		for _, rt := range r.Runtimes {
			if got, ok := back.Lookup(rt.Digest); !ok || got.Version != rt.Version {
				t.Fatalf("after a round trip, Lookup(%s) = %+v, %v; want version %q", rt.Digest, got, ok, rt.Version)
			}
		}
	})
}
