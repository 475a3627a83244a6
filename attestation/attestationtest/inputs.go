// Package attestationtest holds fixed, valid attestation inputs for tests of
// this module's packages. Nothing in it is secret or random.
package attestationtest

import (
	"encoding/hex"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// PublicKeyDER is the PKIX DER encoding of the Ed25519 public key of
// RFC 8032's first test vector.
var PublicKeyDER = mustHex("302a300506032b6570032100d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

// Inputs returns the inputs of docs/attestation.md's worked example: the key
// above, the sha256 of the ASCII words "workload", "runtime" and "config",
// runtime version "v0.1.0", and the nonce 00 01 ... 0f.
func Inputs() attestation.Inputs {
	return attestation.Inputs{
		KeepPublicKey:  append([]byte(nil), PublicKeyDER...),
		WorkloadDigest: "sha256:7f6c7360bf24fccf4b59cf9e9a9dfc99fd6a3b085fb2260ef707a34067bb911e",
		RuntimeDigest:  "sha256:d92c6a81b2ff50096bcda80885427d1f59a25b5f483f7055523504925d16ab23",
		RuntimeVersion: "v0.1.0",
		ConfigDigest:   "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910",
		Nonce:          mustHex("000102030405060708090a0b0c0d0e0f"),
	}
}

// ReportDataHex is Inputs().ReportData() in hex, computed independently of
// this module (Python's hashlib).
const ReportDataHex = "75fe940f61ea7bbbed066c3ba3b55405c75cc80fed99e9dccffd0e5b13a410718eb905a6721fcddd2638b71e9c8731da7a601d07a827da89fff8bae5124af800"

// ReportDataNoNonceHex is ReportDataHex with the nonce removed.
const ReportDataNoNonceHex = "10ccf1742015a11ef6c776fdb866489184d9f055e03a59823c834c6f552608e3b472b8babfd33be1fcf78ab0560a0d0f4253a7dc77673659659a99db214794c3"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
