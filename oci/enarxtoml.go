package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/internal/tomlerr"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// An image may carry an Enarx.toml, the workload configuration of Enarx
// (https://github.com/enarx/enarx, crate enarx-config): at the root of its
// root filesystem, or, for a wasm artifact image, as a layer of media type
// MediaTypeTOML. The shim applies its args, env and files; the OCI spec wins
// wherever both say something:
//
//   - args: when process.args has more than the module (args[0]), those
//     arguments are used and Enarx.toml's are ignored; otherwise Enarx.toml's
//     args follow args[0]. (`ctr run IMAGE ID /app.wasm x` overrides them, as
//     does an image config Cmd.)
//   - env: Enarx.toml's variables come first, in key order; a variable of the
//     spec's process.env (the image config's Env and `ctr run --env`)
//     replaces one of the same name.
//   - files: as in Enarx, the list is positional, entry i being the
//     workload's file descriptor i. The first three entries may be of kind
//     "stdin", "stdout" and "stderr" respectively, connecting the container's
//     stream, or "null", connecting /dev/null. A standard stream missing from
//     a list that is present (fewer than three entries, `files = []`) is
//     /dev/null: Enarx leaves such a descriptor closed, which wasmtime-go
//     cannot do, and /dev/null is the closest. Without a `files` key at all
//     every stream is connected, as for any container (Enarx would leave
//     them all closed, which no container user expects). When `files` is
//     present, FD_COUNT and FD_NAMES (the entries' names joined by ":") are
//     set in the environment as Enarx does, below Enarx.toml's env.
//   - sockets: entries after the standard streams may be of kind "listen"
//     (name required; addr defaults to "::", port to 443, prot to "tls") or
//     "connect" (host required; port defaults to 443, prot to "tls", name
//     to the host), as in Enarx. They become keep.Config.Sockets, in order.
//     The workload finds them through FD_NAMES: its descriptors are the
//     standard streams, then the preopened directories (which WASI programs
//     find by probing from descriptor 3 up), then the sockets, and with
//     sockets FD_COUNT and FD_NAMES describe all of them (docs/networking.md).
//     The annotations enarx.dev/listen.NAME and enarx.dev/connect.NAME add
//     or replace sockets (see enarxdev.AnnotationListenPrefix).
//   - steward is refused too: the Keep's Steward is chosen by the node policy
//     and the enarx.dev/steward annotation.
//
// A document that is not valid TOML, has a key Enarx does not define, or a
// value of the wrong type is an error naming Enarx.toml and the line.
const (
	// EnarxTOMLFile is the name of the file at the root of the root
	// filesystem.
	EnarxTOMLFile = "Enarx.toml"
	// MediaTypeTOML is the media type of the Enarx.toml layer of a wasm
	// artifact image.
	MediaTypeTOML = "application/toml"
)

// MaxEnarxTOMLSize bounds the Enarx.toml read into memory.
const MaxEnarxTOMLSize = 1 << 20

// EnarxConfig is the part of an Enarx.toml the shim understands.
type EnarxConfig struct {
	// Source names where the document came from, for errors.
	Source string `toml:"-"`
	// Args are the arguments after the module name.
	Args []string `toml:"args"`
	// Env are environment variables.
	Env map[string]string `toml:"env"`
	// Files are the workload's first file descriptors, in order; nil when
	// the document has no `files`.
	Files []EnarxFile `toml:"files"`
	// Steward is an attestation service URL (refused: see above).
	Steward string `toml:"steward"`

	// lines are the line numbers of the entries of Files, for errors.
	lines []int
}

// EnarxFile is one [[files]] entry.
type EnarxFile struct {
	// Kind is "stdin", "stdout", "stderr", "null", "listen" or "connect".
	Kind string `toml:"kind"`
	// Name labels the descriptor in FD_NAMES; it defaults to the kind (to
	// the host for "connect").
	Name string `toml:"name"`
	// Addr, Host, Port and Prot describe a socket: Addr (listen) is the
	// address to bind, Host (connect) the host to connect to, Port
	// defaults to 443 and Prot ("tls" or "tcp") to "tls".
	Addr string  `toml:"addr"`
	Host string  `toml:"host"`
	Port *uint16 `toml:"port"`
	Prot string  `toml:"prot"`
}

// standardStreams are the names of file descriptors 0, 1 and 2.
var standardStreams = []string{"stdin", "stdout", "stderr"}

// ParseEnarxTOML parses and checks an Enarx.toml; source names it in errors
// (e.g. "Enarx.toml").
func ParseEnarxTOML(source string, data []byte) (*EnarxConfig, error) {
	if len(data) > MaxEnarxTOMLSize {
		return nil, fmt.Errorf("oci: %s is larger than %d bytes: it holds args, env and files, a few lines; remove what is not configuration", source, MaxEnarxTOMLSize)
	}
	c := &EnarxConfig{Source: source}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, enarxTOMLDecodeError(source, err)
	}
	c.lines = fileEntryLines(data)
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// enarxTOMLDecodeError turns a go-toml error into one that names the file,
// the line and the column.
func enarxTOMLDecodeError(source string, err error) error {
	const fix = "the keys are args (array of strings), env (table of strings), files (array of tables with kind, name, and for sockets addr, host, port and prot) and steward"
	if keys, ok := tomlerr.UnknownKeys(err); ok {
		return fmt.Errorf("oci: %s: unknown key %s: %s: %w", source, keys, fix, err)
	}
	if row, col, key, ok := tomlerr.Position(err); ok {
		if key != "" {
			key = fmt.Sprintf(" (key %q)", key)
		}
		return fmt.Errorf("oci: %s: line %d, column %d%s: %w: %s", source, row, col, key, err, fix)
	}
	return fmt.Errorf("oci: %s: %w", source, err)
}

// fileEntryLines returns the line of each entry of files: its [[files]]
// header, or the line of the element of an inline `files = [...]`.
func fileEntryLines(data []byte) []int {
	var lines []int
	var p unstable.Parser
	p.Reset(data)
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		key, line := nodeKey(&p, e)
		switch e.Kind {
		case unstable.Table:
			table = key
		case unstable.ArrayTable:
			table = key
			if key == "files" {
				lines = append(lines, line)
			}
		case unstable.KeyValue:
			if table != "" || key != "files" || e.Value().Kind != unstable.Array {
				continue
			}
			it := e.Value().Children()
			for it.Next() {
				l := line
				if raw := it.Node().Raw; raw.Length > 0 {
					l = p.Shape(raw).Start.Line
				}
				lines = append(lines, l)
			}
		}
	}
	return lines
}

// nodeKey returns the dotted key of a table, array table or key-value
// expression and the line it starts on.
func nodeKey(p *unstable.Parser, e *unstable.Node) (string, int) {
	var parts []string
	line := 0
	it := e.Key()
	for it.Next() {
		n := it.Node()
		parts = append(parts, string(n.Data))
		if line == 0 && n.Raw.Length > 0 {
			line = p.Shape(n.Raw).Start.Line
		}
	}
	return strings.Join(parts, "."), line
}

// where names entry i of files with its line.
func (c *EnarxConfig) where(i int) string {
	if i < len(c.lines) && c.lines[i] > 0 {
		return fmt.Sprintf("%s: line %d: files[%d]", c.Source, c.lines[i], i)
	}
	return fmt.Sprintf("%s: files[%d]", c.Source, i)
}

// check reports the first entry the shim cannot apply.
func (c *EnarxConfig) check() error {
	if c.Steward != "" {
		return fmt.Errorf("oci: %s: steward is not supported in Enarx.toml: the node policy chooses the Keep's Steward, and a container may pick one with the %s annotation; remove steward", c.Source, enarxdev.AnnotationSteward)
	}
	if i := engine.BadArg(c.Args); i >= 0 {
		return fmt.Errorf("oci: %s: args[%d] %q contains a NUL byte, which would cut the argument short: remove it", c.Source, i, c.Args[i])
	}
	for k, v := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("oci: %s: env: %q is not a valid environment variable name", c.Source, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("oci: %s: env: the value of %s contains a NUL byte, which would cut it short: remove it", c.Source, k)
		}
	}
	for i, f := range c.Files {
		where := c.where(i)
		switch f.Kind {
		case "stdin", "stdout", "stderr", "null":
		case "listen", "connect":
			if i < len(standardStreams) {
				return fmt.Errorf("oci: %s: kind %q at file descriptor %d: entries are file descriptors in order and the first three are the standard streams; list stdin, stdout and stderr (or null in their place) before the sockets", where, f.Kind, i)
			}
			if _, err := f.socket(); err != nil {
				return fmt.Errorf("oci: %s: %w", where, err)
			}
			continue
		case "":
			return fmt.Errorf("oci: %s: kind is missing: it is one of stdin, stdout, stderr, null, listen or connect", where)
		default:
			return fmt.Errorf("oci: %s: kind %q is not one of stdin, stdout, stderr, null, listen or connect", where, f.Kind)
		}
		if strings.Contains(f.Name, ":") {
			return fmt.Errorf("oci: %s: name %q contains ':', which separates the names in FD_NAMES", where, f.Name)
		}
		if f.Addr != "" || f.Host != "" || f.Port != nil || f.Prot != "" {
			return fmt.Errorf("oci: %s: addr, host, port and prot apply only to the socket kinds listen and connect, not to %q", where, f.Kind)
		}
		if i >= len(standardStreams) {
			return fmt.Errorf("oci: %s: kind %q after the first three entries: the standard streams are file descriptors 0 to 2, and later entries may only be sockets (listen or connect)", where, f.Kind)
		}
		stream := standardStreams[i]
		if f.Kind != "null" && f.Kind != stream {
			return fmt.Errorf("oci: %s: kind %q at file descriptor %d: entries are file descriptors in order, so this one is %s; reorder the entries as stdin, stdout, stderr (or null in their place)", where, f.Kind, i, stream)
		}
		if f.Kind == "null" && slices.Contains(standardStreams, f.Name) && f.Name != stream {
			return fmt.Errorf("oci: %s: null entry named %q is file descriptor %d, which is %s: entries are file descriptors in order", where, f.Name, i, stream)
		}
	}
	return nil
}

// name is the FD_NAMES label of f, as Enarx gives it.
func (f EnarxFile) name() string {
	switch {
	case f.Name != "":
		return f.Name
	case f.Kind == "connect":
		return f.Host
	}
	return f.Kind
}

// socket is the keep socket of a listen or connect entry, with Enarx's
// defaults.
func (f EnarxFile) socket() (socketspec.Spec, error) {
	s := socketspec.Spec{Name: f.name(), Kind: f.Kind, Prot: f.Prot}
	if s.Prot == "" {
		s.Prot = socketspec.TLS
	}
	if s.Prot != socketspec.TLS && s.Prot != socketspec.TCP {
		return s, fmt.Errorf("kind %q: prot %q is not \"tls\" or \"tcp\"", f.Kind, f.Prot)
	}
	port := uint16(443)
	if f.Port != nil {
		port = *f.Port
	}
	switch f.Kind {
	case "listen":
		if f.Name == "" {
			return s, errors.New(`kind "listen": name is missing: the workload finds the socket by its name in FD_NAMES`)
		}
		if f.Host != "" {
			return s, errors.New(`kind "listen": host applies to connect; use addr for the address to listen on`)
		}
		addr := f.Addr
		if addr == "" {
			addr = "::"
		}
		s.Addr = net.JoinHostPort(addr, strconv.Itoa(int(port)))
	case "connect":
		if f.Host == "" {
			return s, errors.New(`kind "connect": host is missing: name the host to connect to`)
		}
		if f.Addr != "" {
			return s, errors.New(`kind "connect": addr applies to listen; use host for the host to connect to`)
		}
		if port == 0 {
			return s, errors.New(`kind "connect": port 0 is not a port to connect to`)
		}
		s.Addr = net.JoinHostPort(f.Host, strconv.Itoa(int(port)))
	}
	if err := checkSocketName(s.Name); err != nil {
		return s, fmt.Errorf("kind %q: %w", f.Kind, err)
	}
	// What the Keep will check: a listen address that is an IP address, a
	// connect host that is not "every address", a printable name.
	if err := s.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// checkSocketName checks a socket's FD_NAMES label.
func checkSocketName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if strings.ContainsAny(name, ":\x00") {
		return fmt.Errorf("name %q contains ':' (which separates the names in FD_NAMES) or a NUL byte", name)
	}
	return nil
}

// Apply applies c to cfg, whose Args and Env come from the spec, with the
// precedence described at EnarxTOMLFile.
func (c *EnarxConfig) Apply(cfg *workload.Workload) {
	if len(cfg.Args) <= 1 && len(c.Args) > 0 {
		cfg.Args = append(cfg.Args[:len(cfg.Args):len(cfg.Args)], c.Args...)
	}

	// Lowest precedence first; a variable is dropped when a later source
	// sets it. The spec's own entries are kept as they are.
	var env []string
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, kv)
	}
	cfg.Sockets = nil
	for _, f := range c.Files {
		if f.Kind == "listen" || f.Kind == "connect" {
			s, _ := f.socket() // checked by ParseEnarxTOML
			cfg.Sockets = append(cfg.Sockets, s)
		}
	}
	// With sockets, the engine sets FD_COUNT and FD_NAMES: it knows the
	// descriptors of the preopens between the streams and the sockets.
	if c.Files != nil && len(cfg.Sockets) == 0 {
		names := make([]string, len(c.Files))
		for i, f := range c.Files {
			names[i] = f.name()
		}
		set("FD_COUNT=" + strconv.Itoa(len(c.Files)))
		set("FD_NAMES=" + strings.Join(names, ":"))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		set(k + "=" + c.Env[k])
	}
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	}
	cfg.Env = append(env, cfg.Env...)

	if c.Files != nil {
		cfg.NullStdio = nil
		for i, stream := range standardStreams {
			if i >= len(c.Files) || c.Files[i].Kind == "null" {
				cfg.NullStdio = append(cfg.NullStdio, stream)
			}
		}
	}
}

// enarxTOMLInRootfs reads Enarx.toml at the root of rootfs, confined to it
// like the module. It returns nil when there is none.
func enarxTOMLInRootfs(rootfs string) (*EnarxConfig, error) {
	root, err := openRootfs(rootfs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), EnarxTOMLFile, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oci: open %s in the root filesystem: %w", EnarxTOMLFile, err)
	}
	f := os.NewFile(uintptr(fd), EnarxTOMLFile)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("oci: stat %s: %w", EnarxTOMLFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("oci: %s in the root filesystem is not a regular file (%s)", EnarxTOMLFile, st.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxEnarxTOMLSize+1))
	if err != nil {
		return nil, fmt.Errorf("oci: read %s: %w", EnarxTOMLFile, err)
	}
	return ParseEnarxTOML(EnarxTOMLFile, data)
}

// artifactEnarxTOML reads the Enarx.toml layer (media type MediaTypeTOML) of
// a wasm artifact image, found the way extractArtifactModule finds the
// module. It returns nil when the image has none.
func artifactEnarxTOML(ctx context.Context, images ImageStore) (*EnarxConfig, error) {
	target, err := images.Target(ctx)
	if errors.Is(err, ErrNoImage) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("oci: look up the container's image: %w", err)
	}
	manifest, ok, err := wasmManifest(ctx, images, target)
	if err != nil || !ok {
		return nil, err
	}
	for _, layer := range manifest.Layers {
		if layer.MediaType != MediaTypeTOML {
			continue
		}
		data, err := readBlob(ctx, images, layer, MaxEnarxTOMLSize)
		if err != nil {
			return nil, err
		}
		return ParseEnarxTOML(fmt.Sprintf("%s (layer %s)", EnarxTOMLFile, layer.Digest), data)
	}
	return nil, nil
}

// readBlob reads a blob of at most max bytes and checks its digest and size.
func readBlob(ctx context.Context, images ImageStore, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("oci: blob %s (%s) is %d bytes, more than the %d allowed", desc.Digest, desc.MediaType, desc.Size, max)
	}
	verifier, err := newVerifier(desc)
	if err != nil {
		return nil, err
	}
	rc, err := images.Open(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("oci: read blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(io.TeeReader(rc, verifier), max+1))
	if err != nil {
		return nil, fmt.Errorf("oci: read blob %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || !verifier.Verified() {
		return nil, fmt.Errorf("oci: blob %s (%s) does not match its digest or size: the image is corrupt, pull or import it again", desc.Digest, desc.MediaType)
	}
	return b, nil
}

// withFiles completes cfg with what the workload sees of files (its root
// is the container's filesystem view, which the Keep mounts: see
// keep/confine): its working directory, and the image's Enarx.toml, read from the root filesystem or,
// when artifact is not nil, from the wasm artifact image the module came
// from.
func withFiles(ctx context.Context, cfg workload.Workload, bundle string, spec *specs.Spec, artifact ImageStore) (workload.Workload, error) {
	cfg.Cwd = spec.Process.Cwd

	var (
		enarx *EnarxConfig
		err   error
	)
	if artifact != nil {
		enarx, err = artifactEnarxTOML(ctx, artifact)
	} else {
		enarx, err = enarxTOMLInRootfs(Rootfs(bundle, spec))
	}
	if err != nil {
		return workload.Workload{}, err
	}
	if enarx != nil {
		enarx.Apply(&cfg)
	}
	if err := applySocketAnnotations(&cfg, spec.Annotations); err != nil {
		return workload.Workload{}, err
	}
	if err := applyInstancesAnnotation(&cfg, spec.Annotations); err != nil {
		return workload.Workload{}, err
	}
	if err := ApplyNetwork(&cfg, spec); err != nil {
		return workload.Workload{}, err
	}
	// What the Keep checks of its config, so that Create fails rather
	// than the Keep (e.g. a mount at a guest path with ':' next to
	// sockets, which FD_NAMES cannot list).
	if err := cfg.Validate(); err != nil {
		return workload.Workload{}, fmt.Errorf("oci: %w", err)
	}
	return cfg, nil
}
