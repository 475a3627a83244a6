package attestation_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// tree builds a fake node root: paths ending in "/" are directories, others
// files with the given content.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const cpuinfoPlain = "processor\t: 0\nflags\t\t: fpu vme de pse hypervisor\n"

func TestDetect(t *testing.T) {
	cases := []struct {
		name       string
		files      map[string]string
		snp, tdx   bool
		via        string // of the available backend
		reasonSNP  string
		reasonTDX  string
		best       string
		devices    int
		cpuFlagSNP bool
	}{
		{
			name:      "no TEE",
			files:     map[string]string{"proc/cpuinfo": cpuinfoPlain},
			reasonSNP: "no /dev/sev-guest and no configfs-tsm report provider (/sys/kernel/config/tsm/report): this node is not an SEV-SNP guest",
			reasonTDX: "no configfs-tsm report provider (/sys/kernel/config/tsm/report) and no /dev/tdx_guest: this node is not a TDX guest",
			best:      attestation.TEENone,
		},
		{
			name:  "SNP through configfs-tsm",
			files: map[string]string{"sys/kernel/config/tsm/report/entry0/provider": "sev_guest\n", "proc/cpuinfo": "flags : sev sev_es sev_snp\n"},
			snp:   true, via: attestation.ViaConfigfsTSM,
			reasonTDX:  "the configfs-tsm report provider is sev_guest: this node is not a TDX guest",
			best:       attestation.TEESEVSNP,
			cpuFlagSNP: true,
		},
		{
			name:  "SNP through /dev/sev-guest only",
			files: map[string]string{"dev/sev-guest": ""},
			snp:   true, via: attestation.ViaSEVGuest,
			reasonTDX: "not a TDX guest",
			best:      attestation.TEESEVSNP,
			devices:   1,
		},
		{
			name:  "TDX through configfs-tsm",
			files: map[string]string{"sys/kernel/config/tsm/report/e/provider": "tdx_guest\n", "dev/tdx_guest": ""},
			tdx:   true, via: attestation.ViaConfigfsTSM,
			reasonSNP: "no /dev/sev-guest and the configfs-tsm report provider is tdx_guest: this node is not an SEV-SNP guest",
			best:      attestation.TEETDX,
			devices:   1,
		},
		{
			name:      "TDX device without configfs",
			files:     map[string]string{"dev/tdx-guest": "", "proc/cpuinfo": "flags: tdx_guest\n"},
			reasonSNP: "not an SEV-SNP guest",
			reasonTDX: "/dev/tdx_guest exists but /sys/kernel/config/tsm/report does not",
			best:      attestation.TEENone,
			devices:   1,
		},
		{
			// The probe entry gets no provider attribute in a plain directory
			// tree, as when the provider cannot be read; the CPU flag decides.
			name:  "configfs-tsm with unreadable provider and tdx_guest flag",
			files: map[string]string{"sys/kernel/config/tsm/report/": "", "proc/cpuinfo": "flags: fpu tdx_guest\n"},
			tdx:   true, via: attestation.ViaConfigfsTSM,
			reasonSNP: "provider could not be read",
			best:      attestation.TEETDX,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t, c.files)
			p := attestation.DetectAt(root)
			snp, tdx := p.Backend(attestation.TEESEVSNP), p.Backend(attestation.TEETDX)
			if snp.Available != c.snp || tdx.Available != c.tdx {
				t.Fatalf("available: snp %v tdx %v, want %v %v (%+v)", snp.Available, tdx.Available, c.snp, c.tdx, p)
			}
			for _, b := range []attestation.Backend{snp, tdx} {
				if b.Available && (b.Via != c.via || b.Reason != "") {
					t.Errorf("%s: via %q reason %q, want via %q", b.TEE, b.Via, b.Reason, c.via)
				}
			}
			if !c.snp && !strings.Contains(snp.Reason, c.reasonSNP) {
				t.Errorf("SNP reason %q, want %q", snp.Reason, c.reasonSNP)
			}
			if !c.tdx && !strings.Contains(tdx.Reason, c.reasonTDX) {
				t.Errorf("TDX reason %q, want %q", tdx.Reason, c.reasonTDX)
			}
			if got := p.Best().TEE; got != c.best {
				t.Errorf("Best = %s, want %s", got, c.best)
			}
			if len(p.Devices) != c.devices {
				t.Errorf("devices %v", p.Devices)
			}
			if p.HasCPUFlag("sev_snp") != c.cpuFlagSNP {
				t.Errorf("cpu flags %v", p.CPUFlags)
			}
			// The probe entry is removed again.
			entries, _ := os.ReadDir(filepath.Join(root, attestation.ConfigfsTSMReport))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "enarx-probe-") {
					t.Errorf("probe entry %s left behind", e.Name())
				}
			}
		})
	}
}

func TestDetectUnknownBackend(t *testing.T) {
	b := attestation.DetectAt(t.TempDir()).Backend("sgx")
	if b.Available || !strings.Contains(b.Reason, `unknown TEE "sgx"`) {
		t.Errorf("%+v", b)
	}
}

// Detect on this machine must not fail or leave anything behind; there is
// no TEE on the test machines, but the result is only logged.
func TestDetectHost(t *testing.T) {
	p := attestation.Detect()
	t.Logf("%+v", p)
}
