package tlssock_test

import (
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// FuzzTLSConfig parses TLS configurations: an accepted one validates and,
// its files left out, gives a crypto/tls configuration with groups and a
// version range; DTLS may refuse it (DTLS is 1.2 only, with fewer groups
// and suites) but with an error, as every refusal is, that says tlssock.
func FuzzTLSConfig(f *testing.F) {
	for _, s := range []string{
		"[tls]\ngroups = [\"X25519MLKEM768\", \"X25519\"]\nmin_version = \"1.3\"\n",
		"[tls]\ngroups = [\"secp256r1\", \"x25519\"]\nsignature_schemes = [\"ecdsa_secp256r1_sha256\", \"ed25519\"]\n" +
			"cipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\", \"TLS_ECDHE_ECDSA_WITH_AES_128_CCM\"]\n" +
			"min_version = \"1.2\"\nmax_version = \"1.2\"\nclient_auth = \"require\"\nserver_name = \"keep\"\n",
		"[tls]\ncert_file = \"/etc/enarx/cert.pem\"\nkey_file = \"/etc/enarx/key.pem\"\nroot_ca_file = \"/etc/enarx/ca.pem\"\nclient_ca_file = \"/etc/enarx/ca.pem\"\nclient_auth = \"verify_if_given\"\n",
		"[tls]\ngroups = [\"SecP384r1MLKEM1024\"]\n",
		"[tls]\ngroups = [\"X448\"]\n",
		"[tls]\ncipher_suites = [\"TLS_AES_128_GCM_SHA256\"]\n",
		"[tls]\nmin_version = \"1.3\"\nmax_version = \"1.2\"\n",
		"[tls]\ncipher_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_CCM\"]\nmin_version = \"1.2\"\n",
		"[tls]\ncurves = [\"X25519\"]\n",
		"groups = [\"X25519\"]\n",
		"[tls]\ngroups = []\n",
		"# nothing\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := tlssock.ParseConfig(data)
		if err != nil {
			if c != nil || !strings.HasPrefix(err.Error(), "tlssock: ") {
				t.Fatalf("config %v and error %v; want only an error saying tlssock", c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a parsed config does not validate: %v", err)
		}
		c.CertFile, c.KeyFile, c.RootCAFile, c.ClientCAFile = "", "", "", ""
		tc, err := c.TLSConfig()
		if err != nil {
			t.Fatalf("a valid config gives no TLS configuration: %v", err)
		}
		if len(tc.CurvePreferences) == 0 || tc.MinVersion == 0 || tc.MinVersion > tc.MaxVersion {
			t.Fatalf("TLS configuration with groups %v, versions %#x to %#x", tc.CurvePreferences, tc.MinVersion, tc.MaxVersion)
		}
		if _, err := c.DTLSConfig(); err != nil && !strings.HasPrefix(err.Error(), "tlssock: ") {
			t.Fatalf("DTLS error without its source: %v", err)
		}
	})
}
