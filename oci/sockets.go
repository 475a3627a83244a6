package oci

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// applySocketAnnotations adds the sockets that annotations declare to cfg:
// enarxdev.AnnotationListenPrefix+NAME and enarxdev.AnnotationConnectPrefix+NAME,
// valued as ParseSocket reads. An annotation replaces the Enarx.toml socket of
// the same name; the others come after the Enarx.toml sockets, by name.
func applySocketAnnotations(cfg *workload.Workload, annotations map[string]string) error {
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range annotations {
			if !yield(k) {
				return
			}
		}
	}) {
		kind := ""
		name, ok := strings.CutPrefix(key, enarxdev.AnnotationListenPrefix)
		if ok {
			kind = socketspec.Listen
		} else if name, ok = strings.CutPrefix(key, enarxdev.AnnotationConnectPrefix); ok {
			kind = socketspec.Connect
		} else {
			continue
		}
		s, err := ParseSocket(kind, name, annotations[key])
		if err != nil {
			return fmt.Errorf("oci: annotation %s=%q: %w", key, annotations[key], err)
		}
		if i := slices.IndexFunc(cfg.Sockets, func(x socketspec.Spec) bool { return x.Name == name }); i >= 0 {
			cfg.Sockets[i] = s
		} else {
			cfg.Sockets = append(cfg.Sockets, s)
		}
	}
	return nil
}

// ParseSocket parses the value of a socket annotation ("tls://[::]:8443")
// into the socket name of kind (sockets.Listen or sockets.Connect). `enarx
// run --listen/--connect` takes the same form.
func ParseSocket(kind, name, value string) (socketspec.Spec, error) {
	example := "tls://[::]:8443"
	if kind == socketspec.Connect {
		example = "tls://db.example:5432"
	}
	if err := checkSocketName(name); err != nil {
		return socketspec.Spec{}, err
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != socketspec.TLS && u.Scheme != socketspec.TCP) || u.Opaque != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return socketspec.Spec{}, fmt.Errorf("the value is prot://host:port with prot tls or tcp, e.g. %s", example)
	}
	// Not u.Hostname and u.Port: they read "tcp://::1" as host ":" and
	// port 1.
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return socketspec.Spec{}, fmt.Errorf("the port is missing, e.g. %s", example)
		}
		return socketspec.Spec{}, fmt.Errorf("%q is not host:port (IPv6 addresses go in brackets), e.g. %s", u.Host, example)
	}
	if port == "" {
		return socketspec.Spec{}, fmt.Errorf("the port is missing, e.g. %s", example)
	}
	switch kind {
	case socketspec.Listen:
		if host == "" {
			host = "::"
		}
	case socketspec.Connect:
		if host == "" {
			return socketspec.Spec{}, fmt.Errorf("the host to connect to is missing, e.g. %s", example)
		}
	}
	s := socketspec.Spec{Name: name, Kind: kind, Prot: u.Scheme, Addr: net.JoinHostPort(host, port)}
	// What the Keep will check: a listen address that is an IP address, a
	// connect host that is not "every address", a printable name.
	if err := s.Validate(); err != nil {
		return socketspec.Spec{}, err
	}
	return s, nil
}

// ApplyNetwork sets where cfg's sockets are opened: the network namespace
// the spec names, a new one when it asks for one without a path, or the
// Keep's own (the host's) when it has none (`ctr run --net-host`, a pod
// with hostNetwork). A path must be absolute: the Keep does not run in the
// directory a relative one would be relative to.
func ApplyNetwork(cfg *workload.Workload, spec *specs.Spec) error {
	cfg.NetNS, cfg.NewNetNS = "", false
	if spec.Linux == nil {
		return nil
	}
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.NetworkNamespace {
			continue
		}
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return fmt.Errorf("oci: linux.namespaces[%d]: network namespace path %q is not absolute: give the absolute path of the namespace to join (e.g. /var/run/netns/NAME), or no path for a new one", i, ns.Path)
		}
		cfg.NetNS = ns.Path
		cfg.NewNetNS = ns.Path == ""
	}
	return nil
}
