// Package nodepolicy is the node policy of the enarx runtime: which
// backend a container's Keep gets, whether a Keep without a TEE is
// acceptable, the attestation service, the module cache and the memory a
// Keep may take before its workload runs. containerd hands it to the shim in
// the runtime's options; `enarx platform` shows it.
//
// It decides from what it is given (Policy.Choose asks the caller whether a
// backend is available), so it links no TEE library.
package nodepolicy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/internal/tomlerr"
)

// Backend names, as used in the node policy (backend = "..."), in the
// container annotation AnnotationBackend and in a Keep's configuration.
const (
	// BackendNil is a Keep without a TEE: it runs, and everything it
	// reports says it is not confidential.
	BackendNil = "nil"
	// BackendAuto picks the first TEE the node offers (sev-snp, then tdx),
	// and falls back to nil only when the node policy allows it.
	BackendAuto = "auto"
	// BackendSEVSNP is a Keep in an AMD SEV-SNP guest.
	BackendSEVSNP = "sev-snp"
	// BackendTDX is a Keep in an Intel TDX guest.
	BackendTDX = "tdx"
)

// MaxSize is the largest node policy Parse and Load read.
const MaxSize = 64 << 10

// teeBackends are the TEE backends in the order BackendAuto tries them.
var teeBackends = []string{BackendSEVSNP, BackendTDX}

// validBackends lists every name a policy or annotation may use.
const validBackends = `"auto", "nil", "sev-snp", "tdx"`

// Errors of Policy.Choose, to be found with errors.Is. Every error Choose
// returns wraps exactly one of them.
var (
	// ErrBackendNotAllowed means the container asked for a backend that is
	// not a backend or that the node policy does not allow: the container
	// must change.
	ErrBackendNotAllowed = errors.New("backend not allowed")
	// ErrBackendUnavailable means the node cannot provide the backend the
	// policy or the container needs: the node (or its policy) must change.
	ErrBackendUnavailable = errors.New("backend unavailable")
	// ErrStewardNotAllowed means the container's AnnotationSteward is not a
	// URL or contradicts the node policy: the container must change.
	ErrStewardNotAllowed = errors.New("steward not allowed")
)

// Policy is the node policy of the enarx runtime: which backend Keeps get
// and whether a Keep without a TEE is acceptable. containerd hands it to the
// shim in the runtime's options, as a TOML document such as
//
//	backend = "auto"       # auto | nil | sev-snp | tdx
//	require_tee = true     # never fall back to nil
//	module_cache = "/var/lib/containerd-shim-enarx/modules"   # or "off"
//	compile_memory_limit = 1073741824   # bytes; -1 for none
//	default_steward = "main"
//
//	[stewards.main]
//	url = "https://steward.example.com"
//	ca = "/etc/enarx/steward-ca.pem"
type Policy struct {
	// Backend is the node's backend: BackendAuto (the default),
	// BackendNil, BackendSEVSNP or BackendTDX.
	Backend string `toml:"backend"`
	// RequireTEE forbids the nil backend: with it, a node without a TEE
	// refuses to create Keeps.
	RequireTEE bool `toml:"require_tee"`
	// Stewards are the attestation services a Keep on this node may get a
	// certificate from, by name: the only ones. A container chooses one by
	// name (AnnotationSteward, see ChooseSteward).
	Stewards map[string]Steward `toml:"stewards"`
	// DefaultSteward names the steward of a container that chooses none;
	// empty for none.
	DefaultSteward string `toml:"default_steward"`
	// ModuleCache is the directory of precompiled modules that the node's
	// Keeps share: an absolute path, or "off" to compile at every start.
	// Empty means DefaultModuleCache.
	ModuleCache string `toml:"module_cache"`
	// CompileMemoryLimit bounds the memory of a Keep, in bytes, from its
	// start until its workload runs (compiling the module takes the
	// most): the kernel's limit of the Keep's cgroup meanwhile, whether
	// or not the container has a memory limit of its own, which applies
	// once the workload runs. 0 means DefaultCompileMemoryLimit, a
	// negative value no bound.
	CompileMemoryLimit int64 `toml:"compile_memory_limit"`
	// Source names where the policy came from (a file name, or a
	// description), for error messages. It is not a setting.
	Source string `toml:"-"`
}

// Steward is an attestation service the node trusts: where it is, and the
// CA it certifies Keeps with, pinned.
type Steward struct {
	// Name is its name in the policy ([stewards.NAME]).
	Name string `toml:"-" json:"name"`
	// URL is where it answers: https, or http to a loopback address with
	// InsecureHTTP.
	URL string `toml:"url" json:"url"`
	// CA is a PEM file of the steward's CA (its ca.crt, GET /v1/ca): a
	// Keep's certificate must chain to it, and Keeps' TLS connect sockets
	// trust it; nothing the steward answers adds to it.
	CA string `toml:"ca" json:"ca"`
	// TLSCA is a PEM file of the CA of the steward's TLS certificate, when
	// that is not CA; empty means CA.
	TLSCA string `toml:"tls_ca" json:"tls_ca,omitempty"`
	// InsecureHTTP allows a plain http URL, to a loopback address only.
	InsecureHTTP bool `toml:"insecure_http" json:"insecure_http,omitempty"`
}

// Check reports the first problem with s, whose setting is named by where
// (e.g. "[stewards.main]").
func (s Steward) Check(where string) error {
	if err := checkStewardURL(s.URL); err != nil {
		return fmt.Errorf("%s url = %q %w", where, s.URL, err)
	}
	u, _ := url.Parse(s.URL)
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if !s.InsecureHTTP || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s url = %q: a steward is reached over https; plain http is allowed only to a loopback address (127.0.0.1, ::1) with insecure_http = true", where, s.URL)
		}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s url = %q: give the steward's base URL, without credentials, query or fragment", where, s.URL)
	}
	if s.CA == "" || !filepath.IsAbs(s.CA) {
		return fmt.Errorf("%s ca = %q: give the absolute path of the steward's CA certificate (PEM: its ca.crt, or GET /v1/ca): Keeps' certificates are checked against it", where, s.CA)
	}
	if s.TLSCA != "" && !filepath.IsAbs(s.TLSCA) {
		return fmt.Errorf("%s tls_ca = %q is not an absolute path: give the absolute path of a PEM file", where, s.TLSCA)
	}
	return nil
}

// DefaultModuleCache is where Keeps keep precompiled modules unless the node
// policy says otherwise: a directory only root can write, next to
// containerd's own /var/lib/containerd.
const DefaultModuleCache = "/var/lib/containerd-shim-enarx/modules"

// ModuleCacheDir returns the module cache directory under p, or "" when the
// cache is off.
func (p Policy) ModuleCacheDir() string {
	switch p.ModuleCache {
	case "":
		return DefaultModuleCache
	case "off":
		return ""
	}
	return p.ModuleCache
}

// DefaultCompileMemoryLimit is the node policy's compile_memory_limit
// unless it sets one: ten times what compiling a Go program of a few MB
// takes (about 100 MB), while a module made to exhaust the compiler (one
// function of a few MB) takes GBs.
const DefaultCompileMemoryLimit = 1 << 30

// MinCompileMemoryLimit is the smallest compile_memory_limit: a Keep takes
// about 25 MB before it compiles anything.
const MinCompileMemoryLimit = 32 << 20

// CompileMemory returns the bound of a Keep's memory until its workload
// runs under p (see Policy.CompileMemoryLimit), 0 for none.
func (p Policy) CompileMemory() int64 {
	switch {
	case p.CompileMemoryLimit == 0:
		return DefaultCompileMemoryLimit
	case p.CompileMemoryLimit < 0:
		return 0
	}
	return p.CompileMemoryLimit
}

// Default is the policy of a node whose runtime options say nothing:
// the first TEE available, else nil.
func Default() Policy {
	return Policy{Backend: BackendAuto}
}

// policyDocument is what a policy file may hold.
type policyDocument struct {
	Policy
	// TypeURL is runtimeoptions.v1.Options' own TypeUrl. containerd's CRI
	// plugin passes the whole `options` table of the runtime as the policy
	// document, and that table may set it; it is not a policy setting and
	// is ignored.
	TypeURL string `toml:"TypeUrl"`
}

// Load reads and parses the node policy in the TOML file at path.
func Load(path string) (Policy, error) {
	// O_NONBLOCK: a FIFO at path must not hang the shim's Create; it is
	// refused below as not a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return Policy{}, fmt.Errorf("enarx node policy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Policy{}, fmt.Errorf("enarx node policy: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Policy{}, fmt.Errorf("enarx node policy %s: not a regular file (%s): give the path of a TOML file", path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return Policy{}, fmt.Errorf("enarx node policy %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses a node policy from the TOML document data; name says
// where it came from (a file name) and prefixes every error. Unknown
// settings are errors, as are documents larger than MaxSize. Settings
// left out take their Default values.
func Parse(name string, data []byte) (Policy, error) {
	if len(data) > MaxSize {
		return Policy{}, fmt.Errorf("enarx node policy %s: larger than %d bytes: a policy is a few settings and stewards", name, MaxSize)
	}
	doc := policyDocument{Policy: Default()}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return Policy{}, policyDecodeError(name, err)
	}
	p := doc.Policy
	p.Source = name
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// policyDecodeError turns a go-toml error into one that names the file,
// the line and column, and the fix.
func policyDecodeError(name string, err error) error {
	if keys, ok := tomlerr.UnknownKeys(err); ok {
		hint := ""
		if strings.Contains(keys, "steward") {
			hint = " (steward and steward_ca are now [stewards.NAME] tables with url and ca, and default_steward = \"NAME\")"
		}
		return fmt.Errorf("enarx node policy %s: unknown setting %s%s: the settings are backend, require_tee, module_cache, compile_memory_limit, default_steward and [stewards.NAME] tables of url, ca, tls_ca and insecure_http: remove or correct it: %w",
			name, keys, hint, err)
	}
	if row, col, key, ok := tomlerr.Position(err); ok {
		setting := ""
		if key != "" {
			setting = fmt.Sprintf(" (setting %q)", key)
		}
		return fmt.Errorf("enarx node policy %s: line %d, column %d%s: %w: write valid TOML with a string backend and a boolean require_tee, e.g. backend = \"auto\" and require_tee = true",
			name, row, col, setting, err)
	}
	return fmt.Errorf("enarx node policy %s: %w: write valid TOML, e.g. backend = \"auto\" and require_tee = true", name, err)
}

// where returns " in SOURCE" for messages, or "" when p has no source.
func (p Policy) where() string {
	if p.Source == "" {
		return ""
	}
	return " in " + p.Source
}

// Validate reports the first problem with p. An empty Backend counts as
// BackendAuto.
func (p Policy) Validate() error {
	switch p.backend() {
	case BackendAuto, BackendSEVSNP, BackendTDX:
	case BackendNil:
		if p.RequireTEE {
			return fmt.Errorf("enarx node policy%s: backend = \"nil\" contradicts require_tee = true: set backend = \"auto\" (or a TEE) to require a TEE, or require_tee = false to run Keeps without one", p.where())
		}
	default:
		return fmt.Errorf("enarx node policy%s: backend = %q is not a backend: use one of %s", p.where(), p.Backend, validBackends)
	}
	for name, st := range p.Stewards {
		if !isStewardName(name) {
			return fmt.Errorf("enarx node policy%s: [stewards.%q]: a steward's name is 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", p.where(), name)
		}
		if err := st.Check(fmt.Sprintf("enarx node policy%s: [stewards.%s]", p.where(), name)); err != nil {
			return err
		}
	}
	if _, ok := p.Stewards[p.DefaultSteward]; p.DefaultSteward != "" && !ok {
		return fmt.Errorf("enarx node policy%s: default_steward = %q names no steward of [stewards]: add [stewards.%s] or correct it", p.where(), p.DefaultSteward, p.DefaultSteward)
	}
	if p.ModuleCache != "" && p.ModuleCache != "off" && !filepath.IsAbs(p.ModuleCache) {
		return fmt.Errorf("enarx node policy%s: module_cache = %q is not an absolute path: give the absolute path of a directory, or \"off\"", p.where(), p.ModuleCache)
	}
	if p.CompileMemoryLimit > 0 && p.CompileMemoryLimit < MinCompileMemoryLimit {
		return fmt.Errorf("enarx node policy%s: compile_memory_limit = %d bytes is less than a Keep needs before it compiles anything: give at least %d bytes, 0 for the default (%d), or -1 for no bound", p.where(), p.CompileMemoryLimit, MinCompileMemoryLimit, DefaultCompileMemoryLimit)
	}
	return nil
}

// checkStewardURL returns an error completing "url = X ..." unless s is
// an absolute http or https URL.
func checkStewardURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("is not a URL (%w): give an absolute URL such as \"https://steward.example.com\"", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("is not an absolute http or https URL: give one such as \"https://steward.example.com\"")
	}
	return nil
}

// isStewardName reports whether name may be a steward's name in the
// policy: 1 to 63 of [a-z0-9._-], the first of [a-z0-9] (the regular
// expression ^[a-z0-9][a-z0-9._-]{0,62}$).
//
// It is a loop rather than a regexp.Regexp because compiling that
// expression at package init (its {0,62} unrolls into 62 nested
// repetitions) took 722 allocations, 52 KB and a deep recursion that grew
// the main goroutine's stack, in every process that links this package:
// each Keep and the shim, on every container's start.
func isStewardName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// ChooseSteward returns the attestation service a container's Keep asks for
// a certificate, or nil for none. requested is the container's
// AnnotationSteward: the name of one of the policy's stewards, or "" for
// its default_steward. A container can choose only among the stewards the
// node lists: a URL, or any other name, is refused, and nothing is asked
// of it.
func (p Policy) ChooseSteward(requested string) (*Steward, error) {
	name := requested
	if name == "" {
		name = p.DefaultSteward
	}
	if name == "" {
		return nil, nil
	}
	st, ok := p.Stewards[name]
	if !ok {
		names := make([]string, 0, len(p.Stewards))
		for n := range p.Stewards {
			names = append(names, n)
		}
		slices.Sort(names)
		listed := "it lists none"
		if len(names) > 0 {
			listed = "it lists " + strings.Join(names, ", ")
		}
		return nil, newChoiceError(ErrStewardNotAllowed, nil, "annotation %s=%q names no steward of the node policy%s (%s): a container chooses a steward the node lists, by name",
			enarxdev.AnnotationSteward, truncate(requested), p.where(), listed)
	}
	st.Name = name
	return &st, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// backend is p.Backend with "" read as BackendAuto.
func (p Policy) backend() string {
	if p.Backend == "" {
		return BackendAuto
	}
	return p.Backend
}

// isTEE reports whether b names a TEE backend.
func isTEE(b string) bool {
	return b == BackendSEVSNP || b == BackendTDX
}

// Choose returns the backend a container gets under p. requested is the
// container's AnnotationBackend ("" or "auto" when it asks for nothing).
// available(b) returns nil if the TEE backend b can run on this node, or an
// error saying why not; Choose never asks it about nil, which always can.
//
// The rules:
//   - No request: the node's backend. For "auto" that is the first available
//     of sev-snp and tdx, else nil unless require_tee is set; a TEE the
//     policy names must be available.
//   - A request for nil is refused when the node requires a TEE
//     (require_tee, or a TEE as the node's backend): a container never gets
//     a weaker backend than the node requires.
//   - A request for a TEE must be available, and must be the node's backend
//     if the policy names a TEE.
//   - Any other name is refused.
//
// Errors wrap ErrBackendNotAllowed or ErrBackendUnavailable.
func (p Policy) Choose(requested string, available func(backend string) error) (string, error) {
	if err := p.Validate(); err != nil {
		return "", &choiceError{msg: err.Error(), kind: ErrBackendUnavailable, causes: []error{err}}
	}
	if available == nil {
		available = func(string) error { return errors.New("no TEE detection") }
	}
	node := p.backend()
	switch requested {
	case "", BackendAuto:
		return p.nodeChoice(available)
	case BackendNil:
		switch {
		case isTEE(node):
			return "", newChoiceError(ErrBackendNotAllowed, nil, "annotation %s=nil asks for a Keep without a TEE, but the node policy%s sets backend = %q, and a container's backend is never weaker than the node requires: remove the annotation",
				enarxdev.AnnotationBackend, p.where(), node)
		case p.RequireTEE:
			return "", newChoiceError(ErrBackendNotAllowed, nil, "annotation %s=nil asks for a Keep without a TEE, but the node policy%s sets require_tee = true, and a container's backend is never weaker than the node requires: remove the annotation",
				enarxdev.AnnotationBackend, p.where())
		}
		return BackendNil, nil
	case BackendSEVSNP, BackendTDX:
		if isTEE(node) && requested != node {
			return "", newChoiceError(ErrBackendNotAllowed, nil, "annotation %s=%s asks for %s, but the node policy%s sets backend = %q: remove the annotation or set it to %q",
				enarxdev.AnnotationBackend, requested, requested, p.where(), node, node)
		}
		if err := available(requested); err != nil {
			return "", newChoiceError(ErrBackendUnavailable, []error{err}, "annotation %s=%s asks for a %s Keep, but this node cannot provide one: %v: remove the annotation to get the node's backend, or run the container on a %s guest",
				enarxdev.AnnotationBackend, requested, requested, err, requested)
		}
		return requested, nil
	default:
		return "", newChoiceError(ErrBackendNotAllowed, nil, "annotation %s=%q is not a backend: use one of %s, or remove the annotation to get the node's backend",
			enarxdev.AnnotationBackend, requested, validBackends)
	}
}

// nodeChoice is the backend of a container that asks for none.
func (p Policy) nodeChoice(available func(string) error) (string, error) {
	switch node := p.backend(); node {
	case BackendNil:
		return BackendNil, nil
	case BackendSEVSNP, BackendTDX:
		if err := available(node); err != nil {
			return "", newChoiceError(ErrBackendUnavailable, []error{err}, "the node policy%s sets backend = %q, but this node cannot provide it: %v: run on a %s guest, or set backend = \"auto\"",
				p.where(), node, err, node)
		}
		return node, nil
	default: // BackendAuto
		var reasons []string
		var errs []error
		for _, b := range teeBackends {
			err := available(b)
			if err == nil {
				return b, nil
			}
			reasons = append(reasons, b+": "+err.Error())
			errs = append(errs, err)
		}
		if !p.RequireTEE {
			return BackendNil, nil
		}
		return "", newChoiceError(ErrBackendUnavailable, errs, "the node policy%s sets require_tee = true, but this node offers no TEE (%s): run on an SEV-SNP or TDX guest, or set require_tee = false to allow Keeps without a TEE (backend nil)",
			p.where(), strings.Join(reasons, "; "))
	}
}

// choiceError is an error of Choose: its message is for the user, and it
// wraps its kind (ErrBackendNotAllowed or ErrBackendUnavailable) and the
// reasons available gave, without repeating them in the message.
type choiceError struct {
	msg    string
	kind   error
	causes []error
}

// newChoiceError returns a choiceError of kind whose message is
// fmt.Sprintf(format, args...), wrapping causes.
func newChoiceError(kind error, causes []error, format string, args ...any) error {
	return &choiceError{msg: fmt.Sprintf(format, args...), kind: kind, causes: causes}
}

func (e *choiceError) Error() string { return e.msg }

// Unwrap returns the kind, then the causes.
func (e *choiceError) Unwrap() []error { return append([]error{e.kind}, e.causes...) }
