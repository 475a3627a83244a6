// Package verify is the relying party's side of attestation: it turns a
// Keep's evidence (attestation.Evidence) into attestation.Assertions, the
// two facts a client needs — (1) which TEE, at which version, and (2) which
// runtime, whose integrity the reference values establish — or into a
// *CheckError naming the check that failed.
//
// The hardware checks are go-sev-guest's and go-tdx-guest's verify (the
// signature and certificate chain) and the policy checks are stated
// explicitly here, each with its own check name, before go-sev-guest's
// validate runs over the same policy. Verification is offline by default.
// Everything fails closed: tee "none" evidence and evidence signed by test
// roots are refused unless the policy opts in, and then always reported as
// Insecure.
package verify

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/verify/trust"

	"github.com/enarx/containerd-shim-enarx/attestation"
	_ "github.com/enarx/containerd-shim-enarx/attestation/verify/internal/quietlog" // before go-tdx-guest's logger.Init
)

// Options configure a Verifier.
type Options struct {
	// Policy is what to accept; nil means DefaultPolicy().
	Policy *Policy
	// Reference maps runtime digests to versions. Required: with nil every
	// runtime is unknown and every verification fails.
	Reference *ReferenceValues
	// Now is the time certificates are checked at; nil means time.Now.
	Now func() time.Time
	// SNPRoots replaces go-sev-guest's embedded AMD roots, by product line
	// ("Milan", "Genoa", "Turin"). For tests and private roots; it is not
	// an opt-in for go-sev-guest's test ARK, which is trusted only with the
	// policy's allow_test_roots (entries holding it are ignored otherwise).
	SNPRoots map[string][]*trust.AMDRootCerts
	// SNPGetter fetches from AMD's KDS when the policy's [sev-snp] fetch is
	// true; nil then means go-sev-guest's default HTTPS getter.
	SNPGetter trust.HTTPSGetter
	// TDXRoots replaces Intel's SGX root CA (embedded here, the one
	// go-tdx-guest embeds) as the root of PCK chains. For tests.
	TDXRoots *x509.CertPool
}

// Verifier checks evidence against one policy and one set of reference
// values. It is safe for concurrent use.
type Verifier struct {
	pol       *compiled
	ref       *ReferenceValues
	now       func() time.Time
	snpRoots  map[string][]*trust.AMDRootCerts // test ARK removed; nil: AMD's
	snpTest   map[string][]*trust.AMDRootCerts // test-ARK entries of SNPRoots, used only with allow_test_roots
	snpGetter trust.HTTPSGetter
	tdxRoots  *x509.CertPool
}

// New returns a Verifier. It fails if the policy is not valid.
func New(opts Options) (*Verifier, error) {
	p := opts.Policy
	if p == nil {
		p = DefaultPolicy()
	}
	c, err := p.compile()
	if err != nil {
		return nil, err
	}
	v := &Verifier{pol: c, ref: opts.Reference, now: opts.Now, snpGetter: opts.SNPGetter, tdxRoots: opts.TDXRoots}
	if v.now == nil {
		v.now = time.Now
	}
	if v.tdxRoots == nil {
		v.tdxRoots = intelRoots()
	}
	v.snpRoots, v.snpTest = splitTestRoots(opts.SNPRoots)
	return v, nil
}

// VerifyBlob parses an evidence blob (attestation.ParseEvidence) and
// verifies it (Verify).
func (v *Verifier) VerifyBlob(ctx context.Context, data []byte, nonce []byte) (*attestation.Assertions, error) {
	ev, err := attestation.ParseEvidence(data)
	if err != nil {
		return nil, fail(CheckEvidence, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	return v.verify(ctx, ev, nonce)
}

// Verify checks ev fully and returns what it establishes. nonce, when not
// nil, must equal the nonce the evidence binds (compared in constant time).
// Every failure is a *CheckError; the checks run in this order, and the
// first that fails is reported:
//
//  1. evidence: ev has the structure attestation.ParseEvidence requires.
//  2. tee: the TEE kind is allowed (tees); "none" only with allow_insecure.
//  3. binding: REPORT_DATA in the evidence and in the hardware report is
//     the hash of the inputs (Keep key, workload, runtime digest and
//     version, config, nonce), and tee_version is what the report says.
//  4. hardware signature and chain: snp.report, snp.chain, snp.signature
//     (see verifySNP) or tdx.quote, tdx.chain, tdx.signature.
//  5. TEE policy: snp.policy, snp.debug, snp.vmpl, snp.tcb, snp.guest_svn,
//     snp.measurement, snp.host_data, snp.id_block, snp.validate; or
//     tdx.attributes, tdx.debug, tdx.tcb, tdx.measurement.
//  6. nonce: the caller's nonce, if given, is the evidence's.
//  7. runtime: the runtime digest is in the reference values, which give
//     the version the evidence states; runtime.measurement: the hardware's
//     launch measurement is one the reference values list for that runtime
//     (else allow_unmeasured_runtime marks the assertions insecure);
//     runtime.version: that version is allowed by runtime_versions.
//  8. workload: the workload digest is allowed by workload_digests.
func (v *Verifier) Verify(ctx context.Context, ev *attestation.Evidence, nonce []byte) (*attestation.Assertions, error) {
	if ev == nil {
		return nil, failf(CheckEvidence, ErrMalformed, "no evidence")
	}
	// Check the structure as a parser would, and verify a private copy
	// that the caller cannot change underneath.
	b, err := ev.Marshal()
	if err != nil {
		return nil, fail(CheckEvidence, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	return v.VerifyBlob(ctx, b, nonce)
}

// hardware is what the TEE-specific checks establish.
type hardware struct {
	measurement    string
	rtmrs          []string // TDX's, hex
	logged         []string // runtimes the TDX event log measured, replayed against the quote
	insecureReason string
}

func (v *Verifier) verify(ctx context.Context, ev *attestation.Evidence, nonce []byte) (*attestation.Assertions, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	p := v.pol.p
	switch ev.TEE {
	case attestation.TEENone:
		if !p.AllowInsecure {
			return nil, fail(CheckTEE, fmt.Errorf("%w; set allow_insecure = true in %s only for development", ErrInsecure, p.where()))
		}
	default:
		if !v.pol.teeAllowed(ev.TEE) {
			return nil, failf(CheckTEE, ErrTEENotAllowed, "tee %q is not in tees = %q of %s", ev.TEE, v.pol.tees, p.where())
		}
	}
	if err := ev.CheckBinding(); err != nil {
		return nil, fail(CheckBinding, err)
	}

	now := v.now()
	var hw hardware
	switch ev.TEE {
	case attestation.TEENone:
		hw.insecureReason = fmt.Sprintf("tee %q: the Keep runs without a TEE, nothing it reports is confidential or hardware-backed (accepted because allow_insecure = true in %s)", attestation.TEENone, p.where())
	case attestation.TEESEVSNP:
		r, err := v.verifySNP(ctx, ev, now)
		if err != nil {
			return nil, err
		}
		hw = r
	case attestation.TEETDX:
		r, err := v.verifyTDX(ev, now)
		if err != nil {
			return nil, err
		}
		hw = r
	default:
		return nil, failf(CheckTEE, ErrTEENotAllowed, "tee %q", ev.TEE)
	}

	if nonce != nil && subtle.ConstantTimeCompare(nonce, ev.Inputs.Nonce) != 1 {
		return nil, failf(CheckNonce, ErrNonceMismatch, "the evidence binds a nonce of %d bytes that is not the %d-byte nonce given: it was produced for another request (replayed?)", len(ev.Inputs.Nonce), len(nonce))
	}

	rt, ok := v.ref.Lookup(ev.Inputs.RuntimeDigest)
	if !ok {
		return nil, failf(CheckRuntime, ErrUnknownRuntime, "runtime digest %s is not in the reference values %s", ev.Inputs.RuntimeDigest, v.ref.where())
	}
	if rt.Version != ev.Inputs.RuntimeVersion {
		return nil, failf(CheckRuntime, ErrUnknownRuntime, "the evidence states runtime_version %q, but the reference values %s give %q for runtime digest %s",
			ev.Inputs.RuntimeVersion, v.ref.where(), rt.Version, rt.Digest)
	}
	// The digest is what the guest states; the hardware's launch
	// measurement is what backs it, when the reference values list it for
	// that runtime, or the launch measurement and the TDX register the
	// image measures its runtimes into at run time.
	for _, d := range hw.logged {
		if _, ok := v.ref.Lookup(d); !ok {
			return nil, failf(CheckRuntimeMeasurement, ErrUnmeasuredRuntime, "the RTMR%d event log shows runtime %s, which is not in the reference values %s: a runtime not known to run on this node image has run on it since it booted", attestation.RuntimeRTMR, d, v.ref.where())
		}
	}
	measuredBy := ""
	if ev.TEE != attestation.TEENone {
		measuredBy = v.ref.measured(ev.TEE, hw.measurement, hw.rtmrs, rt.Digest, hw.logged)
	}
	if ev.TEE != attestation.TEENone && measuredBy == "" {
		msg := fmt.Sprintf("no reference measurement for %s launch measurement %s with runtime %s in the reference values %s", ev.TEE, hw.measurement, rt.Digest, v.ref.where())
		if !p.AllowUnmeasuredRuntime {
			return nil, failf(CheckRuntimeMeasurement, ErrUnmeasuredRuntime, "%s: add the launch measurement of the node image that holds this runtime (enarx reference-values --measurement %s:<hex>), or set allow_unmeasured_runtime = true in %s (insecure)", msg, ev.TEE, p.where())
		}
		reason := "runtime integrity not backed by a hardware measurement: " + msg + " (accepted because allow_unmeasured_runtime = true in " + p.where() + ")"
		if hw.insecureReason != "" {
			reason = hw.insecureReason + "; " + reason
		}
		hw.insecureReason = reason
	}
	if len(v.pol.runtimeVersions) > 0 && !v.pol.runtimeVersions[rt.Version] {
		return nil, failf(CheckRuntimeVersion, ErrRuntimeNotAllowed, "runtime version %q is not in runtime_versions = %q of %s", rt.Version, p.RuntimeVersions, p.where())
	}
	if len(v.pol.workloads) > 0 && !v.pol.workloads[ev.Inputs.WorkloadDigest] {
		return nil, failf(CheckWorkload, ErrWorkloadNotAllowed, "workload %s is not in workload_digests of %s", ev.Inputs.WorkloadDigest, p.where())
	}

	a := &attestation.Assertions{
		TEE:            ev.TEE,
		TEEVersion:     ev.TEEVersion,
		Measurement:    hw.measurement,
		MeasuredBy:     measuredBy,
		RuntimeVersion: rt.Version,
		RuntimeDigest:  ev.Inputs.RuntimeDigest,
		WorkloadDigest: ev.Inputs.WorkloadDigest,
		ConfigDigest:   ev.Inputs.ConfigDigest,
		KeepPublicKey:  append([]byte(nil), ev.Inputs.KeepPublicKey...),
		Nonce:          append([]byte(nil), ev.Inputs.Nonce...),
		EvidenceDigest: ev.Digest(),
		Insecure:       hw.insecureReason != "",
		InsecureReason: hw.insecureReason,
		VerifiedAt:     now.UTC(),
	}
	if len(a.Nonce) == 0 {
		a.Nonce = nil
	}
	return a, nil
}
