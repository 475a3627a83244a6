package verify

import (
	"errors"
	"fmt"
)

// Check names, as CheckError.Check reports them, in the order Verify runs
// the checks (see Verifier.Verify).
const (
	CheckEvidence = "evidence" // structure of the evidence (attestation.ParseEvidence)
	CheckTEE      = "tee"      // kind of TEE allowed; "none" only with allow_insecure
	CheckBinding  = "binding"  // REPORT_DATA and tee_version against the inputs (Evidence.CheckBinding)

	CheckSNPReport      = "snp.report"      // report and certificate table parse: version, reserved fields, platform info
	CheckSNPChain       = "snp.chain"       // VCEK/VLEK -> ASK/ASVK -> ARK (AMD's, or test roots by opt-in); CHIP_ID
	CheckSNPSignature   = "snp.signature"   // ECDSA P-384 report signature by the VCEK/VLEK
	CheckSNPPolicy      = "snp.policy"      // guest policy: migration agent, SMT, single socket, ABI
	CheckSNPDebug       = "snp.debug"       // guest policy DEBUG bit
	CheckSNPVMPL        = "snp.vmpl"        // VMPL of the report
	CheckSNPTCB         = "snp.tcb"         // reported/launch/committed TCB, VCEK TCB, firmware version and build
	CheckSNPGuestSVN    = "snp.guest_svn"   // GUEST_SVN minimum
	CheckSNPMeasurement = "snp.measurement" // MEASUREMENT allowed
	CheckSNPHostData    = "snp.host_data"   // HOST_DATA expected
	CheckSNPIDBlock     = "snp.id_block"    // ID key and author key digests allowed
	CheckSNPValidate    = "snp.validate"    // go-sev-guest's validate.SnpAttestation over the same policy

	CheckTDXQuote       = "tdx.quote"       // the quote parses (version 4, TDX)
	CheckTDXChain       = "tdx.chain"       // PCK chain to Intel's SGX root (or Options.TDXRoots); QE vendor
	CheckTDXSignature   = "tdx.signature"   // quote signature by the attestation key, QE report by the PCK
	CheckTDXAttributes  = "tdx.attributes"  // TD_ATTRIBUTES bits this verifier knows
	CheckTDXDebug       = "tdx.debug"       // TD_ATTRIBUTES DEBUG bit
	CheckTDXTCB         = "tdx.tcb"         // TEE_TCB_SVN, QE SVN, PCE SVN minimums
	CheckTDXMeasurement = "tdx.measurement" // MRTD allowed

	CheckNonce          = "nonce"           // the caller's nonce is the evidence's
	CheckRuntime        = "runtime"         // runtime digest known to the reference values, version consistent
	CheckRuntimeVersion = "runtime.version" // runtime version allowed by runtime_versions
	// the launch measurement is a reference one for the runtime (or
	// allow_unmeasured_runtime)
	CheckRuntimeMeasurement = "runtime.measurement"
	CheckWorkload           = "workload" // workload digest allowed by workload_digests
)

// Sentinel errors. Every verification failure is a *CheckError whose Err
// wraps one of these (or, for the binding check, attestation's
// ErrBindingMismatch / ErrTEEVersionMismatch), so errors.Is works through it.
var (
	// ErrMalformed: the evidence, report or quote cannot be parsed.
	ErrMalformed = errors.New("malformed evidence")
	// ErrInsecure: tee "none" evidence without allow_insecure.
	ErrInsecure = errors.New("nil evidence is not confidential")
	// ErrTEENotAllowed: the TEE kind is not in the policy's tees.
	ErrTEENotAllowed = errors.New("TEE kind not allowed by the policy")
	// ErrTestRoots: SEV-SNP evidence chained to go-sev-guest's test-only ARK
	// without allow_test_roots. It always comes with ErrChain.
	ErrTestRoots = errors.New("evidence is signed by test-only roots")
	// ErrUnknownRuntime: the runtime digest is not in the reference values,
	// or they give it another version than the evidence states.
	ErrUnknownRuntime = errors.New("runtime integrity not established")
	// ErrUnmeasuredRuntime: no reference launch measurement backs the
	// runtime digest the evidence states.
	ErrUnmeasuredRuntime = errors.New("runtime integrity not established: no reference measurement")
	// ErrRuntimeNotAllowed: the runtime version is not in runtime_versions.
	ErrRuntimeNotAllowed = errors.New("runtime version not allowed by the policy")
	// ErrWorkloadNotAllowed: the workload digest is not in workload_digests.
	ErrWorkloadNotAllowed = errors.New("workload not allowed by the policy")
	// ErrNonceMismatch: the caller's nonce is not the one the evidence binds.
	ErrNonceMismatch = errors.New("nonce does not match the evidence")
	// ErrSignature: the hardware report or quote signature does not verify.
	ErrSignature = errors.New("hardware signature does not verify")
	// ErrChain: the signing key's certificate chain does not lead to a
	// trusted root (or the certificate is missing, or revoked).
	ErrChain = errors.New("certificate chain not trusted")
	// ErrTCB: a TCB, firmware or security version is below the policy's
	// minimum, or inconsistent.
	ErrTCB = errors.New("TCB not acceptable")
	// ErrDebug: the guest or TD can be debugged by the host.
	ErrDebug = errors.New("debugging is enabled")
	// ErrMeasurement: a launch measurement (or HOST_DATA, ID block) is not
	// one the policy allows.
	ErrMeasurement = errors.New("measurement not allowed by the policy")
	// ErrVMPL: the SEV-SNP report's VMPL is not the policy's.
	ErrVMPL = errors.New("VMPL not allowed by the policy")
	// ErrGuestPolicy: the SEV-SNP guest policy or TDX attributes allow
	// something the policy does not.
	ErrGuestPolicy = errors.New("guest policy not allowed by the policy")
)

// CheckError is every verification failure: Check names the check that
// failed (see the Check constants) and Err says why.
type CheckError struct {
	Check string
	Err   error
}

// Error returns "verify: check <Check> failed: <Err>".
func (e *CheckError) Error() string {
	return fmt.Sprintf("verify: check %s failed: %v", e.Check, e.Err)
}

// Unwrap returns Err.
func (e *CheckError) Unwrap() error { return e.Err }

func fail(check string, err error) *CheckError {
	return &CheckError{Check: check, Err: err}
}

// failf wraps sentinel with a formatted explanation: "<sentinel>: <text>".
func failf(check string, sentinel error, format string, args ...any) *CheckError {
	return &CheckError{Check: check, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}
