package verify

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePolicyFull(t *testing.T) {
	const doc = `
allow_insecure = true
allow_test_roots = true
reference_values = "ref.json"
tees = ["sev-snp"]
runtime_versions = ["v0.1.0"]
workload_digests = ["sha256:7f6c7360bf24fccf4b59cf9e9a9dfc99fd6a3b085fb2260ef707a34067bb911e"]

[sev-snp]
minimum_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
minimum_launch_tcb = { bootloader = 1, tee = 0, snp = 1, microcode = 1 }
minimum_build = 21
minimum_version = "1.55"
minimum_abi = "1.51"
permit_provisional_firmware = true
allow_debug = true
allow_migration_agent = true
allow_smt = false
require_single_socket = true
vmpl = -1
minimum_guest_svn = 2
measurements = ["f015948f68bfb8b468fc7f519d5471d491faf01625034b9ddc4beb01dea76f9896af705c1f6d6d110e7135191ca0a6ab"]
host_data = "0000000000000000000000000000000000000000000000000000000000000000"
id_key_digests = []
author_key_digests = []
fetch = true
check_revocations = true

[tdx]
minimum_tee_tcb_svn = "03000400000000000000000000000000"
minimum_qe_svn = 4
minimum_pce_svn = 13
allow_debug = false
mr_td = ["d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7"]
fetch = true
check_revocations = true
`
	p, err := ParsePolicy([]byte(doc), "/etc/enarx/verify.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		AllowInsecure: true, AllowTestRoots: true,
		ReferenceValues: "/etc/enarx/ref.json",
		TEEs:            []string{"sev-snp"},
		RuntimeVersions: []string{"v0.1.0"},
		WorkloadDigests: []string{"sha256:7f6c7360bf24fccf4b59cf9e9a9dfc99fd6a3b085fb2260ef707a34067bb911e"},
		SNP: SNPPolicy{
			MinimumTCB:       TCB{Bootloader: 3, SNP: 8, Microcode: 115},
			MinimumLaunchTCB: TCB{Bootloader: 1, SNP: 1, Microcode: 1},
			MinimumBuild:     21, MinimumVersion: "1.55", MinimumABI: "1.51",
			PermitProvisionalFirmware: true, AllowDebug: true, AllowMigrationAgent: true,
			AllowSMT: false, RequireSingleSocket: true, VMPL: -1, MinimumGuestSVN: 2,
			Measurements:     []string{"f015948f68bfb8b468fc7f519d5471d491faf01625034b9ddc4beb01dea76f9896af705c1f6d6d110e7135191ca0a6ab"},
			HostData:         strings.Repeat("0", 64),
			IDKeyDigests:     []string{},
			AuthorKeyDigests: []string{},
			Fetch:            true, CheckRevocations: true,
		},
		TDX: TDXPolicy{
			MinimumTEETCBSVN: "03000400000000000000000000000000", MinimumQESVN: 4, MinimumPCESVN: 13,
			MRTD:  []string{strings.Repeat("d7", 48)},
			Fetch: true, CheckRevocations: true,
		},
		Source: "/etc/enarx/verify.toml",
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("policy\n got %+v\nwant %+v", p, want)
	}
}

func TestParsePolicyDefaults(t *testing.T) {
	p, err := ParsePolicy(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultPolicy()
	d.Source = "empty.toml"
	if !reflect.DeepEqual(p, d) {
		t.Errorf("empty policy %+v, want the default %+v", p, d)
	}
	if d.AllowInsecure || d.AllowTestRoots || d.SNP.AllowDebug || d.TDX.AllowDebug || d.SNP.VMPL != 0 || !d.SNP.AllowSMT || d.SNP.Fetch || d.TDX.Fetch {
		t.Errorf("default policy is not the production one: %+v", d)
	}
	// Keys left out keep their defaults.
	p, err = ParsePolicy([]byte("[sev-snp]\nallow_debug = true\n"), "p.toml")
	if err != nil || !p.SNP.AllowSMT || !p.SNP.AllowDebug {
		t.Errorf("%+v, %v", p, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	const file = "/etc/enarx/verify.toml"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"unknown top-level key", "allow_insecur = true\n", []string{file, `unknown key "allow_insecur" (line 1, column 1)`}},
		{"unknown nested key", "[sev-snp]\nallow_debugging = true\n", []string{file, `"sev-snp.allow_debugging"`}},
		{"unknown inline-table key", "[sev-snp]\nminimum_tcb = { fmc = 1 }\n", []string{file, `fmc`, "line 2, column 17"}},
		{"unknown table", "[sgx]\nallow_debug = true\n", []string{file, `"sgx`}},
		{"wrong type", "allow_insecure = \"yes\"\n", []string{file, "line 1", "allow_insecure"}},
		{"not TOML", "allow_insecure = \n", []string{file, "line 1"}},
		{"bad measurement hex", "[sev-snp]\nmeasurements = [\"zz\"]\n", []string{file, "sev-snp.measurements: [0]", "not hex"}},
		{"bad measurement length", "[sev-snp]\nmeasurements = [\"" + strings.Repeat("ab", 47) + "\"]\n", []string{file, "sev-snp.measurements: [0]", "47 bytes, want 48 (96 hex digits)"}},
		{"bad host data", "[sev-snp]\nhost_data = \"abc\"\n", []string{file, "sev-snp.host_data", "not hex"}},
		{"bad MRTD length", "[tdx]\nmr_td = [\"abcd\"]\n", []string{file, "tdx.mr_td: [0]", "2 bytes, want 48"}},
		{"bad TEE_TCB_SVN", "[tdx]\nminimum_tee_tcb_svn = \"0300\"\n", []string{file, "tdx.minimum_tee_tcb_svn", "want 16"}},
		{"vmpl out of range", "[sev-snp]\nvmpl = 4\n", []string{file, "sev-snp.vmpl", "0 to 3, or -1"}},
		{"TCB part out of range", "[sev-snp]\nminimum_tcb = { snp = 200 }\n", []string{file, "sev-snp.minimum_tcb"}},
		{"TCB part overflows", "[sev-snp]\nminimum_tcb = { microcode = 256 }\n", []string{file, "minimum_tcb"}},
		{"bad version", "[sev-snp]\nminimum_version = \"1\"\n", []string{file, "sev-snp.minimum_version", "major.minor"}},
		{"bad abi", "[sev-snp]\nminimum_abi = \"1.x\"\n", []string{file, "sev-snp.minimum_abi"}},
		{"revocations offline", "[sev-snp]\ncheck_revocations = true\n", []string{file, "sev-snp.check_revocations", "fetch = true"}},
		{"TDX revocations offline", "[tdx]\ncheck_revocations = true\n", []string{file, "tdx.check_revocations", "fetch = true"}},
		{"bad workload digest", "workload_digests = [\"sha256:ABC\"]\n", []string{file, "workload_digests[0]"}},
		{"bad TEE", "tees = [\"none\"]\n", []string{file, "tees[0]", "allow_insecure"}},
		{"empty runtime version", "runtime_versions = [\"\"]\n", []string{file, "runtime_versions[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.doc), file)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := ParsePolicy(make([]byte, MaxPolicySize+1), file); err == nil {
		t.Error("oversized policy accepted")
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "verify.toml")
	if err := os.WriteFile(path, []byte("reference_values = \"ref/values.json\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != path || p.ReferenceValues != filepath.Join(dir, "ref", "values.json") {
		t.Errorf("%+v", p)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadPolicy(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	// New refuses an invalid policy built in code.
	bad := DefaultPolicy()
	bad.SNP.VMPL = 7
	if _, err := New(Options{Policy: bad}); err == nil || !strings.Contains(err.Error(), "sev-snp.vmpl") {
		t.Errorf("New with vmpl 7: %v", err)
	}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted vmpl 7")
	}
}
