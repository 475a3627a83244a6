package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	specsv "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

func TestParseEnarxTOML(t *testing.T) {
	doc := `# the example of Enarx's documentation, sockets left out
args = ["--argument1", "--argument2=foo"]

[env]
VAR1 = "var1"
VAR2 = "var2"

[[files]]
kind = "null"

[[files]]
kind = "stdout"

[[files]]
name = "errors"
kind = "stderr"
`
	c, err := ParseEnarxTOML("Enarx.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--argument1", "--argument2=foo"}; !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if want := map[string]string{"VAR1": "var1", "VAR2": "var2"}; !reflect.DeepEqual(c.Env, want) {
		t.Errorf("env %v, want %v", c.Env, want)
	}
	if len(c.Files) != 3 || c.Files[0].Kind != "null" || c.Files[2].Name != "errors" {
		t.Errorf("files %+v", c.Files)
	}
	if want := []int{8, 11, 14}; !reflect.DeepEqual(c.lines, want) {
		t.Errorf("entry lines %v, want %v", c.lines, want)
	}

	inline := "env = { A = \"1\" }\nfiles = [\n  { kind = \"stdin\" },\n  { kind = \"stdout\" },\n]\n"
	c, err = ParseEnarxTOML("Enarx.toml", []byte(inline))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 2 || c.Env["A"] != "1" {
		t.Errorf("inline form: %+v", c)
	}

	for _, empty := range []string{"", "# nothing\n"} {
		c, err := ParseEnarxTOML("Enarx.toml", []byte(empty))
		if err != nil || c.Files != nil || c.Args != nil || c.Env != nil {
			t.Errorf("%q: %+v, %v; want an empty config", empty, c, err)
		}
	}
}

func TestParseEnarxTOMLErrors(t *testing.T) {
	const streams = "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"bad TOML", "# x\n\nargs = [\"a\" \"b\"]\n", []string{"line 3"}},
		{"unknown key", "args = []\nargz = [\"x\"]\n", []string{`unknown key "argz" (line 2`}},
		{"unknown key in files", "[[files]]\nkind = \"stdin\"\nmode = \"r\"\n", []string{`"files.mode" (line 3`}},
		{"newer Enarx format", "[stdin]\nkind = \"null\"\n", []string{`"stdin" (line 1`}},
		{"args not strings", "\nargs = [1, 2]\n", []string{"line 2", `"args"`}},
		{"args a string", "args = \"a b\"\n", []string{"line 1", `"args"`}},
		{"env not strings", "[env]\nA = \"ok\"\nB = true\n", []string{"line 3"}},
		{"port out of range", "[[files]]\nkind = \"listen\"\nname = \"L\"\nport = 70000\n", []string{"line 4", "port"}},
		{"duplicate key", "[env]\nA = \"1\"\nA = \"2\"\n", []string{"line 3"}},
		{"unknown kind", "[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"pipe\"\n", []string{"line 4", "files[1]", `"pipe"`}},
		{"no kind", "[[files]]\nname = \"x\"\n", []string{"line 1", "kind is missing"}},
		{"socket before the streams", "files = [{ kind = \"connect\", host = \"example.com\" }]\n", []string{"line 1", "file descriptor 0", "before the sockets"}},
		{"listen without name", streams + "[[files]]\nkind = \"listen\"\nport = 8080\n", []string{"line 7", "files[3]", "name is missing"}},
		{"connect without host", streams + "[[files]]\nkind = \"connect\"\nport = 8080\n", []string{"files[3]", "host is missing"}},
		{"bad prot", streams + "[[files]]\nkind = \"listen\"\nname = \"L\"\nprot = \"udp\"\n", []string{"files[3]", `prot "udp"`}},
		{"listen with host", streams + "[[files]]\nkind = \"listen\"\nname = \"L\"\nhost = \"x\"\n", []string{"files[3]", "use addr"}},
		{"connect with addr", streams + "[[files]]\nkind = \"connect\"\nhost = \"x\"\naddr = \"::\"\n", []string{"files[3]", "use host"}},
		{"connect to port 0", streams + "[[files]]\nkind = \"connect\"\nhost = \"x\"\nport = 0\n", []string{"files[3]", "port 0"}},
		{"socket name with colon", streams + "[[files]]\nkind = \"listen\"\nname = \"a:b\"\n", []string{"files[3]", "':'"}},
		{"stream out of place", "[[files]]\nkind = \"stdout\"\n", []string{"files[0]", "file descriptor 0", "stdin"}},
		{"null named for another stream", "[[files]]\nkind = \"null\"\nname = \"stdout\"\n", []string{"files[0]", `"stdout"`}},
		{"fourth stream", "files = [{kind=\"stdin\"},{kind=\"stdout\"},{kind=\"stderr\"},{kind=\"null\"}]\n", []string{"files[3]", "may only be sockets"}},
		{"name with colon", "[[files]]\nkind = \"stdin\"\nname = \"a:b\"\n", []string{"files[0]", "':'"}},
		{"socket key on a stream", "[[files]]\nkind = \"stdin\"\nport = 1\n", []string{"files[0]", "port"}},
		{"steward", "steward = \"https://steward.example.com\"\n", []string{"steward", enarxdev.AnnotationSteward}},
		{"env name", "env = { \"A=B\" = \"x\" }\n", []string{`"A=B"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseEnarxTOML("Enarx.toml", []byte(c.doc))
			if err == nil {
				t.Fatalf("%q parsed, want an error", c.doc)
			}
			for _, w := range append([]string{"Enarx.toml"}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	big := bytes.Repeat([]byte("# padding\n"), MaxEnarxTOMLSize/10+1)
	if _, err := ParseEnarxTOML("Enarx.toml", big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a %d-byte document: %v, want a size error", len(big), err)
	}
}

func TestEnarxConfigApply(t *testing.T) {
	parse := func(doc string) *EnarxConfig {
		t.Helper()
		c, err := ParseEnarxTOML("Enarx.toml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	toml := parse(`args = ["a", "b"]
env = { GREETING = "hello", PATH = "/toml", ZED = "z" }
`)
	for _, c := range []struct {
		name      string
		args, env []string
		wantArgs  []string
		wantEnv   []string
	}{
		{"spec has only the module", []string{"/app.wasm"}, []string{"PATH=/bin"},
			[]string{"/app.wasm", "a", "b"}, []string{"GREETING=hello", "ZED=z", "PATH=/bin"}},
		{"spec args win", []string{"/app.wasm", "x"}, []string{"GREETING=spec", "EXTRA=1"},
			[]string{"/app.wasm", "x"}, []string{"PATH=/toml", "ZED=z", "GREETING=spec", "EXTRA=1"}},
		{"spec env kept as is", []string{"/app.wasm"}, []string{"A=1", "A=2"},
			[]string{"/app.wasm", "a", "b"}, []string{"GREETING=hello", "PATH=/toml", "ZED=z", "A=1", "A=2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string(nil), c.args...)
			cfg := workload.Workload{Args: args, Env: c.env}
			toml.Apply(&cfg)
			if !reflect.DeepEqual(cfg.Args, c.wantArgs) {
				t.Errorf("args %q, want %q", cfg.Args, c.wantArgs)
			}
			if !reflect.DeepEqual(cfg.Env, c.wantEnv) {
				t.Errorf("env %q, want %q", cfg.Env, c.wantEnv)
			}
			if !reflect.DeepEqual(args, c.args) {
				t.Errorf("Apply changed the spec's args slice: %q", args)
			}
			if cfg.NullStdio != nil {
				t.Errorf("no files: null stdio %q, want none", cfg.NullStdio)
			}
		})
	}

	for _, c := range []struct {
		doc      string
		wantNull []string
		wantEnv  []string
	}{
		{"files = []", []string{"stdin", "stdout", "stderr"}, []string{"FD_COUNT=0", "FD_NAMES="}},
		{"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n", []string{"stdin"}, []string{"FD_COUNT=3", "FD_NAMES=null:stdout:stderr"}},
		{"[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\nname = \"out\"\n", []string{"stderr"}, []string{"FD_COUNT=2", "FD_NAMES=stdin:out"}},
		{"[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"null\"\nname = \"stdout\"\n[[files]]\nkind = \"stderr\"\n", []string{"stdout"}, []string{"FD_COUNT=3", "FD_NAMES=stdin:stdout:stderr"}},
		{"env = { FD_COUNT = \"mine\" }\nfiles = [{kind = \"stdin\"}, {kind = \"stdout\"}, {kind = \"stderr\"}]\n", nil, []string{"FD_NAMES=stdin:stdout:stderr", "FD_COUNT=mine"}},
	} {
		cfg := workload.Workload{Args: []string{"/app.wasm"}}
		parse(c.doc).Apply(&cfg)
		if !reflect.DeepEqual(cfg.NullStdio, c.wantNull) {
			t.Errorf("%q: null stdio %q, want %q", c.doc, cfg.NullStdio, c.wantNull)
		}
		if !reflect.DeepEqual(cfg.Env, c.wantEnv) {
			t.Errorf("%q: env %q, want %q", c.doc, cfg.Env, c.wantEnv)
		}
	}
}

// wasmHeader is the smallest valid core module.
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

func TestResolveFiles(t *testing.T) {
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	data := t.TempDir()
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(rootfs, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app.wasm", wasmHeader)
	spec := &specs.Spec{
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/bin"}, Cwd: "/data"},
		Mounts:  []specs.Mount{{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "ro"}}},
	}
	cfg, err := Resolve(context.Background(), bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No preopens: the Keep mounts the container's view (the root
	// filesystem and its mounts, data at /data) and the workload sees "/"
	// of it (keep/confine).
	want := workload.Workload{
		Module: filepath.Join(rootfs, "app.wasm"), Args: []string{"/app.wasm"}, Env: []string{"PATH=/bin"},
		Cwd: "/data",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("without Enarx.toml:\n got %+v\nwant %+v", cfg, want)
	}

	write(EnarxTOMLFile, []byte("args = [\"from-toml\"]\nenv = { GREETING = \"hi\" }\nfiles = [{ kind = \"stdin\" }, { kind = \"stdout\" }, { kind = \"null\" }]\n"))
	cfg, err = Resolve(context.Background(), bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	want.Args = []string{"/app.wasm", "from-toml"}
	want.Env = []string{"FD_COUNT=3", "FD_NAMES=stdin:stdout:null", "GREETING=hi", "PATH=/bin"}
	want.NullStdio = []string{"stderr"}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("with Enarx.toml:\n got %+v\nwant %+v", cfg, want)
	}

	write(EnarxTOMLFile, []byte("args = [\"ok\"]\n\nenv = [\"A=B\"]\n"))
	if _, err := Resolve(context.Background(), bundle, spec, nil); err == nil || !strings.Contains(err.Error(), "Enarx.toml: line 3") {
		t.Errorf("invalid Enarx.toml: %v, want an error naming Enarx.toml and line 3", err)
	}

	// A symbolic link pointing out of the root filesystem resolves inside it.
	outside := filepath.Join(t.TempDir(), "Enarx.toml")
	if err := os.WriteFile(outside, []byte("args = [\"outside\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(rootfs, EnarxTOMLFile))
	if err := os.Symlink(outside, filepath.Join(rootfs, EnarxTOMLFile)); err != nil {
		t.Fatal(err)
	}
	cfg, err = Resolve(context.Background(), bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Args) != 1 {
		t.Errorf("Enarx.toml linked out of the rootfs was read: args %q", cfg.Args)
	}
}

// memImages is an ImageStore over blobs in memory.
type memImages struct {
	target ocispec.Descriptor
	blobs  map[digest.Digest][]byte
}

func (m *memImages) Target(context.Context) (ocispec.Descriptor, error) { return m.target, nil }

func (m *memImages) Open(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := m.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, os.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memImages) add(t testing.TB, mediaType string, b []byte) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	m.blobs[d.Digest] = b
	return d
}

func (m *memImages) addJSON(t testing.TB, mediaType string, v any) ocispec.Descriptor {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return m.add(t, mediaType, b)
}

// artifactImage is a wasm artifact image with a module layer and, when toml
// is not nil, an Enarx.toml layer.
func artifactImage(t *testing.T, toml []byte) *memImages {
	m := &memImages{blobs: map[digest.Digest][]byte{}}
	config := m.addJSON(t, ocispec.MediaTypeImageConfig, ocispec.Image{Platform: ocispec.Platform{OS: WasmOS, Architecture: WasmArchitecture}})
	layers := []ocispec.Descriptor{m.add(t, MediaTypeWasm, wasmHeader)}
	if toml != nil {
		layers = append(layers, m.add(t, MediaTypeTOML, toml))
	}
	m.target = m.addJSON(t, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specsv.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers,
	})
	return m
}

func TestResolveArtifactEnarxTOML(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"app"}, Env: []string{"B=spec"}, Cwd: "/"}}
	images := artifactImage(t, []byte("args = [\"x\"]\nenv = { A = \"toml\", B = \"toml\" }\n"))
	cfg, err := Resolve(context.Background(), t.TempDir(), spec, images)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app", "x"}; !reflect.DeepEqual(cfg.Args, want) {
		t.Errorf("args %q, want %q", cfg.Args, want)
	}
	if want := []string{"A=toml", "B=spec"}; !reflect.DeepEqual(cfg.Env, want) {
		t.Errorf("env %q, want %q", cfg.Env, want)
	}
	if len(cfg.Preopens) != 0 {
		t.Errorf("preopens %+v without a root filesystem or mounts", cfg.Preopens)
	}

	cfg, err = Resolve(context.Background(), t.TempDir(), spec, artifactImage(t, nil))
	if err != nil || len(cfg.Args) != 1 {
		t.Errorf("no Enarx.toml layer: %+v, %v", cfg, err)
	}

	_, err = Resolve(context.Background(), t.TempDir(), spec, artifactImage(t, []byte("\n\nargs = 3\n")))
	if err == nil || !strings.Contains(err.Error(), "Enarx.toml (layer sha256:") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("invalid Enarx.toml layer: %v, want an error naming it and line 3", err)
	}

	corrupt := artifactImage(t, []byte("args = [\"x\"]\n"))
	for d, b := range corrupt.blobs {
		if string(b) == "args = [\"x\"]\n" {
			corrupt.blobs[d] = []byte("args = [\"y\"]\n")
		}
	}
	if _, err := Resolve(context.Background(), t.TempDir(), spec, corrupt); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("corrupt Enarx.toml layer: %v, want a digest error", err)
	}
}

func TestEnarxTOMLSockets(t *testing.T) {
	doc := `[[files]]
kind = "stdin"
[[files]]
kind = "stdout"
[[files]]
kind = "stderr"

[[files]]
kind = "listen"
name = "https"
port = 8443

[[files]]
kind = "listen"
name = "plain"
addr = "127.0.0.1"
port = 8080
prot = "tcp"

[[files]]
kind = "connect"
host = "db.example"
port = 5432
prot = "tcp"

[[files]]
kind = "connect"
name = "api"
host = "::1"
`
	c, err := ParseEnarxTOML("Enarx.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg := workload.Workload{Args: []string{"/app.wasm"}}
	c.Apply(&cfg)
	want := []socketspec.Spec{
		{Name: "https", Kind: "listen", Prot: "tls", Addr: "[::]:8443"},
		{Name: "plain", Kind: "listen", Prot: "tcp", Addr: "127.0.0.1:8080"},
		{Name: "db.example", Kind: "connect", Prot: "tcp", Addr: "db.example:5432"},
		{Name: "api", Kind: "connect", Prot: "tls", Addr: "[::1]:443"},
	}
	if !reflect.DeepEqual(cfg.Sockets, want) {
		t.Errorf("sockets\n%+v\nwant\n%+v", cfg.Sockets, want)
	}
	for _, kv := range cfg.Env {
		if strings.HasPrefix(kv, "FD_") {
			t.Errorf("env has %q: with sockets the engine sets FD_COUNT and FD_NAMES", kv)
		}
	}
}

func TestSocketAnnotations(t *testing.T) {
	cfg := workload.Workload{Sockets: []socketspec.Spec{{Name: "https", Kind: "listen", Prot: "tls", Addr: "[::]:443"}}}
	err := applySocketAnnotations(&cfg, map[string]string{
		enarxdev.AnnotationListenPrefix + "https":   "tls://127.0.0.1:8443",
		enarxdev.AnnotationListenPrefix + "metrics": "tcp://:9090",
		enarxdev.AnnotationConnectPrefix + "db":     "tls://db.example:5432",
		enarxdev.AnnotationSteward:                  "http://127.0.0.1:1",
		"other":                                     "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []socketspec.Spec{
		{Name: "https", Kind: "listen", Prot: "tls", Addr: "127.0.0.1:8443"},
		{Name: "db", Kind: "connect", Prot: "tls", Addr: "db.example:5432"},
		{Name: "metrics", Kind: "listen", Prot: "tcp", Addr: "[::]:9090"},
	}
	if !reflect.DeepEqual(cfg.Sockets, want) {
		t.Errorf("sockets\n%+v\nwant\n%+v", cfg.Sockets, want)
	}
	for _, c := range []struct{ key, value, want string }{
		{enarxdev.AnnotationListenPrefix + "x", "udp://:53", "prot://host:port"},
		{enarxdev.AnnotationListenPrefix + "x", "tls://:", "port is missing"},
		{enarxdev.AnnotationListenPrefix + "x", "tls://[::]:8443/path", "prot://host:port"},
		{enarxdev.AnnotationConnectPrefix + "x", "tls://:5432", "host to connect to is missing"},
		{enarxdev.AnnotationConnectPrefix, "tls://h:1", "name is empty"},
		{enarxdev.AnnotationListenPrefix + "a:b", "tls://:1", "':'"},
		{enarxdev.AnnotationListenPrefix + "x", "8443", "prot://host:port"},
		{enarxdev.AnnotationConnectPrefix + "x", "tCp://::1", "IPv6 addresses go in brackets"},
		{enarxdev.AnnotationConnectPrefix + "x", "tls://db/x:1", "prot://host:port"},
		{enarxdev.AnnotationConnectPrefix + "x", "tls://db!x:1", "neither an IP address nor a DNS name"},
	} {
		err := applySocketAnnotations(&workload.Workload{}, map[string]string{c.key: c.value})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s=%q: %v, want an error naming the key and saying %q", c.key, c.value, err, c.want)
		}
	}
}

func TestApplyNetwork(t *testing.T) {
	for _, c := range []struct {
		name   string
		ns     []specs.LinuxNamespace
		netns  string
		newNet bool
	}{
		{"host", []specs.LinuxNamespace{{Type: specs.PIDNamespace}}, "", false},
		{"new", []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}, "", true},
		{"pod", []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}}, "/var/run/netns/cni-1", false},
	} {
		cfg := workload.Workload{}
		if err := ApplyNetwork(&cfg, &specs.Spec{Linux: &specs.Linux{Namespaces: c.ns}}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.NetNS != c.netns || cfg.NewNetNS != c.newNet {
			t.Errorf("%s: netns %q new %v, want %q %v", c.name, cfg.NetNS, cfg.NewNetNS, c.netns, c.newNet)
		}
	}
}

func TestInstancesAnnotation(t *testing.T) {
	cfg := workload.Workload{}
	if err := applyInstancesAnnotation(&cfg, map[string]string{"other": "3"}); err != nil || cfg.Instances != 0 || cfg.InstanceCount() != 1 {
		t.Fatalf("no annotation: instances %d (count %d), %v; want 0 (count 1)", cfg.Instances, cfg.InstanceCount(), err)
	}
	for _, v := range []string{"1", "2", "64"} {
		cfg := workload.Workload{}
		if err := applyInstancesAnnotation(&cfg, map[string]string{enarxdev.AnnotationInstances: v}); err != nil || strconv.Itoa(cfg.Instances) != v {
			t.Errorf("%s=%q: instances %d, %v", enarxdev.AnnotationInstances, v, cfg.Instances, err)
		}
	}
	for _, v := range []string{"", "0", "-1", "65", "two", "2.0", " 2", "0x2"} {
		err := applyInstancesAnnotation(&workload.Workload{}, map[string]string{enarxdev.AnnotationInstances: v})
		if err == nil || !strings.Contains(err.Error(), enarxdev.AnnotationInstances) || !strings.Contains(err.Error(), "from 1 to 64") {
			t.Errorf("%s=%q: %v, want an error naming the annotation and the range", enarxdev.AnnotationInstances, v, err)
		}
	}
}
