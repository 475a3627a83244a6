package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/attestation/stewardclient"
	"github.com/enarx/containerd-shim-enarx/attestation/verify"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// referenceValuesFile is the name of the reference values file `make`
// writes next to the binaries it builds and `make install` puts in
// $(PREFIX)/share/enarx.
const referenceValuesFile = "reference-values.json"

func runVerify(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "verify", "[--policy FILE] [--reference-values FILE] [--steward URL] [--nonce HEX] [--json] FILE|-\n       enarx verify --tls HOST:PORT --steward-ca FILE [--workload DIGEST] [--json]",
		"Verifies a Keep's evidence (from `enarx attest` or the file named by the container's\n"+
			enarxdev.LabelEvidencePath+" label; - reads stdin) and prints the two assertions it proves:\n"+
			"(1) the TEE type and version, (2) the runtime version and integrity, with the workload's\n"+
			"digest. With --steward, the attestation service verifies it and signs the result.\n"+
			"On failure it names the check that failed and exits with status 1.\n"+
			"With --tls, it connects to a Keep that serves TLS (an Enarx.toml listen socket with\n"+
			"prot = \"tls\") and checks its certificate instead: the chain to the attestation\n"+
			"service's CA (--steward-ca) and the assertions in it, and with --workload the\n"+
			"workload it runs. Keep certificates carry no host names: the Keep is identified by\n"+
			"what it runs, not by the address.")
	policyPath := fs.String("policy", "", "verifier policy TOML `file` (docs/attestation.md); default: the production policy")
	refPath := fs.String("reference-values", "", "reference values `file`; default: the policy's reference_values, else "+referenceValuesFile+" beside enarx or in /usr/local/share/enarx")
	stewardURL := fs.String("steward", "", "attestation service `URL` to verify with instead of verifying locally")
	stewardCA := fs.String("steward-ca", "", "PEM `file` of the CA an https steward's certificate chains to (with --steward https://..., required: the steward's answer is trusted only as far as its TLS is)")
	insecure := fs.Bool("insecure", false, "with --steward http://..., accept a steward reached over plain http, whose answer anyone on the path could forge (on loopback, for a test)")
	nonceHex := fs.String("nonce", "", "`hex` nonce the evidence must bind (the one given to `enarx attest --nonce`)")
	asJSON := fs.Bool("json", false, "print the assertions as JSON")
	tlsAddr := fs.String("tls", "", "`HOST:PORT` of a Keep's TLS socket: verify its certificate (needs --steward-ca)")
	workload := fs.String("workload", "", "with --tls, the workload `DIGEST` (sha256:...) the Keep must run")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if *tlsAddr != "" {
		if fs.NArg() != 0 || *stewardURL != "" || *policyPath != "" || *refPath != "" || *nonceHex != "" {
			return usagef("--tls checks a Keep's certificate: it takes --steward-ca, --workload and --json, no evidence file")
		}
		return verifyTLS(ctx, s, *tlsAddr, *stewardCA, *workload, *asJSON, *timeout)
	}
	if *workload != "" {
		return usagef("--workload goes with --tls")
	}
	if fs.NArg() != 1 {
		return usagef("verify takes one evidence file (or - for stdin)")
	}
	var nonce []byte
	if *nonceHex != "" {
		var err error
		if nonce, err = hex.DecodeString(*nonceHex); err != nil || len(nonce) == 0 {
			return usagef("--nonce %q is not a hex string", *nonceHex)
		}
	}
	blob, err := readEvidence(s, fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var a *attestation.Assertions
	var by string
	if *stewardURL != "" {
		if *policyPath != "" || *refPath != "" {
			return usagef("--policy and --reference-values are the steward's own with --steward")
		}
		switch {
		case strings.HasPrefix(*stewardURL, "https://") && *stewardCA == "":
			return usagef("--steward %s needs --steward-ca FILE: the CA of the steward's TLS certificate, pinned (its ca.crt): the steward's signed answer is only as trustworthy as the connection its keys come over", *stewardURL)
		case strings.HasPrefix(*stewardURL, "http://") && !*insecure:
			return usagef("--steward %s is plain http: anyone on the path could answer for the steward and its keys; use https with --steward-ca, or --insecure on loopback for a test", *stewardURL)
		}
		a, err = verifyWithSteward(ctx, *stewardURL, *stewardCA, blob, nonce)
		by = "steward " + *stewardURL
		if err == nil && strings.HasPrefix(*stewardURL, "http://") {
			a.Insecure = true
			a.InsecureReason = strings.TrimPrefix(a.InsecureReason+"; ", "; ") + "the steward was reached over plain http (--insecure)"
		}
	} else {
		a, by, err = verifyLocally(ctx, *policyPath, *refPath, blob, nonce)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(s.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	}
	printAssertions(s.Stdout, a, by)
	if a.Insecure {
		fmt.Fprintf(s.Stderr, "enarx verify: WARNING: accepted only because the policy allows it: %s\n", a.InsecureReason)
	}
	return nil
}

// readEvidence reads the evidence file, or stdin for "-".
func readEvidence(s stdio, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if s.Stdin == nil {
			return nil, errors.New("no standard input")
		}
		r = s.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%w: give the evidence file `enarx attest` wrote (or the container's %s), or - to read stdin", err, enarxdev.LabelEvidencePath)
		}
		defer f.Close()
		r = f
	}
	blob, err := io.ReadAll(io.LimitReader(r, attestation.MaxEvidenceSize+1))
	if err != nil {
		return nil, fmt.Errorf("read evidence %s: %w", name, err)
	}
	// Refused before trimming: what was not read (past the limit) could be
	// anything, and is part of the input.
	if len(blob) > attestation.MaxEvidenceSize {
		return nil, fmt.Errorf("evidence %s is more than %d bytes: %w: give the output of `enarx attest`", name, attestation.MaxEvidenceSize, attestation.ErrTooLarge)
	}
	blob = []byte(strings.TrimSpace(string(blob)))
	if len(blob) == 0 {
		return nil, fmt.Errorf("evidence %s is empty: give the output of `enarx attest`", name)
	}
	return blob, nil
}

// verifyLocally verifies blob with the policy and reference values given
// (or the defaults), and says with which reference values.
func verifyLocally(ctx context.Context, policyPath, refPath string, blob, nonce []byte) (*attestation.Assertions, string, error) {
	policy := verify.DefaultPolicy()
	if policyPath != "" {
		var err error
		if policy, err = verify.LoadPolicy(policyPath); err != nil {
			return nil, "", err
		}
	}
	if refPath == "" {
		refPath = policy.ReferenceValues
	}
	if refPath == "" {
		refPath = defaultReferenceValues()
	}
	if refPath == "" {
		return nil, "", fmt.Errorf("no reference values: give --reference-values FILE (make writes bin/%s) or set reference_values in the policy", referenceValuesFile)
	}
	ref, err := verify.LoadReferenceValues(refPath)
	if err != nil {
		return nil, "", err
	}
	v, err := verify.New(verify.Options{Policy: policy, Reference: ref})
	if err != nil {
		return nil, "", err
	}
	a, err := v.VerifyBlob(ctx, blob, nonce)
	if err != nil {
		return nil, "", err
	}
	return a, "reference values " + refPath, nil
}

// defaultReferenceValues is the first reference values file found beside
// the enarx binary or where `make install` puts it; "" if none.
func defaultReferenceValues() string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	dirs = append(dirs, "/usr/local/share/enarx", "/usr/share/enarx")
	for _, d := range dirs {
		p := filepath.Join(d, referenceValuesFile)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// verifyWithSteward has the steward verify blob and checks the signed result
// it returns against the steward's published keys.
func verifyWithSteward(ctx context.Context, url, caFile string, blob, nonce []byte) (*attestation.Assertions, error) {
	ev, err := attestation.ParseEvidence(blob)
	if err != nil {
		return nil, err
	}
	c, err := newStewardClient(url, caFile)
	if err != nil {
		return nil, err
	}
	token, err := c.Attest(ctx, blob)
	if err != nil {
		return nil, err
	}
	keys, err := c.JWKS(ctx)
	if err != nil {
		return nil, err
	}
	claims, err := stewardclient.VerifyToken(token, keys, time.Now())
	if err != nil {
		return nil, fmt.Errorf("steward %s: its attestation result: %w", url, err)
	}
	// The result must be about the evidence sent: a steward's signed
	// answer about other evidence proves nothing about this one.
	if claims.Assertions.EvidenceDigest != ev.Digest() {
		return nil, fmt.Errorf("steward %s: its attestation result is about evidence %s, not the evidence sent (%s)", url, claims.Assertions.EvidenceDigest, ev.Digest())
	}
	if nonce != nil && string(claims.Assertions.Nonce) != string(nonce) {
		return nil, fmt.Errorf("steward %s: the verified evidence binds nonce %x, not %x", url, claims.Assertions.Nonce, nonce)
	}
	return &claims.Assertions, nil
}

// printAssertions writes the human-readable form of a.
func printAssertions(w io.Writer, a *attestation.Assertions, by string) {
	tee := a.TEE
	if a.TEEVersion != "" {
		tee += " (" + a.TEEVersion + ")"
	}
	if a.TEE == attestation.TEENone {
		tee += ": NOT confidential"
	}
	fmt.Fprintf(w, "verified %s\n", a.EvidenceDigest)
	fmt.Fprintf(w, "  (1) TEE:         %s\n", tee)
	if a.Measurement != "" {
		fmt.Fprintf(w, "      measurement: %s\n", a.Measurement)
	}
	if a.MeasuredBy != "" {
		fmt.Fprintf(w, "      runtime held to the %s\n", a.MeasuredBy)
	}
	fmt.Fprintf(w, "  (2) runtime:     %s, integrity established by %s\n", a.RuntimeVersion, by)
	fmt.Fprintf(w, "      digest:      %s\n", a.RuntimeDigest)
	fmt.Fprintf(w, "  workload:        %s\n", a.WorkloadDigest)
	fmt.Fprintf(w, "  config:          %s\n", a.ConfigDigest)
	if len(a.Nonce) > 0 {
		fmt.Fprintf(w, "  nonce:           %x\n", a.Nonce)
	}
	if a.Insecure {
		fmt.Fprintf(w, "  INSECURE:        %s\n", a.InsecureReason)
	}
}

// verifyTLS connects to a Keep's TLS socket at addr and verifies its
// certificate the way a relying party's client does (tlssock
// VerifyAttestation): it chains to the CA in caFile, carries assertions, and
// names the workload wantWorkload when given.
func verifyTLS(ctx context.Context, s stdio, addr, caFile, wantWorkload string, asJSON bool, timeout time.Duration) error {
	if caFile == "" {
		return usagef("--tls needs --steward-ca FILE: the CA of the attestation service that certified the Keep (its ca.crt)")
	}
	if wantWorkload != "" && !strings.HasPrefix(wantWorkload, "sha256:") {
		return usagef("--workload %q: give sha256:HEX, e.g. the container's %s", wantWorkload, enarxdev.LabelWorkloadDigest)
	}
	var got *attestation.Assertions
	cfg := &tlssock.Config{RootCAFile: caFile, VerifyAttestation: func(a *attestation.Assertions) error {
		got = a
		if wantWorkload != "" && a.WorkloadDigest != wantWorkload {
			return fmt.Errorf("the Keep runs workload %s, not %s", a.WorkloadDigest, wantWorkload)
		}
		return nil
	}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := tlssock.Dial(ctx, "tcp", addr, cfg)
	if err != nil {
		return fmt.Errorf("keep at %s: %w", addr, err)
	}
	defer conn.Close()
	state, err := tlssock.ConnectionState(conn)
	if err != nil {
		return fmt.Errorf("keep at %s: %w", addr, err)
	}
	if got == nil {
		return fmt.Errorf("keep at %s: no attestation was checked", addr)
	}
	if asJSON {
		enc := json.NewEncoder(s.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(got)
	}
	fmt.Fprintf(s.Stdout, "keep at %s: TLS %s, %s, %s\n", addr, state.Version, state.Group, state.CipherSuite)
	printAssertions(s.Stdout, got, "its attestation service (certificate chained to "+caFile+")")
	if got.Insecure {
		fmt.Fprintf(s.Stderr, "enarx verify: WARNING: the attestation service accepted it only because its policy allows it: %s\n", got.InsecureReason)
	}
	return nil
}
