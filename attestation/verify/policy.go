package verify

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/go-sev-guest/kds"
	"github.com/pelletier/go-toml/v2"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/internal/tomlerr"
)

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// Policy is a relying party's policy: what evidence it accepts. It is read
// from a strict TOML file (ParsePolicy): an unknown key is an error naming
// the key and the file, so that a misspelt restriction never silently
// becomes no restriction. Keys left out keep their DefaultPolicy values.
//
//	allow_insecure = false
//	allow_test_roots = false
//	allow_unmeasured_runtime = false
//	reference_values = "reference-values.json"
//	tees = []
//	runtime_versions = []
//	workload_digests = []
//
//	[sev-snp]
//	minimum_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }
//	minimum_launch_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }
//	minimum_build = 0
//	minimum_version = "0.0"
//	minimum_abi = "0.0"
//	permit_provisional_firmware = false
//	allow_debug = false
//	allow_migration_agent = false
//	allow_smt = true
//	require_single_socket = false
//	vmpl = 0
//	minimum_guest_svn = 0
//	measurements = []
//	host_data = ""
//	id_key_digests = []
//	author_key_digests = []
//	fetch = false
//	check_revocations = false
//
//	[tdx]
//	minimum_tee_tcb_svn = ""
//	minimum_qe_svn = 0
//	minimum_pce_svn = 0
//	allow_debug = false
//	mr_td = []
//	fetch = false
//	check_revocations = false
type Policy struct {
	// AllowInsecure (allow_insecure) accepts evidence of tee "none", from a
	// Keep without a TEE; its Assertions then say Insecure. For development
	// only: such evidence proves nothing.
	AllowInsecure bool `toml:"allow_insecure"`
	// AllowTestRoots (allow_test_roots) accepts SEV-SNP evidence whose
	// chain ends in go-sev-guest's test-only ARK (the simulated SEV-SNP
	// backend's), trusting the ARK and ASK of the evidence's own certificate
	// table; its Assertions then say Insecure. For development only: the
	// test ARK's private key is public.
	AllowTestRoots bool `toml:"allow_test_roots"`
	// AllowUnmeasuredRuntime (allow_unmeasured_runtime) accepts a runtime
	// whose integrity no hardware measurement backs: the evidence's launch
	// measurement is not one the reference values list for its runtime,
	// so the runtime digest is only what the guest says. Its Assertions
	// then say Insecure.
	AllowUnmeasuredRuntime bool `toml:"allow_unmeasured_runtime"`
	// ReferenceValues (reference_values) is the path of the reference
	// values file (see ReferenceValues), relative to the policy file's
	// directory unless absolute; ParsePolicy resolves it. Optional: the
	// caller loads it (LoadReferenceValues) and passes it in Options.
	ReferenceValues string `toml:"reference_values"`
	// TEEs (tees) lists the TEE kinds accepted, of "sev-snp" and "tdx".
	// Empty: both. "none" is governed by allow_insecure alone.
	TEEs []string `toml:"tees"`
	// RuntimeVersions (runtime_versions) lists the runtime versions
	// accepted. Empty: any version the reference values know.
	RuntimeVersions []string `toml:"runtime_versions"`
	// WorkloadDigests (workload_digests) lists the workload digests
	// ("sha256:<64 hex>") accepted. Empty: any workload.
	WorkloadDigests []string `toml:"workload_digests"`
	// SNP ([sev-snp]) is the AMD SEV-SNP policy.
	SNP SNPPolicy `toml:"sev-snp"`
	// TDX ([tdx]) is the Intel TDX policy.
	TDX TDXPolicy `toml:"tdx"`

	// Source names where the policy came from (its file), for messages.
	Source string `toml:"-"`
}

// TCB is an SEV-SNP TCB version as security patch levels; each is a
// component-wise minimum.
type TCB struct {
	// Bootloader (bootloader) is the BL_SPL, 0-127.
	Bootloader uint8 `toml:"bootloader"`
	// TEE (tee) is the TEE_SPL (PSP OS), 0-127.
	TEE uint8 `toml:"tee"`
	// SNP (snp) is the SNP_SPL (SNP firmware), 0-127.
	SNP uint8 `toml:"snp"`
	// Microcode (microcode) is the UCODE_SPL, 0-255.
	Microcode uint8 `toml:"microcode"`
}

// SNPPolicy is the [sev-snp] table.
type SNPPolicy struct {
	// MinimumTCB (minimum_tcb): REPORTED_TCB, and so the VCEK's TCB which
	// must equal it, must be at least this, component-wise.
	MinimumTCB TCB `toml:"minimum_tcb"`
	// MinimumLaunchTCB (minimum_launch_tcb): LAUNCH_TCB must be at least this.
	MinimumLaunchTCB TCB `toml:"minimum_launch_tcb"`
	// MinimumBuild (minimum_build): the firmware's CURRENT_BUILD minimum.
	MinimumBuild uint8 `toml:"minimum_build"`
	// MinimumVersion (minimum_version): the firmware's CURRENT_MAJOR.MINOR
	// minimum, "major.minor".
	MinimumVersion string `toml:"minimum_version"`
	// MinimumABI (minimum_abi): the minimum ABI the guest policy must
	// require, "major.minor" (Enarx's "abi").
	MinimumABI string `toml:"minimum_abi"`
	// PermitProvisionalFirmware (permit_provisional_firmware): accept a
	// committed TCB, version and build below the current ones (firmware
	// updated but not committed). Default: they must be equal.
	PermitProvisionalFirmware bool `toml:"permit_provisional_firmware"`
	// AllowDebug (allow_debug): accept a guest policy with DEBUG set (the
	// host can read and change the guest's memory).
	AllowDebug bool `toml:"allow_debug"`
	// AllowMigrationAgent (allow_migration_agent): accept a guest policy
	// with MIGRATE_MA set.
	AllowMigrationAgent bool `toml:"allow_migration_agent"`
	// AllowSMT (allow_smt): accept a guest policy with SMT allowed
	// (default true; false requires SMT clear, against sibling-thread
	// side channels).
	AllowSMT bool `toml:"allow_smt"`
	// RequireSingleSocket (require_single_socket): require SINGLE_SOCKET.
	RequireSingleSocket bool `toml:"require_single_socket"`
	// VMPL (vmpl): the VMPL the report must state, 0-3; -1 accepts any.
	VMPL int `toml:"vmpl"`
	// MinimumGuestSVN (minimum_guest_svn): GUEST_SVN minimum.
	MinimumGuestSVN uint32 `toml:"minimum_guest_svn"`
	// Measurements (measurements): the launch MEASUREMENTs accepted, 96 hex
	// digits each. Empty: any.
	Measurements []string `toml:"measurements"`
	// HostData (host_data): the HOST_DATA required, 64 hex digits. Empty:
	// not checked.
	HostData string `toml:"host_data"`
	// IDKeyDigests (id_key_digests): ID_KEY_DIGESTs accepted, 96 hex
	// digits each. Empty: not checked.
	IDKeyDigests []string `toml:"id_key_digests"`
	// AuthorKeyDigests (author_key_digests): when set, AUTHOR_KEY_EN must
	// be 1 and AUTHOR_KEY_DIGEST one of these, 96 hex digits each.
	AuthorKeyDigests []string `toml:"author_key_digests"`
	// Fetch (fetch): fetch a VCEK, ASK or ARK missing from the evidence
	// from AMD's KDS. Default: offline, with the evidence's certificates.
	Fetch bool `toml:"fetch"`
	// CheckRevocations (check_revocations): fetch AMD's CRL and reject a
	// revoked ASK. Needs fetch = true.
	CheckRevocations bool `toml:"check_revocations"`
}

// TDXPolicy is the [tdx] table.
type TDXPolicy struct {
	// MinimumTEETCBSVN (minimum_tee_tcb_svn): TEE_TCB_SVN minimum,
	// component-wise, 32 hex digits. Empty: not checked.
	MinimumTEETCBSVN string `toml:"minimum_tee_tcb_svn"`
	// MinimumQESVN (minimum_qe_svn): the quoting enclave's SVN minimum.
	MinimumQESVN uint16 `toml:"minimum_qe_svn"`
	// MinimumPCESVN (minimum_pce_svn): the PCE's SVN minimum.
	MinimumPCESVN uint16 `toml:"minimum_pce_svn"`
	// AllowDebug (allow_debug): accept TD_ATTRIBUTES with DEBUG set.
	AllowDebug bool `toml:"allow_debug"`
	// MRTD (mr_td): the MRTDs accepted, 96 hex digits each. Empty: any.
	MRTD []string `toml:"mr_td"`
	// Fetch (fetch): fetch the TCB info and QE identity from Intel's PCS
	// and require an up-to-date TCB status. Default: offline.
	Fetch bool `toml:"fetch"`
	// CheckRevocations (check_revocations): check the PCK chain against
	// Intel's CRLs. Needs fetch = true.
	CheckRevocations bool `toml:"check_revocations"`
}

// DefaultPolicy returns the production policy: hardware TEEs only, AMD's
// and Intel's roots only, offline, debugging forbidden, no migration
// agent, SMT allowed, VMPL 0, any measurement, runtime and workload the
// reference values know.
func DefaultPolicy() *Policy {
	return &Policy{
		SNP: SNPPolicy{AllowSMT: true, MinimumVersion: "0.0", MinimumABI: "0.0"},
	}
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	data, err := readFile(path, MaxPolicySize, "verifier policy")
	if err != nil {
		return nil, err
	}
	return ParsePolicy(data, path)
}

// ParsePolicy parses a TOML policy; source names the file in errors and
// anchors a relative reference_values path. Unknown keys, malformed values
// and documents larger than MaxPolicySize are errors.
func ParsePolicy(data []byte, source string) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("verify: policy %s is larger than %d bytes", source, MaxPolicySize)
	}
	p := DefaultPolicy()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, policyDecodeError(source, err)
	}
	p.Source = source
	if p.ReferenceValues != "" && !filepath.IsAbs(p.ReferenceValues) && source != "" {
		p.ReferenceValues = filepath.Join(filepath.Dir(source), p.ReferenceValues)
	}
	if _, err := p.compile(); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate reports the first problem with p, naming the key.
func (p *Policy) Validate() error {
	_, err := p.compile()
	return err
}

func policyDecodeError(source string, err error) error {
	if keys, ok := tomlerr.UnknownKeys(err); ok {
		return fmt.Errorf("verify: policy %s: unknown key %s: remove or correct it (the keys are documented with verify.Policy): %w",
			source, keys, err)
	}
	if row, col, key, ok := tomlerr.Position(err); ok {
		if key != "" {
			key = fmt.Sprintf(" (key %q)", key)
		}
		return fmt.Errorf("verify: policy %s: line %d, column %d%s: %w", source, row, col, key, err)
	}
	return fmt.Errorf("verify: policy %s: %w", source, err)
}

// where names the policy in messages.
func (p *Policy) where() string {
	if p.Source == "" {
		return "the verifier policy"
	}
	return p.Source
}

// compiled is a validated policy in the form the checks use.
type compiled struct {
	p               *Policy
	tees            []string
	runtimeVersions map[string]bool
	workloads       map[string]bool

	snpMinTCB, snpMinLaunchTCB kds.TCBParts
	snpMinVersion              uint16 // major<<8 | minor
	snpMinABIMajor             uint8
	snpMinABIMinor             uint8
	snpMeasurements            [][]byte
	snpHostData                []byte
	snpIDKeys                  [][]byte
	snpAuthorKeys              [][]byte

	tdxMinTEETCBSVN []byte
	tdxMRTD         [][]byte
}

func (p *Policy) compile() (*compiled, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("verify: policy %s: %s: %s", p.where(), key, fmt.Sprintf(format, args...))
	}
	c := &compiled{p: p, runtimeVersions: map[string]bool{}, workloads: map[string]bool{}}
	for i, t := range p.TEEs {
		switch t {
		case attestation.TEESEVSNP, attestation.TEETDX:
			c.tees = append(c.tees, t)
		default:
			return nil, bad(fmt.Sprintf("tees[%d]", i), "%q is not %q or %q (tee %q is governed by allow_insecure)", t, attestation.TEESEVSNP, attestation.TEETDX, attestation.TEENone)
		}
	}
	if len(c.tees) == 0 {
		c.tees = []string{attestation.TEESEVSNP, attestation.TEETDX}
	}
	for i, v := range p.RuntimeVersions {
		if v == "" || strings.TrimSpace(v) != v {
			return nil, bad(fmt.Sprintf("runtime_versions[%d]", i), "%q is not a version", v)
		}
		c.runtimeVersions[v] = true
	}
	for i, d := range p.WorkloadDigests {
		if err := checkDigest(d); err != nil {
			return nil, bad(fmt.Sprintf("workload_digests[%d]", i), "%v", err)
		}
		c.workloads[d] = true
	}

	s := &p.SNP
	var err error
	if c.snpMinTCB, err = tcbParts(s.MinimumTCB); err != nil {
		return nil, bad("sev-snp.minimum_tcb", "%v", err)
	}
	if c.snpMinLaunchTCB, err = tcbParts(s.MinimumLaunchTCB); err != nil {
		return nil, bad("sev-snp.minimum_launch_tcb", "%v", err)
	}
	maj, mnr, err := majorMinor(s.MinimumVersion)
	if err != nil {
		return nil, bad("sev-snp.minimum_version", "%v", err)
	}
	c.snpMinVersion = uint16(maj)<<8 | uint16(mnr)
	if c.snpMinABIMajor, c.snpMinABIMinor, err = majorMinor(s.MinimumABI); err != nil {
		return nil, bad("sev-snp.minimum_abi", "%v", err)
	}
	if s.VMPL < -1 || s.VMPL > 3 {
		return nil, bad("sev-snp.vmpl", "%d is not 0 to 3, or -1 for any", s.VMPL)
	}
	if c.snpMeasurements, err = hexList(s.Measurements, 48); err != nil {
		return nil, bad("sev-snp.measurements", "%v", err)
	}
	if s.HostData != "" {
		if c.snpHostData, err = hexValue(s.HostData, 32); err != nil {
			return nil, bad("sev-snp.host_data", "%v", err)
		}
	}
	if c.snpIDKeys, err = hexList(s.IDKeyDigests, 48); err != nil {
		return nil, bad("sev-snp.id_key_digests", "%v", err)
	}
	if c.snpAuthorKeys, err = hexList(s.AuthorKeyDigests, 48); err != nil {
		return nil, bad("sev-snp.author_key_digests", "%v", err)
	}
	if s.CheckRevocations && !s.Fetch {
		return nil, bad("sev-snp.check_revocations", "needs fetch = true (AMD's CRL is fetched from its KDS)")
	}

	t := &p.TDX
	if t.MinimumTEETCBSVN != "" {
		if c.tdxMinTEETCBSVN, err = hexValue(t.MinimumTEETCBSVN, 16); err != nil {
			return nil, bad("tdx.minimum_tee_tcb_svn", "%v", err)
		}
	}
	if c.tdxMRTD, err = hexList(t.MRTD, 48); err != nil {
		return nil, bad("tdx.mr_td", "%v", err)
	}
	if t.CheckRevocations && !t.Fetch {
		return nil, bad("tdx.check_revocations", "needs fetch = true (Intel's CRLs come with the collateral from its PCS)")
	}
	return c, nil
}

func (c *compiled) teeAllowed(tee string) bool { return slices.Contains(c.tees, tee) }

func tcbParts(t TCB) (kds.TCBParts, error) {
	parts := kds.TCBParts{BlSpl: t.Bootloader, TeeSpl: t.TEE, SnpSpl: t.SNP, UcodeSpl: t.Microcode}
	if _, err := kds.ComposeTCBParts(parts); err != nil {
		return parts, err
	}
	return parts, nil
}

// majorMinor parses "major.minor", each 0-255.
func majorMinor(v string) (uint8, uint8, error) {
	if v == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(v, ".")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not \"major.minor\"", v)
	}
	maj, err1 := strconv.ParseUint(a, 10, 8)
	mnr, err2 := strconv.ParseUint(b, 10, 8)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not \"major.minor\" with numbers 0 to 255", v)
	}
	return uint8(maj), uint8(mnr), nil
}

func hexValue(s string, size int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not hex: %w", truncate(s), err)
	}
	if len(b) != size {
		return nil, fmt.Errorf("%q is %d bytes, want %d (%d hex digits)", truncate(s), len(b), size, 2*size)
	}
	return b, nil
}

func hexList(list []string, size int) ([][]byte, error) {
	out := make([][]byte, 0, len(list))
	for i, s := range list {
		b, err := hexValue(s, size)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// checkDigest accepts "sha256:" followed by 64 lowercase hex digits.
func checkDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return fmt.Errorf("%q is not sha256:<64 lowercase hex digits>", truncate(d))
	}
	return nil
}

// truncate keeps messages short when quoting untrusted input.
func truncate(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// readFile reads a regular file of at most limit bytes.
func readFile(path string, limit int64, what string) ([]byte, error) {
	// O_NONBLOCK: a FIFO must not hang the caller; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("verify: %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("verify: %s %s is not a regular file (%s)", what, path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("verify: %s %s: %w", what, path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("verify: %s %s is larger than %d bytes", what, path, limit)
	}
	return data, nil
}
