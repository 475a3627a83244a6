package verify

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/validate"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// newSNPPolicy is the one place the [sev-snp] policy becomes
// go-sev-guest's validate.Options: every key that validate can express
// lands in it, and the allow lists it cannot stay beside it.
func TestNewSNPPolicy(t *testing.T) {
	p := policy(func(p *Policy) {
		p.SNP = SNPPolicy{
			MinimumTCB:                TCB{Bootloader: 1, TEE: 2, SNP: 3, Microcode: 4},
			MinimumLaunchTCB:          TCB{Bootloader: 5, TEE: 6, SNP: 7, Microcode: 8},
			MinimumBuild:              9,
			MinimumVersion:            "1.55",
			MinimumABI:                "1.51",
			PermitProvisionalFirmware: true,
			AllowDebug:                true,
			AllowMigrationAgent:       true,
			AllowSMT:                  false,
			RequireSingleSocket:       true,
			VMPL:                      2,
			MinimumGuestSVN:           3,
			Measurements:              []string{strings.Repeat("aa", 48)},
			HostData:                  strings.Repeat("bb", 32),
			IDKeyDigests:              []string{strings.Repeat("cc", 48)},
			AuthorKeyDigests:          []string{strings.Repeat("dd", 48)},
		}
	})
	c, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	reportData := bytes.Repeat([]byte{0xee}, 64)
	w := newSNPPolicy(c, reportData)
	vmpl := 2
	want := &validate.Options{
		GuestPolicy:               abi.SnpPolicy{ABIMajor: 1, ABIMinor: 51, MigrateMA: true, Debug: true, SingleSocket: true},
		MinimumGuestSvn:           3,
		ReportData:                reportData,
		HostData:                  bytes.Repeat([]byte{0xbb}, 32),
		MinimumBuild:              9,
		MinimumVersion:            1<<8 | 55,
		MinimumTCB:                kds.TCBParts{BlSpl: 1, TeeSpl: 2, SnpSpl: 3, UcodeSpl: 4},
		MinimumLaunchTCB:          kds.TCBParts{BlSpl: 5, TeeSpl: 6, SnpSpl: 7, UcodeSpl: 8},
		PermitProvisionalFirmware: true,
		VMPL:                      &vmpl,
	}
	if !reflect.DeepEqual(w.opts, want) {
		t.Errorf("validate.Options\n got %+v\nwant %+v", w.opts, want)
	}
	for name, got := range map[string][][]byte{"measurements": w.measurements, "id keys": w.idKeys, "author keys": w.authorKeys} {
		if len(got) != 1 || len(got[0]) != 48 {
			t.Errorf("%s: %x", name, got)
		}
	}
	// vmpl = -1: any VMPL, for validate too.
	p.SNP.VMPL = -1
	if c, err = p.compile(); err != nil {
		t.Fatal(err)
	}
	if w := newSNPPolicy(c, nil); w.opts.VMPL != nil {
		t.Errorf("vmpl = -1 gives validate VMPL %d", *w.opts.VMPL)
	}
}

// Each first-line check that go-sev-guest's validate can express is also
// enforced by the second line, from the same options: evidence that one of
// our checks refuses, validate.SnpAttestation refuses too, and evidence
// both accept passes both.
func TestSNPSecondLineAgrees(t *testing.T) {
	f := getFixture(t)
	withPolicyBits := func(bits uint64) *attestation.Evidence {
		r := bytes.Clone(f.snp.Report)
		binary.LittleEndian.PutUint64(r[snpPolicyOff:], binary.LittleEndian.Uint64(r[snpPolicyOff:])|bits)
		ev := clone(f.snp)
		ev.Report = resign(t, f.fake.Signer, r)
		return ev
	}
	vmpl1 := clone(f.snp)
	r := bytes.Clone(f.snp.Report)
	binary.LittleEndian.PutUint32(r[snpVMPLOff:], 1)
	vmpl1.Report = resign(t, f.fake.Signer, r)
	tests := []struct {
		name   string
		ev     *attestation.Evidence
		policy func(*Policy)
		check  string // of the first line; "" for none
	}{
		{"accepted", f.snp, nil, ""},
		{"debug", withPolicyBits(1 << 19), nil, CheckSNPDebug},
		{"migration agent", withPolicyBits(1 << 18), nil, CheckSNPPolicy},
		{"SMT", f.snp, func(p *Policy) { p.SNP.AllowSMT = false }, CheckSNPPolicy},
		{"single socket", f.snp, func(p *Policy) { p.SNP.RequireSingleSocket = true }, CheckSNPPolicy},
		{"ABI", f.snp, func(p *Policy) { p.SNP.MinimumABI = "1.52" }, CheckSNPPolicy},
		{"VMPL", vmpl1, nil, CheckSNPVMPL},
		{"TCB", f.snp, func(p *Policy) { p.SNP.MinimumTCB.SNP = 9 }, CheckSNPTCB},
		{"launch TCB", f.snp, func(p *Policy) { p.SNP.MinimumLaunchTCB.Microcode = 200 }, CheckSNPTCB},
		{"build", f.snp, func(p *Policy) { p.SNP.MinimumBuild = 22 }, CheckSNPTCB},
		{"version", f.snp, func(p *Policy) { p.SNP.MinimumVersion = "1.56" }, CheckSNPTCB},
		{"guest SVN", f.snp, func(p *Policy) { p.SNP.MinimumGuestSVN = 1 }, CheckSNPGuestSVN},
		{"host data", f.snp, func(p *Policy) { p.SNP.HostData = strings.Repeat("11", 32) }, CheckSNPHostData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, policy(func(p *Policy) {
				p.AllowTestRoots = true
				if tc.policy != nil {
					tc.policy(p)
				}
			}), Options{Reference: reference(t)})
			ctx, now := context.Background(), v.now()
			att, err := parseSNPEvidence(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := v.checkSNPChain(ctx, tc.ev, att, now)
			if err != nil {
				t.Fatal(err)
			}
			w := newSNPPolicy(v.pol, tc.ev.ReportData)
			report := chain.att.GetReport()
			first := errors.Join(w.checkGuestPolicy(report), w.checkTCB(report, chain), w.checkLaunchData(report, chain.signer))
			second := w.checkValidate(chain.att)
			if tc.check == "" {
				if first != nil || second != nil {
					t.Fatalf("first line: %v; second line: %v", first, second)
				}
				return
			}
			var ce *CheckError
			if !errors.As(first, &ce) || ce.Check != tc.check {
				t.Errorf("first line: %v, want check %s", first, tc.check)
			}
			if !errors.As(second, &ce) || ce.Check != CheckSNPValidate || !errors.Is(second, ErrGuestPolicy) {
				t.Errorf("second line: %v, want check %s", second, CheckSNPValidate)
			}
		})
	}
}
