package socketspec

import (
	"strings"
	"testing"
)

// FuzzSpecValidate: Validate never panics, refuses with an error that
// names the socket, and accepts only what the Keep can open: a listen
// address that is an IP address (or every address), a connect address with
// a host and a port other than 0.
func FuzzSpecValidate(f *testing.F) {
	for _, s := range []Spec{
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "[::]:8080"},
		{Name: "web", Kind: Listen, Prot: TLS, Addr: ":8443"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "[fe80::1%lo]:80"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "db.example:5432"},
		{Name: "db", Kind: Connect, Prot: TLS, Addr: "[::ffff:127.0.0.1]:65535"},
		{Name: "a:b", Kind: Listen, Prot: TCP, Addr: ":80"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "::1:80"},
		{Name: "web", Kind: Listen, Prot: TCP, Addr: "example.com:80"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "0.0.0.0:1"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "db:0"},
		{Name: "db", Kind: Connect, Prot: "udp", Addr: "db:1"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "[:]:1"},
		{Name: "db", Kind: Connect, Prot: TCP, Addr: "db..example:1"},
	} {
		f.Add(s.Name, s.Kind, s.Prot, s.Addr)
	}
	f.Fuzz(func(t *testing.T, name, kind, prot, addr string) {
		s := Spec{Name: name, Kind: kind, Prot: prot, Addr: addr}
		err := s.Validate()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "sockets: ") {
				t.Fatalf("error without its source: %v", err)
			}
			return
		}
		e, err := s.Endpoint()
		if err != nil {
			t.Fatalf("valid %v has no endpoint: %v", s, err)
		}
		switch kind {
		case Listen:
			if e.Host != "" && !e.IP.IsValid() {
				t.Fatalf("listen %v on a name", s)
			}
		case Connect:
			if e.Host == "" || e.Port == 0 || (e.IP.IsValid() && e.IP.IsUnspecified()) {
				t.Fatalf("connect %v without a host or port", s)
			}
			if !e.IP.IsValid() && strings.ContainsAny(e.Host, ":/ []%\x00") {
				t.Fatalf("connect %v to host %q, which no resolver takes", s, e.Host)
			}
		default:
			t.Fatalf("kind %q accepted", kind)
		}
	})
}
