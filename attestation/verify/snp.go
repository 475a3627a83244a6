package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
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

// verifySNP checks an SEV-SNP report and its certificates, in the layers of
// go-sev-guest itself (abi parses, verify checks the signature chain,
// validate checks the policy):
//
//  1. parseSNPEvidence: the report and certificate table parse (snp.report).
//  2. checkSNPChain: go-sev-guest's verify.SnpAttestation with AMD's roots
//     (or test roots by opt-in), then the endorsement key against the
//     report (snp.chain, snp.signature).
//  3. snpPolicy.checkGuestPolicy: the guest policy and VMPL (snp.debug,
//     snp.policy, snp.vmpl).
//  4. snpPolicy.checkTCB: TCB, firmware and guest SVN (snp.tcb,
//     snp.guest_svn).
//  5. snpPolicy.checkLaunchData: MEASUREMENT, HOST_DATA, ID block
//     (snp.measurement, snp.host_data, snp.id_block).
//  6. snpPolicy.checkValidate: go-sev-guest's validate.SnpAttestation
//     (snp.validate), the second line of defence.
//
// Steps 3 to 5 are the first line: the project's own checks, each failure
// naming its check, the value found, the policy key and file, and the fix.
// Step 6 expresses the same policy as go-sev-guest's validate.Options and
// runs last, as defence in depth: should our checks or go-sev-guest's
// disagree, the stricter wins. Both read the policy from one snpPolicy,
// built once by newSNPPolicy, so they cannot drift apart.
//
// It covers every check of the Enarx Steward's SEV-SNP verifier
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
	att, err := parseSNPEvidence(ev)
	if err != nil {
		return hardware{}, err
	}
	chain, err := v.checkSNPChain(ctx, ev, att, now)
	if err != nil {
		return hardware{}, err
	}
	want := newSNPPolicy(v.pol, ev.ReportData)
	report := chain.att.GetReport()
	if err := want.checkGuestPolicy(report); err != nil {
		return hardware{}, err
	}
	if err := want.checkTCB(report, chain); err != nil {
		return hardware{}, err
	}
	if err := want.checkLaunchData(report, chain.signer); err != nil {
		return hardware{}, err
	}
	if err := want.checkValidate(chain.att); err != nil {
		return hardware{}, err
	}
	return hardware{measurement: hex.EncodeToString(report.GetMeasurement()), insecureReason: chain.insecureReason}, nil
}

// parseSNPEvidence parses the report and its certificate table and checks
// the report's format and platform info (snp.report). The checks that
// follow verify their own fresh parse (snpVerify); this one gives the
// certificate table's ARK to the chain check.
func parseSNPEvidence(ev *attestation.Evidence) (*sevpb.Attestation, error) {
	att, err := parseSNP(ev.Report, ev.Certificates)
	if err != nil {
		return nil, fail(CheckSNPReport, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if err := abi.ValidateReportFormat(ev.Report); err != nil {
		return nil, failf(CheckSNPReport, ErrMalformed, "%v", err)
	}
	if _, err := abi.ParseSnpPlatformInfo(att.GetReport().GetPlatformInfo()); err != nil {
		return nil, failf(CheckSNPReport, ErrMalformed, "platform info: %v", err)
	}
	return att, nil
}

// snpChain is what the chain check establishes about a report.
type snpChain struct {
	att            *sevpb.Attestation // as go-sev-guest's verify checked (and filled in) it
	signer         abi.SignerInfo     // the report's SIGNER_INFO
	exts           *kds.Extensions    // of the VCEK or VLEK that signs the report
	insecureReason string             // set when only the test roots sign it
}

// checkSNPChain is the signature and certificate chain check (snp.chain,
// snp.signature): go-sev-guest's verify.SnpAttestation with the trusted
// roots (snpVerifyRoots), then the endorsement key's certificate, its
// extensions and CHIP_ID (endorse).
func (v *Verifier) checkSNPChain(ctx context.Context, ev *attestation.Evidence, att *sevpb.Attestation, now time.Time) (*snpChain, error) {
	verified, insecureReason, err := v.snpVerifyRoots(ctx, ev, att, now)
	if err != nil {
		return nil, err
	}
	c := &snpChain{att: verified, insecureReason: insecureReason}
	if err := c.endorse(); err != nil {
		return nil, err
	}
	return c, nil
}

// snpVerifyRoots runs go-sev-guest's verify with AMD's roots (or
// Options.SNPRoots without the test ARK) first. The test ARK (from the
// evidence's table, or Options.SNPRoots) is tried only after them: to
// accept the evidence, as Insecure, when the policy allows test roots, and
// otherwise only to say why it is refused.
func (v *Verifier) snpVerifyRoots(ctx context.Context, ev *attestation.Evidence, att *sevpb.Attestation, now time.Time) (*sevpb.Attestation, string, error) {
	p := v.pol.p
	verified, err := v.snpVerify(ctx, ev, now, v.snpRoots)
	if err == nil {
		return verified, "", nil
	}
	tverified, testErr := v.snpVerifyTest(ctx, ev, att, now)
	if testErr == nil && p.AllowTestRoots {
		return tverified, fmt.Sprintf("SEV-SNP evidence signed by go-sev-guest's test-only AMD roots, whose private keys are public: accepted because allow_test_roots = true in %s", p.where()), nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, "", fmt.Errorf("verify: %w", cerr)
	}
	if testErr == nil {
		return nil, "", fail(CheckSNPChain, fmt.Errorf("%w: %w; set allow_test_roots = true in %s only for development", ErrChain, ErrTestRoots, p.where()))
	}
	return nil, "", v.snpVerifyError(err, verified)
}

// errNoTestRoots: neither the evidence's table nor Options.SNPRoots holds
// the test ARK.
var errNoTestRoots = errors.New("no test roots")

// snpVerifyTest runs go-sev-guest's verify with the test ARK: the
// evidence's table's if it holds it, else Options.SNPRoots' test entries.
func (v *Verifier) snpVerifyTest(ctx context.Context, ev *attestation.Evidence, att *sevpb.Attestation, now time.Time) (*sevpb.Attestation, error) {
	tableARK, _ := x509.ParseCertificate(att.GetCertificateChain().GetArkCert())
	roots := v.snpTest
	if isTestARK(tableARK) {
		roots = tableRoots(tableARK, att.GetCertificateChain())
	} else if roots == nil {
		return nil, errNoTestRoots
	}
	return v.snpVerify(ctx, ev, now, roots)
}

// endorse reads the verified report's signer, its VCEK or VLEK and that
// certificate's extensions, and checks CHIP_ID against the VCEK's HWID.
func (c *snpChain) endorse() error {
	report := c.att.GetReport()
	info, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return failf(CheckSNPReport, ErrMalformed, "signer info: %v", err)
	}
	ekCert, err := endorsementCert(c.att.GetCertificateChain(), info.SigningKey)
	if err != nil {
		return failf(CheckSNPChain, ErrChain, "%v", err)
	}
	exts, err := kds.CertificateExtensions(ekCert, info.SigningKey)
	if err != nil {
		return failf(CheckSNPChain, ErrChain, "%v certificate extensions: %v", info.SigningKey, err)
	}
	if info.SigningKey == abi.VcekReportSigner && !allZero(report.GetChipId()) && !bytes.Equal(report.GetChipId(), exts.HWID) {
		return failf(CheckSNPChain, ErrChain, "CHIP_ID %x is not the VCEK's hardware ID %x: the VCEK is another chip's", report.GetChipId(), exts.HWID)
	}
	c.signer, c.exts = info, exts
	return nil
}

// snpPolicy is the [sev-snp] policy as the SEV-SNP checks read it. Every
// value both lines check is read, by our checks and by go-sev-guest's
// validate alike, from opts; newSNPPolicy alone fills it in from the
// policy. The allow lists are ours alone: validate.Options takes a single
// MEASUREMENT, and trusts an ID block through either of its digests, where
// measurements is a list and id_key_digests and author_key_digests must
// each hold. p is the policy as written, for messages only (its file, and
// the keys quoted as the operator wrote them).
type snpPolicy struct {
	opts         *validate.Options
	measurements [][]byte // MEASUREMENT allow list; empty: any
	idKeys       [][]byte // ID_KEY_DIGEST allow list; empty: any
	authorKeys   [][]byte // AUTHOR_KEY_DIGEST allow list; set: AUTHOR_KEY_EN required
	p            *Policy
}

// newSNPPolicy builds the SEV-SNP checks' policy from the compiled
// [sev-snp] table, reading each of its values once; reportData is the
// evidence's REPORT_DATA, which validate compares again.
func newSNPPolicy(c *compiled, reportData []byte) *snpPolicy {
	s := &c.p.SNP
	o := &validate.Options{
		GuestPolicy: abi.SnpPolicy{
			ABIMajor:     c.snpMinABIMajor,
			ABIMinor:     c.snpMinABIMinor,
			SMT:          s.AllowSMT,
			MigrateMA:    s.AllowMigrationAgent,
			Debug:        s.AllowDebug,
			SingleSocket: s.RequireSingleSocket,
		},
		MinimumGuestSvn:           s.MinimumGuestSVN,
		ReportData:                reportData,
		HostData:                  c.snpHostData,
		MinimumBuild:              s.MinimumBuild,
		MinimumVersion:            c.snpMinVersion,
		MinimumTCB:                c.snpMinTCB,
		MinimumLaunchTCB:          c.snpMinLaunchTCB,
		PermitProvisionalFirmware: s.PermitProvisionalFirmware,
	}
	if s.VMPL >= 0 {
		vmpl := s.VMPL
		o.VMPL = &vmpl
	}
	return &snpPolicy{opts: o, measurements: c.snpMeasurements, idKeys: c.snpIDKeys, authorKeys: c.snpAuthorKeys, p: c.p}
}

// checkGuestPolicy checks the report's guest policy and VMPL (snp.debug,
// snp.policy, snp.vmpl). GuestPolicy's booleans are what the policy allows
// (SingleSocket: what it requires), as validate reads them.
func (w *snpPolicy) checkGuestPolicy(report *sevpb.Report) error {
	want, where := &w.opts.GuestPolicy, w.p.where()
	pol, err := abi.ParseSnpPolicy(report.GetPolicy())
	if err != nil {
		return failf(CheckSNPReport, ErrMalformed, "guest policy: %v", err)
	}
	if pol.Debug && !want.Debug {
		return failf(CheckSNPDebug, ErrDebug, "the guest policy (0x%x) allows the host to debug the guest, reading and changing its memory; set [sev-snp] allow_debug = true in %s only for development", report.GetPolicy(), where)
	}
	if pol.MigrateMA && !want.MigrateMA {
		return failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) allows a migration agent; set [sev-snp] allow_migration_agent = true in %s to accept it", report.GetPolicy(), where)
	}
	if pol.SMT && !want.SMT {
		return failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) allows SMT, and allow_smt = false in %s", report.GetPolicy(), where)
	}
	if want.SingleSocket && !pol.SingleSocket {
		return failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy (0x%x) does not restrict the guest to a single socket, and require_single_socket = true in %s", report.GetPolicy(), where)
	}
	if version(pol.ABIMajor, pol.ABIMinor) < version(want.ABIMajor, want.ABIMinor) {
		return failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy requires ABI %d.%d, below minimum_abi = %q of %s", pol.ABIMajor, pol.ABIMinor, w.p.SNP.MinimumABI, where)
	}
	if version(pol.ABIMajor, pol.ABIMinor) > version(uint8(report.GetCurrentMajor()), uint8(report.GetCurrentMinor())) {
		return failf(CheckSNPPolicy, ErrGuestPolicy, "the guest policy requires ABI %d.%d, above the firmware's %d.%d", pol.ABIMajor, pol.ABIMinor, report.GetCurrentMajor(), report.GetCurrentMinor())
	}
	if w.opts.VMPL != nil && report.GetVmpl() != uint32(*w.opts.VMPL) {
		return failf(CheckSNPVMPL, ErrVMPL, "the report was requested at VMPL %d, and vmpl = %d in %s", report.GetVmpl(), *w.opts.VMPL, where)
	}
	return nil
}

// checkTCB checks the TCBs, firmware and guest SVN (snp.tcb,
// snp.guest_svn): the endorsement key certifies REPORTED_TCB and no more
// than CURRENT_TCB; REPORTED_TCB and LAUNCH_TCB, firmware build and
// version meet their minimums; the committed firmware is the current one.
func (w *snpPolicy) checkTCB(report *sevpb.Report, chain *snpChain) error {
	o, where, key := w.opts, w.p.where(), chain.signer.SigningKey
	reported := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetReportedTcb()))
	current := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetCurrentTcb()))
	launch := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetLaunchTcb()))
	certTCB := kds.DecomposeTCBVersion(chain.exts.TCBVersion)
	switch {
	case chain.exts.TCBVersion != kds.TCBVersion(report.GetReportedTcb()):
		return failf(CheckSNPTCB, ErrTCB, "the %v certifies TCB %s but the report states REPORTED_TCB %s: the host must supply the certificate for the reported TCB", key, tcbString(certTCB), tcbString(reported))
	case !tcbAtLeast(current, certTCB):
		return failf(CheckSNPTCB, ErrTCB, "the %v certifies TCB %s, above CURRENT_TCB %s", key, tcbString(certTCB), tcbString(current))
	case !tcbAtLeast(reported, o.MinimumTCB):
		return failf(CheckSNPTCB, ErrTCB, "REPORTED_TCB %s is below minimum_tcb %s of %s", tcbString(reported), tcbString(o.MinimumTCB), where)
	case !tcbAtLeast(launch, o.MinimumLaunchTCB):
		return failf(CheckSNPTCB, ErrTCB, "LAUNCH_TCB %s is below minimum_launch_tcb %s of %s", tcbString(launch), tcbString(o.MinimumLaunchTCB), where)
	case uint8(report.GetCurrentBuild()) < o.MinimumBuild:
		return failf(CheckSNPTCB, ErrTCB, "firmware build %d is below minimum_build = %d of %s", report.GetCurrentBuild(), o.MinimumBuild, where)
	case version(uint8(report.GetCurrentMajor()), uint8(report.GetCurrentMinor())) < o.MinimumVersion:
		return failf(CheckSNPTCB, ErrTCB, "firmware %d.%d is below minimum_version = %q of %s", report.GetCurrentMajor(), report.GetCurrentMinor(), w.p.SNP.MinimumVersion, where)
	}
	if err := w.checkCommitted(report, current); err != nil {
		return err
	}
	if report.GetGuestSvn() < o.MinimumGuestSvn {
		return failf(CheckSNPGuestSVN, ErrTCB, "GUEST_SVN %d is below minimum_guest_svn = %d of %s", report.GetGuestSvn(), o.MinimumGuestSvn, where)
	}
	return nil
}

// checkCommitted checks that the committed firmware (TCB, version, build)
// is the current one, unless PermitProvisionalFirmware (snp.tcb).
func (w *snpPolicy) checkCommitted(report *sevpb.Report, current kds.TCBParts) error {
	if w.opts.PermitProvisionalFirmware {
		return nil
	}
	committed := kds.DecomposeTCBVersion(kds.TCBVersion(report.GetCommittedTcb()))
	if committed != current || report.GetCommittedMajor() != report.GetCurrentMajor() || report.GetCommittedMinor() != report.GetCurrentMinor() || report.GetCommittedBuild() != report.GetCurrentBuild() {
		return failf(CheckSNPTCB, ErrTCB, "committed firmware (TCB %s, %d.%d.%d) is not the current one (TCB %s, %d.%d.%d); set [sev-snp] permit_provisional_firmware = true in %s to accept uncommitted firmware",
			tcbString(committed), report.GetCommittedMajor(), report.GetCommittedMinor(), report.GetCommittedBuild(),
			tcbString(current), report.GetCurrentMajor(), report.GetCurrentMinor(), report.GetCurrentBuild(), w.p.where())
	}
	return nil
}

// checkLaunchData checks what the guest was launched with: MEASUREMENT,
// HOST_DATA and the ID block's digests (snp.measurement, snp.host_data,
// snp.id_block). REPORT_DATA, the binding of the Keep's key and inputs,
// is not checked here: Verify checks it first, for every TEE
// (Evidence.CheckBinding, check binding), and checkValidate again.
func (w *snpPolicy) checkLaunchData(report *sevpb.Report, signer abi.SignerInfo) error {
	where := w.p.where()
	if len(w.measurements) > 0 && !containsBytes(w.measurements, report.GetMeasurement()) {
		return failf(CheckSNPMeasurement, ErrMeasurement, "MEASUREMENT %x is not in [sev-snp] measurements of %s", report.GetMeasurement(), where)
	}
	if w.opts.HostData != nil && !bytes.Equal(w.opts.HostData, report.GetHostData()) {
		return failf(CheckSNPHostData, ErrMeasurement, "HOST_DATA %x is not host_data = %q of %s", report.GetHostData(), w.p.SNP.HostData, where)
	}
	if len(w.idKeys) > 0 && !containsBytes(w.idKeys, report.GetIdKeyDigest()) {
		return failf(CheckSNPIDBlock, ErrMeasurement, "ID_KEY_DIGEST %x is not in id_key_digests of %s", report.GetIdKeyDigest(), where)
	}
	if len(w.authorKeys) > 0 {
		if !signer.AuthorKeyEn {
			return failf(CheckSNPIDBlock, ErrMeasurement, "the guest was launched without an author key, and author_key_digests is set in %s", where)
		}
		if !containsBytes(w.authorKeys, report.GetAuthorKeyDigest()) {
			return failf(CheckSNPIDBlock, ErrMeasurement, "AUTHOR_KEY_DIGEST %x is not in author_key_digests of %s", report.GetAuthorKeyDigest(), where)
		}
	}
	return nil
}

// checkValidate is the second line of defence (snp.validate): go-sev-guest's
// validate.SnpAttestation over the same options our checks read. Evidence
// that passes our checks should pass it; it fails only where go-sev-guest
// is stricter than we are (it also rejects, for one, a guest policy with
// CXL_ALLOWED, for which the policy has no key), or where our checks and
// go-sev-guest's part ways, which is what defence in depth is for.
func (w *snpPolicy) checkValidate(att *sevpb.Attestation) error {
	if err := safely("go-sev-guest validate", func() error {
		return validate.SnpAttestation(att, w.opts)
	}); err != nil {
		return failf(CheckSNPValidate, ErrGuestPolicy, "%v", err)
	}
	return nil
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
