package socketspec

import (
	"strconv"
	"strings"
	"testing"
)

func TestValidateAccepts(t *testing.T) {
	for _, s := range []Spec{
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "[::]:8080"},
		{Name: "web", Kind: Listen, Prot: TLS, Addr: ":8443"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "127.0.0.1:0"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "0.0.0.0:80"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "[fe80::1%lo]:80"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "[fe80::1%2]:80"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "[fe80::1%eth0.100]:5432"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "db.example:5432"},
		{Name: "db", Kind: Connect, Prot: TLS, Addr: "[::1]:5432"},
		{Name: "db", Kind: Connect, Prot: TLS, Addr: "127.0.0.1:65535"},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%v: Validate = %v, want nil", s, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want []string
	}{
		{Spec{Kind: Listen, Prot: TCP, Addr: ":80"}, []string{"name is empty", "FD_NAMES"}},
		{Spec{Name: "a:b", Kind: Listen, Prot: TCP, Addr: ":80"}, []string{`name "a:b" contains ':'`, "choose a name without ':'"}},
		{Spec{Name: "a\nb", Kind: Listen, Prot: TCP, Addr: ":80"}, []string{"control character"}},
		{Spec{Name: "web", Kind: "bind", Prot: TCP, Addr: ":80"}, []string{`kind "bind" is unknown`, `use "listen" or "connect"`}},
		{Spec{Name: "web", Prot: TCP, Addr: ":80"}, []string{`kind "" is unknown`}},
		{Spec{Name: "web", Kind: Listen, Prot: "udp", Addr: ":80"}, []string{`prot "udp" is unknown`, `use "tcp" or "tls"`}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: "10.0.0.1"}, []string{`addr "10.0.0.1" has no port`, "host:port"}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: ""}, []string{`addr "" has no port`}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: "::1:80"}, []string{`addr "::1:80" is not host:port`, "IPv6 addresses in brackets"}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "[:]:1"}, []string{`host ":" is neither an IP address nor a DNS name`, "IPv6 addresses in brackets"}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "db..example:1"}, []string{"neither an IP address nor a DNS name"}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: ":http"}, []string{`port "http" is not a number`}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: ":70000"}, []string{`port "70000" is not a number from 0 to 65535`}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: "localhost:80"}, []string{`a listen address must be an IP address, not "localhost"`}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: ":5432"}, []string{`addr ":5432" has no host`}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "db.example:0"}, []string{"port 0 cannot be connected to"}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "0.0.0.0:5432"}, []string{"can only be listened on"}},
		// An IPv6 zone names a network interface.
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: "[::%\xf4]:0"}, []string{`zone "\xf4" is not a network interface name`, "%eth0"}},
		{Spec{Name: "web", Kind: Listen, Prot: TCP, Addr: "[fe80::1%a b]:80"}, []string{`zone "a b" is not a network interface name`}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "[fe80::1%../x]:80"}, []string{"is not a network interface name"}},
		{Spec{Name: "db", Kind: Connect, Prot: TCP, Addr: "[fe80::1%averyveryverylongname]:80"}, []string{"is not a network interface name"}},
	} {
		err := tc.spec.Validate()
		if err == nil {
			t.Errorf("%v: Validate = nil, want an error", tc.spec)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: Validate = %q, want it to contain %q", tc.spec, err, w)
			}
		}
		// Every error names the socket it is about.
		if tc.spec.Name != "" && !strings.Contains(err.Error(), strconv.Quote(tc.spec.Name)) {
			t.Errorf("%v: Validate = %q does not name the socket", tc.spec, err)
		}
	}
}
