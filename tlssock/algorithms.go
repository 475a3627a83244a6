package tlssock

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/elliptic"
)

// DefaultGroups are the key-exchange groups used when Config.Groups is empty,
// in order of preference: the post-quantum hybrid first, classical groups as
// fallback for peers without it.
var DefaultGroups = []string{"X25519MLKEM768", "X25519", "P-256", "P-384"}

// groups maps a group's IANA (and Go) name to its TLS code point.
var groups = map[string]tls.CurveID{
	"X25519MLKEM768":     tls.X25519MLKEM768,
	"SecP256r1MLKEM768":  tls.SecP256r1MLKEM768,
	"SecP384r1MLKEM1024": tls.SecP384r1MLKEM1024,
	"X25519":             tls.X25519,
	"P-256":              tls.CurveP256,
	"P-384":              tls.CurveP384,
	"P-521":              tls.CurveP521,
}

// groupAliases are the other spellings in use (IANA's secpXXXr1, lower case).
var groupAliases = map[string]string{
	"secp256r1":          "P-256",
	"secp384r1":          "P-384",
	"secp521r1":          "P-521",
	"x25519":             "X25519",
	"x25519mlkem768":     "X25519MLKEM768",
	"secp256r1mlkem768":  "SecP256r1MLKEM768",
	"secp384r1mlkem1024": "SecP384r1MLKEM1024",
}

// dtlsGroups are the groups pion/dtls implements.
var dtlsGroups = map[string]elliptic.Curve{
	"X25519": elliptic.X25519,
	"P-256":  elliptic.P256,
	"P-384":  elliptic.P384,
}

// signatureSchemes maps IANA signature scheme names to code points.
var signatureSchemes = map[string]tls.SignatureScheme{
	"ecdsa_secp256r1_sha256": tls.ECDSAWithP256AndSHA256,
	"ecdsa_secp384r1_sha384": tls.ECDSAWithP384AndSHA384,
	"ecdsa_secp521r1_sha512": tls.ECDSAWithP521AndSHA512,
	"ed25519":                tls.Ed25519,
	"rsa_pss_rsae_sha256":    tls.PSSWithSHA256,
	"rsa_pss_rsae_sha384":    tls.PSSWithSHA384,
	"rsa_pss_rsae_sha512":    tls.PSSWithSHA512,
	"rsa_pkcs1_sha256":       tls.PKCS1WithSHA256,
	"rsa_pkcs1_sha384":       tls.PKCS1WithSHA384,
	"rsa_pkcs1_sha512":       tls.PKCS1WithSHA512,
}

var versions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// tlsSuites are crypto/tls's secure TLS 1.2 suites by name; tls13Suites are
// the TLS 1.3 ones, which Go does not let a configuration choose.
func tlsSuites() (map[string]uint16, map[string]bool) {
	suites := map[string]uint16{}
	tls13 := map[string]bool{}
	for _, s := range tls.CipherSuites() {
		if len(s.SupportedVersions) == 1 && s.SupportedVersions[0] == tls.VersionTLS13 {
			tls13[s.Name] = true
			continue
		}
		suites[s.Name] = s.ID
	}
	return suites, tls13
}

// dtlsSuites are pion/dtls's certificate-based suites by name (PSK suites
// need a key this package does not configure).
func dtlsSuites() map[string]dtls.CipherSuiteID {
	suites := map[string]dtls.CipherSuiteID{}
	for _, s := range dtls.CipherSuites() {
		if strings.Contains(s.Name, "PSK") {
			continue
		}
		suites[s.Name] = dtls.CipherSuiteID(s.ID)
	}
	return suites
}

// canonicalGroup returns the name groups knows name by.
func canonicalGroup(name string) (string, error) {
	if _, ok := groups[name]; ok {
		return name, nil
	}
	if c, ok := groupAliases[strings.ToLower(name)]; ok {
		return c, nil
	}
	return "", unknown("group", name, keys(groups), "groups")
}

// groupName is the name of a TLS code point, for ConnectionState.
func groupName(id tls.CurveID) string {
	for name, v := range groups {
		if v == id {
			return name
		}
	}
	if id == 0 {
		return ""
	}
	return id.String()
}

func signatureSchemeIDs(names []string) ([]tls.SignatureScheme, error) {
	out := make([]tls.SignatureScheme, 0, len(names))
	for _, n := range names {
		id, ok := signatureSchemes[strings.ToLower(n)]
		if !ok {
			return nil, unknown("signature scheme", n, keys(signatureSchemes), "signature_schemes")
		}
		out = append(out, id)
	}
	return out, nil
}

func versionID(name, field string) (uint16, error) {
	v, ok := versions[name]
	if !ok {
		return 0, fmt.Errorf("tlssock: unknown TLS version %q in %s: use one of %s", name, field, strings.Join(keys(versions), ", "))
	}
	return v, nil
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// unknown is the error for an algorithm name not in the table: it names the
// input, the configuration key and the names that are accepted.
func unknown(kind, name string, supported []string, key string) error {
	return fmt.Errorf("tlssock: unknown %s %q in %s: use one of %s", kind, name, key, strings.Join(supported, ", "))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
