// Package attestation holds what a Keep proves about itself: the kinds of TEE,
// evidence, and (later) its verification. It imports no other package of this
// module.
package attestation

// TEE kinds as reported in labels and evidence.
const (
	// TEENone is reported by a Keep without a TEE (the nil backend). It is
	// never to be read as confidential.
	TEENone = "none"
	// TEESEVSNP is AMD SEV-SNP.
	TEESEVSNP = "sev-snp"
	// TEETDX is Intel TDX.
	TEETDX = "tdx"
)
