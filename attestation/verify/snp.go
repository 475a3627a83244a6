package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevpb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// testARKSPKISHA256 is the SHA-256 of the SubjectPublicKeyInfo of
// go-sev-guest's test-only ARK key (testing.DefaultAmdKeys().Ark, whose
// private key is in go-sev-guest's source). snptest and the simulated
// SEV-SNP backend certify a fresh ARK certificate for it in every process,
// so the key, not the certificate, identifies test evidence. This package
// does not import go-sev-guest's testing package: a test proves the
// constant.
const testARKSPKISHA256 = "686a27cee8debf56a4cf2ae07b2835b5440f7761ea14d05d3326155c0392a892"

// isTestARK reports whether cert holds go-sev-guest's test ARK key.
func isTestARK(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]) == testARKSPKISHA256
}

// splitTestRoots separates the entries of roots whose ARK is the test ARK.
// An empty production map is nil: go-sev-guest then uses AMD's roots.
func splitTestRoots(roots map[string][]*trust.AMDRootCerts) (prod, test map[string][]*trust.AMDRootCerts) {
	for line, list := range roots {
		for _, r := range list {
			if r == nil || r.ProductCerts == nil {
				continue
			}
			if isTestARK(r.ProductCerts.Ark) {
				if test == nil {
					test = map[string][]*trust.AMDRootCerts{}
				}
				test[line] = append(test[line], r)
				continue
			}
			if prod == nil {
				prod = map[string][]*trust.AMDRootCerts{}
			}
			prod[line] = append(prod[line], r)
		}
	}
	return prod, test
}

// verifySNP checks an SEV-SNP report and its certificates: the hardware
// checks (snp.report, snp.chain, snp.signature) and then the [sev-snp]
// policy. It covers every check of the Enarx Steward's SEV-SNP verifier
// (enarx/steward, crates/attestation/src/snp/mod.rs, Snp::verify, and its
// Config), some generalised to the CVM a Keep runs in here:
//
//   - VCEK rooted in the embedded Milan/Genoa ARK -> ASK (is_trusted):
//     snp.chain, through go-sev-guest's verify with its embedded
//     Milan/Genoa/Turin roots (or Options.SNPRoots); VLEK-signed reports
//     too. The test ARK only with allow_test_roots (then Insecure).
//   - CRL check along the path, with the CRL carried in the evidence:
//     check_revocations (AMD's CRL fetched from the KDS; our evidence
//     carries no CRL).
//   - Report is 1184 bytes, signature is ECDSA P-384 with SHA-384 by the
//     VCEK (sig_algo == 1): evidence, snp.signature.
//   - Report version must be 2: snp.report accepts the versions go-sev-guest
//     parses (2, 3 and 5: current firmware writes 3 or 5).
//   - Reserved guest-policy bit 17 set, reserved fields zero (rsvd1..5, the
//     policy's and platform info's): snp.report (go-sev-guest's parser and
//     abi.ParseSnpPlatformInfo reject them).
//   - MIGRATE_MA clear ("Enarx doesn't support migration"): snp.policy,
//     unless allow_migration_agent.
//   - Guest policy ABI major.minor not above the firmware's: snp.policy
//     (compared as a version; the Steward compared the minors on their own).
//   - VMPL == 0: snp.vmpl, vmpl = 0 by default.
//   - GUEST_SVN == 0 (snp_validation): snp.guest_svn, minimum_guest_svn.
//   - REPORT_ID_MA all 0xFF, i.e. no migration agent (snp_validation):
//     covered by the MIGRATE_MA check; the field itself is not read, as
//     go-sev-guest's fake firmware leaves it zero.
//   - DEBUG clear (in non-debug mode): snp.debug, unless allow_debug.
//   - REPORT_DATA == SHA-384 of the CSR's public key: binding, REPORT_DATA
//     is the SHA-512 of all the inputs, the Keep's public key among them,
//     checked before any hardware check; and snp.validate compares it again.
//   - CSR key algorithm == VCEK key algorithm (against downgrade): not
//     adopted; the binding covers the whole Keep key, whose algorithm is
//     the Keep's (crypto agility, see tlssock).
//   - FAMILY_ID, IMAGE_ID, HOST_DATA, ID_KEY_DIGEST, AUTHOR_KEY_DIGEST zero
//     ("not set by Enarx", which launched its own VMs): here the node
//     operator launches the CVM, so these are policy: host_data,
//     id_key_digests, author_key_digests (snp.host_data, snp.id_block).
//   - Config abi (minimum guest policy ABI): minimum_abi (snp.policy).
//   - Config signer (AUTHOR_KEY_EN == 1, digest allowed): author_key_digests.
//   - Config id_key_digest allow list: id_key_digests; deny lists are not
//     offered (an allow list is the fail-closed form).
//   - Config measurements hash allow list: measurements (snp.measurement).
//   - Config platform_info_flags (SME/TSME) equality: not adopted as such;
//     go-sev-guest rejects reserved platform-info bits, and SMT is policy.
//   - Config policy_flags (Debug, SingleSocket, SMT): parsed by the Steward
//     but never enforced; enforced here, explicitly: allow_debug,
//     require_single_socket, allow_smt.
//
// Beyond the Steward: the VCEK's TCB must equal REPORTED_TCB and not exceed
// CURRENT_TCB, REPORTED_TCB and LAUNCH_TCB must meet minimum_tcb and
// minimum_launch_tcb, firmware version and build their minimums, the
// committed firmware must be the current one (permit_provisional_firmware
// relaxes it), CHIP_ID must be the VCEK's (snp.chain); and go-sev-guest's
// validate runs over the same policy last (snp.validate).
func (v *Verifier) verifySNP(ctx context.Context, ev *attestation.Evidence, now time.Time) (hardware, error) {
	p := v.pol.p
	s := &p.SNP
	var hw hardware

	att, err := parseSNP(ev.Report, ev.Certificates)
	if err != nil {
		return hw, fail(CheckSNPReport, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if err := abi.ValidateReportFormat(ev.Report); err != nil {
		return hw, failf(CheckSNPReport, ErrMalformed, "%v", err)
	}
	if _, err := abi.ParseSnpPlatformInfo(att.GetReport().GetPlatformInfo()); err != nil {
		return hw, failf(CheckSNPReport, ErrMalformed, "platform info: %v", err)
	}
	tableARK, _ := x509.ParseCertificate(att.GetCertificateChain().GetArkCert())
	testTable := isTestARK(tableARK)

	// AMD's roots (or Options.SNPRoots without the test ARK) first. The
	// test ARK (from the evidence's table, or Options.SNPRoots) is tried
	// only after them: to accept the evidence, as Insecure, when the policy
	// allows test roots, and otherwise only to say why it is refused.
	verified, err := v.snpVerify(ctx, ev, now, v.snpRoots)
	signedByTestRoots := false
	if err != nil && (testTable || v.snpTest != nil) {
		roots := v.snpTest
		if testTable {
			roots = tableRoots(tableARK, att.GetCertificateChain())
		}
		if tverified, terr := v.snpVerify(ctx, ev, now, roots); terr == nil {
			signedByTestRoots = true
			if p.AllowTestRoots {
				verified, err = tverified, nil
				hw.insecureReason = fmt.Sprintf("SEV-SNP evidence signed by go-sev-guest's test-only AMD roots, whose private keys are public: accepted because allow_test_roots = true in %s", p.where())
			}
		}
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return hw, fmt.Errorf("verify: %w", cerr)
		}
		if signedByTestRoots {
			return hw, fail(CheckSNPChain, fmt.Errorf("%w: %w; set allow_test_roots = true in %s only for development", ErrChain, ErrTestRoots, p.where()))
		}
		return hw, v.snpVerifyError(err, verified)
	}
	report := verified.GetReport()
	info, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return hw, failf(CheckSNPReport, ErrMalformed, "signer info: %v", err)
	}
	ekCert, err := endorsementCert(verified.GetCertificateChain(), info.SigningKey)
	if err != nil {
		return hw, failf(CheckSNPChain, ErrChain, "%v", err)
	}
	exts, err := kds.CertificateExtensions(ekCert, info.SigningKey)
	if err != nil {
		return hw, failf(CheckSNPChain, ErrChain, "%v certificate extensions: %v", info.SigningKey, err)
	}
	if info.SigningKey == abi.VcekReportSigner && !allZero(report.GetChipId()) && !bytes.Equal(report.GetChipId(), exts.HWID) {
		return hw, failf(CheckSNPChain, ErrChain, "CHIP_ID %x is not the VCEK's hardware ID %x: the VCEK is another chip's", report.GetChipId(), exts.HWID)
	}

	// Guest policy.
	pol, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return hw, failf(CheckSNPReport, ErrMalformed, "guest policy: %v", err)
	}
	if pol.Debug && !s.AllowDebug {
		return hw, failf(CheckSNPDebug, ErrDebug, "the guest policy (0x%x) allows the host to debug the guest, reading and changing its memory; set [sev-snp] allow_debug = true in %s only for development", report.GetPolicy(), p.where())
	}
	if pol.MigrateMA && !s.AllowMigrationAgent {
		return hw, failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) allows a migration agent; set [sev-snp] allow_migration_agent = true in %s to accept it", report.GetPolicy(), p.where())
	}
	if pol.SMT && !s.AllowSMT {
		return hw, failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) allows SMT, and allow_smt = false in %s", report.GetPolicy(), p.where())
	}
	if s.RequireSingleSocket && !pol.SingleSocket {
		return hw, failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) does not restrict the guest to a single socket, and require_single_socket = true in %s", report.GetPolicy(), p.where())
	}
	if version(pol.ABIMajor, pol.ABIMinor) < version(v.pol.snpMinABIMajor, v.pol.snpMinABIMinor) {
		return hw, failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy requires ABI %d.%d, below minimum_abi = %q of %s", pol.ABIMajor, pol.ABIMinor, s.MinimumABI, p.where())
	}
	if version(pol.ABIMajor, pol.ABIMinor) > version(uint8(report.GetCurrentMajor()), uint8(report.GetCurrentMinor())) {
		return hw, failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy requires ABI %d.%d, above the firmware's %d.%d", pol.ABIMajor, pol.ABIMinor, report.GetCurrentMajor(), report.GetCurrentMinor())
	}
	if s.VMPL >= 0 && report.GetVmpl() != uint32(s.VMPL) {
		return hw, failf(CheckSNPVMPL, ErrVMPL, "the report was requested at VMPL %d, and vmpl = %d in %s", report.GetVmpl(), s.VMPL, p.where())
	}

	// TCB and firmware.
	reported := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetReportedTcb()))
	current := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetCurrentTcb()))
	committed := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetCommittedTcb()))
	launch := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetLaunchTcb()))
	certTCB := kds.DecomposeTCBVersion(exts.TCBVersion)
	switch {
	case exts.TCBVersion != kds.TCBVersion(report.GetReportedTcb()):
		return hw, failf(CheckSNPTCB, ErrTCB, "the %v certifies TCB %s but the report states REPORTED_TCB %s: the host must supply the certificate for the reported TCB", info.SigningKey, tcbString(certTCB), tcbString(reported))
	case !tcbAtLeast(current, certTCB):
		return hw, failf(CheckSNPTCB, ErrTCB, "the %v certifies TCB %s, above CURRENT_TCB %s", info.SigningKey, tcbString(certTCB), tcbString(current))
	case !tcbAtLeast(reported, v.pol.snpMinTCB):
		return hw, failf(CheckSNPTCB, ErrTCB, "REPORTED_TCB %s is below minimum_tcb %s of %s", tcbString(reported), tcbString(v.pol.snpMinTCB), p.where())
	case !tcbAtLeast(launch, v.pol.snpMinLaunchTCB):
		return hw, failf(CheckSNPTCB, ErrTCB, "LAUNCH_TCB %s is below minimum_launch_tcb %s of %s", tcbString(launch), tcbString(v.pol.snpMinLaunchTCB), p.where())
	case uint8(report.GetCurrentBuild()) < s.MinimumBuild:
		return hw, failf(CheckSNPTCB, ErrTCB, "firmware build %d is below minimum_build = %d of %s", report.GetCurrentBuild(), s.MinimumBuild, p.where())
	case version(uint8(report.GetCurrentMajor()), uint8(report.GetCurrentMinor())) < v.pol.snpMinVersion:
		return hw, failf(CheckSNPTCB, ErrTCB, "firmware %d.%d is below minimum_version = %q of %s", report.GetCurrentMajor(), report.GetCurrentMinor(), s.MinimumVersion, p.where())
	}
	if !s.PermitProvisionalFirmware && (committed != current ||
		report.GetCommittedMajor() != report.GetCurrentMajor() || report.GetCommittedMinor() != report.GetCurrentMinor() || report.GetCommittedBuild() != report.GetCurrentBuild()) {
		return hw, failf(CheckSNPTCB, ErrTCB, "committed firmware (TCB %s, %d.%d.%d) is not the current one (TCB %s, %d.%d.%d); set [sev-snp] permit_provisional_firmware = true in %s to accept uncommitted firmware",
			tcbString(committed), report.GetCommittedMajor(), report.GetCommittedMinor(), report.GetCommittedBuild(),
			tcbString(current), report.GetCurrentMajor(), report.GetCurrentMinor(), report.GetCurrentBuild(), p.where())
	}
	if report.GetGuestSvn() < s.MinimumGuestSVN {
		return hw, failf(CheckSNPGuestSVN, ErrTCB, "GUEST_SVN %d is below minimum_guest_svn = %d of %s", report.GetGuestSvn(), s.MinimumGuestSVN, p.where())
	}

	// Launch measurement and launch-time data.
	if len(v.pol.snpMeasurements) > 0 && !containsBytes(v.pol.snpMeasurements, report.GetMeasurement()) {
		return hw, failf(CheckSNPMeasurement, ErrMeasurement, "MEASUREMENT %x is not in [sev-snp] measurements of %s", report.GetMeasurement(), p.where())
	}
	if v.pol.snpHostData != nil && !bytes.Equal(v.pol.snpHostData, report.GetHostData()) {
		return hw, failf(CheckSNPHostData, ErrMeasurement, "HOST_DATA %x is not host_data = %q of %s", report.GetHostData(), s.HostData, p.where())
	}
	if len(v.pol.snpIDKeys) > 0 && !containsBytes(v.pol.snpIDKeys, report.GetIdKeyDigest()) {
		return hw, failf(CheckSNPIDBlock, ErrMeasurement, "ID_KEY_DIGEST %x is not in id_key_digests of %s", report.GetIdKeyDigest(), p.where())
	}
	if len(v.pol.snpAuthorKeys) > 0 {
		if !info.AuthorKeyEn {
			return hw, failf(CheckSNPIDBlock, ErrMeasurement, "the guest was launched without an author key, and author_key_digests is set in %s", p.where())
		}
		if !containsBytes(v.pol.snpAuthorKeys, report.GetAuthorKeyDigest()) {
			return hw, failf(CheckSNPIDBlock, ErrMeasurement, "AUTHOR_KEY_DIGEST %x is not in author_key_digests of %s", report.GetAuthorKeyDigest(), p.where())
		}
	}

	// go-sev-guest's own policy validation, over the same policy.
	if err := safely("go-sev-guest validate", func() error {
		return validate.SnpAttestation(verified, v.validateOptions(ev))
	}); err != nil {
		return hw, failf(CheckSNPValidate, ErrGuestPolicy, "%v", err)
	}
	hw.measurement = hex.EncodeToString(report.GetMeasurement())
	return hw, nil
}

// snpVerify runs go-sev-guest's verify (certificate chain and signature) on
// a fresh parse of the evidence, which verify may fill in, and returns it.
func (v *Verifier) snpVerify(ctx context.Context, ev *attestation.Evidence, now time.Time, roots map[string][]*trust.AMDRootCerts) (*sevpb.Attestation, error) {
	att, err := parseSNP(ev.Report, ev.Certificates)
	if err != nil {
		return nil, err
	}
	s := &v.pol.p.SNP
	opts := &sevverify.Options{
		CheckRevocations:    s.CheckRevocations,
		DisableCertFetching: !s.Fetch,
		Getter:              v.snpGetter,
		Now:                 now,
		TrustedRoots:        roots,
	}
	err = safely("go-sev-guest verify", func() error { return sevverify.SnpAttestationContext(ctx, att, opts) })
	return att, err
}

// snpVerifyError classifies a go-sev-guest verify failure: a report that
// the presented VCEK does not sign is a signature failure; anything else
// (no VCEK, a chain to no trusted root, a revoked key) a chain failure.
func (v *Verifier) snpVerifyError(err error, att *sevpb.Attestation) error {
	p := v.pol.p
	if att != nil {
		if info, ierr := abi.ParseSignerInfo(att.GetReport().GetSignerInfo()); ierr == nil {
			if cert, cerr := endorsementCert(att.GetCertificateChain(), info.SigningKey); cerr == nil {
				raw, rerr := abi.ReportToAbiBytes(att.GetReport())
				if rerr == nil && safely("signature", func() error { return sevverify.SnpReportSignature(raw, cert) }) != nil {
					return failf(CheckSNPSignature, ErrSignature, "the report is not signed by the %v in the evidence: %v", info.SigningKey, err)
				}
			} else if !p.SNP.Fetch {
				return failf(CheckSNPChain, ErrChain, "%v, and [sev-snp] fetch = false in %s: set fetch = true to fetch it from AMD's KDS", cerr, p.where())
			}
		}
	}
	return failf(CheckSNPChain, ErrChain, "%v", err)
}

// validateOptions expresses the [sev-snp] policy for go-sev-guest's validate.
func (v *Verifier) validateOptions(ev *attestation.Evidence) *validate.Options {
	s := &v.pol.p.SNP
	o := &validate.Options{
		GuestPolicy: abi.SnpPolicy{
			ABIMajor:     v.pol.snpMinABIMajor,
			ABIMinor:     v.pol.snpMinABIMinor,
			SMT:          s.AllowSMT,
			MigrateMA:    s.AllowMigrationAgent,
			Debug:        s.AllowDebug,
			SingleSocket: s.RequireSingleSocket,
		},
		MinimumGuestSvn:           s.MinimumGuestSVN,
		ReportData:                ev.ReportData,
		HostData:                  v.pol.snpHostData,
		MinimumBuild:              s.MinimumBuild,
		MinimumVersion:            v.pol.snpMinVersion,
		MinimumTCB:                v.pol.snpMinTCB,
		MinimumLaunchTCB:          v.pol.snpMinLaunchTCB,
		PermitProvisionalFirmware: s.PermitProvisionalFirmware,
	}
	if s.VMPL >= 0 {
		vmpl := s.VMPL
		o.VMPL = &vmpl
	}
	return o
}

// parseSNP parses a report and its GHCB certificate table, never panicking.
func parseSNP(report, certs []byte) (att *sevpb.Attestation, err error) {
	if len(report) != abi.ReportSize {
		return nil, fmt.Errorf("SEV-SNP report is %d bytes, want %d", len(report), abi.ReportSize)
	}
	defer func() {
		if p := recover(); p != nil {
			att, err = nil, fmt.Errorf("malformed SEV-SNP report or certificate table: %v", p)
		}
	}()
	r, err := abi.ReportToProto(report)
	if err != nil {
		return nil, fmt.Errorf("SEV-SNP report: %w", err)
	}
	chain := &sevpb.CertificateChain{Extras: map[string][]byte{}}
	if len(certs) != 0 {
		var t abi.CertTable
		if err := t.Unmarshal(certs); err != nil {
			return nil, fmt.Errorf("SEV-SNP certificate table: %w", err)
		}
		chain = t.Proto()
	}
	return &sevpb.Attestation{Report: r, CertificateChain: chain}, nil
}

// tableRoots makes go-sev-guest roots of the test ARK and the ASK/ASVK of
// the evidence's certificate table, under the ARK's product line.
func tableRoots(ark *x509.Certificate, chain *sevpb.CertificateChain) map[string][]*trust.AMDRootCerts {
	line, ok := strings.CutPrefix(ark.Subject.CommonName, "ARK-")
	if !ok {
		return nil
	}
	certs := &trust.ProductCerts{Ark: ark}
	if c, err := x509.ParseCertificate(chain.GetAskCert()); err == nil {
		certs.Ask = c
	}
	for _, der := range chain.GetExtras() {
		if c, err := x509.ParseCertificate(der); err == nil && strings.HasPrefix(c.Subject.CommonName, "SEV-VLEK-") {
			certs.Asvk = c
		}
	}
	return map[string][]*trust.AMDRootCerts{line: {{Product: line, ProductLine: line, ProductCerts: certs}}}
}

// endorsementCert returns the VCEK or VLEK that signs a report.
func endorsementCert(chain *sevpb.CertificateChain, key abi.ReportSigner) (*x509.Certificate, error) {
	var der []byte
	switch key {
	case abi.VcekReportSigner:
		der = chain.GetVcekCert()
	case abi.VlekReportSigner:
		der = chain.GetVlekCert()
	default:
		return nil, fmt.Errorf("the report is signed by %v, not a VCEK or VLEK", key)
	}
	if len(der) == 0 {
		return nil, fmt.Errorf("the evidence's certificate table has no %v certificate", key)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%v certificate: %w", key, err)
	}
	return c, nil
}

func version(major, minor uint8) uint16 { return uint16(major)<<8 | uint16(minor) }

func tcbAtLeast(have, least kds.TCBParts) bool {
	return have.BlSpl >= least.BlSpl && have.TeeSpl >= least.TeeSpl && have.SnpSpl >= least.SnpSpl && have.UcodeSpl >= least.UcodeSpl
}

func tcbString(t kds.TCBParts) string {
	return fmt.Sprintf("{bootloader=%d tee=%d snp=%d microcode=%d}", t.BlSpl, t.TeeSpl, t.SnpSpl, t.UcodeSpl)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// safely runs f, turning a panic of a library parser into an error.
func safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s failed on malformed input: %v", what, p)
		}
	}()
	return f()
}
