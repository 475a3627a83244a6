package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// The fuzz targets of this package take what an image or a container's
// spec carries: an Enarx.toml, socket annotations, config.json, and the
// manifests of a wasm artifact image. None may panic; what they accept
// must be a Keep configuration that keep.Config.Validate accepts too (the
// Keep refuses anything else later, with a worse message); what they
// refuse gets an error that names the input.

// enarxTOMLSeeds are documents of TestParseEnarxTOML*, valid and not.
var enarxTOMLSeeds = []string{
	"args = [\"--argument1\", \"--argument2=foo\"]\n\n[env]\nVAR1 = \"var1\"\n\n[[files]]\nkind = \"null\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nname = \"errors\"\nkind = \"stderr\"\n",
	"env = { A = \"1\" }\nfiles = [\n  { kind = \"stdin\" },\n  { kind = \"stdout\" },\n]\n",
	"[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n\n" +
		"[[files]]\nkind = \"listen\"\nname = \"https\"\nport = 8443\n\n" +
		"[[files]]\nkind = \"listen\"\nname = \"plain\"\naddr = \"127.0.0.1\"\nport = 8080\nprot = \"tcp\"\n\n" +
		"[[files]]\nkind = \"connect\"\nhost = \"db.example\"\nport = 5432\nprot = \"tcp\"\n\n" +
		"[[files]]\nkind = \"connect\"\nname = \"api\"\nhost = \"::1\"\n",
	"files = [{kind=\"stdin\"},{kind=\"stdout\"},{kind=\"stderr\"},{kind=\"listen\",name=\"L\",addr=\"example.com\"}]\n",
	"files = [{kind=\"stdin\"},{kind=\"stdout\"},{kind=\"stderr\"},{kind=\"connect\",host=\"0.0.0.0\",port=1}]\n",
	"files = [{kind=\"stdin\"},{kind=\"stdout\"},{kind=\"stderr\"},{kind=\"listen\",name=\"a\\tb\"}]\n",
	"# x\n\nargs = [\"a\" \"b\"]\n",
	"[[files]]\nkind = \"stdin\"\nmode = \"r\"\n",
	"[[files]]\nkind = \"listen\"\nname = \"L\"\nport = 70000\n",
	"[env]\nA = \"1\"\nA = \"2\"\n",
	"steward = \"https://steward.example.com\"\n",
	"env = { \"A=B\" = \"x\" }\n",
	"args = [\"a\\u0000b\"]\n",
	"env = { A = \"x\\u0000\" }\n",
	"",
}

// FuzzParseEnarxTOML: an accepted Enarx.toml applies to a Keep
// configuration that validates, with only standard streams in NullStdio;
// a refused one gets an error naming the file.
func FuzzParseEnarxTOML(f *testing.F) {
	for _, s := range enarxTOMLSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseEnarxTOML("Enarx.toml", data)
		if err != nil {
			if c != nil {
				t.Fatalf("a config and an error: %v", err)
			}
			if !strings.Contains(err.Error(), "Enarx.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		cfg := workload.Workload{Module: "/app.wasm", Args: []string{"/app.wasm"}, Env: []string{"PATH=/"}}
		c.Apply(&cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted Enarx.toml gives a Keep config the Keep refuses: %v", err)
		}
		for _, s := range cfg.NullStdio {
			if !slices.Contains(standardStreams, s) {
				t.Fatalf("NullStdio %q is not a standard stream", cfg.NullStdio)
			}
		}
		if !slices.Contains(cfg.Env, "PATH=/") {
			t.Fatalf("the spec's env was lost: %q", cfg.Env)
		}
	})
}

// FuzzSocketAnnotations: an accepted enarx.dev/listen.NAME or
// enarx.dev/connect.NAME annotation is one socket of that name and kind
// that validates, and writing it back as an annotation gives the same
// socket; a refused one gets an error naming the annotation.
func FuzzSocketAnnotations(f *testing.F) {
	for _, s := range []struct {
		connect     bool
		name, value string
	}{
		{false, "https", "tls://127.0.0.1:8443"},
		{false, "metrics", "tcp://:9090"},
		{false, "web", "tls://[::]:8443"},
		{false, "zone", "tcp://[fe80::1%25lo]:80"},
		{true, "db", "tls://db.example:5432"},
		{true, "api", "tcp://[::1]:443"},
		{false, "x", "tls://example.com:80"},
		{true, "x", "tls://0.0.0.0:80"},
		{false, "a\nb", "tls://:1"},
		{false, "x", "udp://:53"},
		{true, "", "tls://h:1"},
		{false, "x", "8443"},
	} {
		f.Add(s.connect, s.name, s.value)
	}
	f.Fuzz(func(t *testing.T, connect bool, name, value string) {
		key, kind := enarxdev.AnnotationListenPrefix+name, socketspec.Listen
		if connect {
			key, kind = enarxdev.AnnotationConnectPrefix+name, socketspec.Connect
		}
		var cfg workload.Workload
		if err := applySocketAnnotations(&cfg, map[string]string{key: value}); err != nil {
			if !strings.Contains(err.Error(), key) {
				t.Fatalf("error does not name the annotation %q: %v", key, err)
			}
			return
		}
		if len(cfg.Sockets) != 1 {
			t.Fatalf("%d sockets, want 1", len(cfg.Sockets))
		}
		s := cfg.Sockets[0]
		if s.Name != name || s.Kind != kind {
			t.Fatalf("socket %v, want name %q kind %s", s, name, kind)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted annotation %s=%q gives a socket the Keep refuses: %v", key, value, err)
		}
		again := (&url.URL{Scheme: s.Prot, Host: s.Addr}).String()
		var back workload.Workload
		if err := applySocketAnnotations(&back, map[string]string{key: again}); err != nil {
			t.Fatalf("%s=%q, the socket %v written back, is refused: %v", key, again, s, err)
		}
		if !reflect.DeepEqual(back.Sockets, cfg.Sockets) {
			t.Fatalf("written back as %q: %v, want %v", again, back.Sockets, cfg.Sockets)
		}
	})
}

// FuzzResolveSpec writes the input as a bundle's config.json and resolves
// it against a root filesystem with a module, symbolic links out of it and
// a module outside it: an accepted spec gives a Keep configuration that
// validates and whose module is inside the root filesystem the spec names.
func FuzzResolveSpec(f *testing.F) {
	bundle := f.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	secret := filepath.Join(bundle, "secret.wasm")
	for _, d := range []string{rootfs, filepath.Join(rootfs, "dir"), filepath.Join(bundle, "data")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(rootfs, "app.wasm"), filepath.Join(rootfs, "dir", "m.wasm"), secret} {
		if err := os.WriteFile(p, wasmHeader, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for name, target := range map[string]string{"up.wasm": "../secret.wasm", "abs.wasm": secret, "dirlink": "/"} {
		if err := os.Symlink(target, filepath.Join(rootfs, name)); err != nil {
			f.Fatal(err)
		}
	}
	spec := func(edit func(s *specs.Spec)) []byte {
		s := specs.Spec{
			Version: specs.Version,
			Root:    &specs.Root{Path: "rootfs"},
			Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/"}, Cwd: "/"},
			Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}},
		}
		if edit != nil {
			edit(&s)
		}
		b, err := json.Marshal(&s)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, edit := range []func(s *specs.Spec){
		nil,
		func(s *specs.Spec) { s.Process.Args = []string{"/dir/../up.wasm"} },
		func(s *specs.Spec) { s.Process.Args = []string{"../../secret.wasm"} },
		func(s *specs.Spec) { s.Process.Args = []string{"/abs.wasm"} },
		func(s *specs.Spec) { s.Process.Args = []string{"/dirlink/app.wasm#main", "x"} },
		func(s *specs.Spec) { s.Root.Path = "missing" },
		func(s *specs.Spec) { s.Root.Path = "secret.wasm" },
		func(s *specs.Spec) { s.Root.Readonly = true },
		func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/data", Type: "bind", Source: "data", Options: []string{"rbind", "ro"}}}
		},
		func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/../etc", Type: "none", Source: "../..", Options: []string{"rbind"}}}
		},
		func(s *specs.Spec) {
			s.Annotations = map[string]string{enarxdev.AnnotationListenPrefix + "web": "tls://:8443", enarxdev.AnnotationConnectPrefix + "db": "tcp://db:5432"}
		},
		func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "netns" },
		func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/a:b", Type: "bind", Source: "data"}}
			s.Annotations = map[string]string{enarxdev.AnnotationListenPrefix + "web": "tcp://:80"}
		},
		func(s *specs.Spec) { s.Process.Env = []string{"NOVALUE"} },
		func(s *specs.Spec) { s.Process.Args = append(s.Process.Args, "a\x00b") },
		func(s *specs.Spec) {
			s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: new(int64)}}
		},
		func(s *specs.Spec) { s.Process = nil },
	} {
		f.Add(spec(edit))
	}
	f.Add([]byte(`{"process":{"args":[]}}`))
	f.Add([]byte(`{"process":{"args":["/app.wasm"]},"root":{"path":"/"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"process":`))
	config := filepath.Join(bundle, "config.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(config, data, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := LoadSpec(bundle)
		if err != nil {
			if !strings.Contains(err.Error(), "oci: ") {
				t.Fatalf("error without its source: %v", err)
			}
			return
		}
		cfg, err := Resolve(context.Background(), bundle, spec, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "oci: ") {
				t.Fatalf("error without its source: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted spec gives a Keep config the Keep refuses: %v", err)
		}
		root, err := filepath.EvalSymlinks(Rootfs(bundle, spec))
		if err != nil {
			t.Fatalf("module %s resolved in a root filesystem that does not resolve: %v", cfg.Module, err)
		}
		if rel, err := filepath.Rel(root, cfg.Module); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("module %s (process.args[0] %q) is outside the root filesystem %s", cfg.Module, spec.Process.Args[0], root)
		}
		if cfg.Module == secret && !strings.HasPrefix(secret, root+"/") && root != "/" {
			t.Fatalf("module resolved to %s, outside the root filesystem %s", secret, root)
		}
	})
}

// FuzzWasmManifest takes the image a container points at, an index or a
// manifest of the input's bytes, in a store that holds a wasm module, a
// non-module, an Enarx.toml and image configs: finding the module writes
// either nothing or a layer that is a WebAssembly module and matches its
// descriptor, and an Enarx.toml layer found parses.
func FuzzWasmManifest(f *testing.F) {
	dir := f.TempDir()
	base := &memImages{blobs: map[digest.Digest][]byte{}}
	wasmConfig := base.addJSON(f, ocispec.MediaTypeImageConfig, ocispec.Image{Platform: ocispec.Platform{OS: WasmOS, Architecture: WasmArchitecture}})
	linuxConfig := base.addJSON(f, ocispec.MediaTypeImageConfig, ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}})
	module := base.add(f, MediaTypeWasm, append(append([]byte(nil), wasmHeader...), 0, 0))
	component := base.add(f, MediaTypeWasmComponentLayer, []byte("\x00asm\x0d\x00\x01\x00"))
	text := base.add(f, MediaTypeWasmModule, []byte("not a module"))
	toml := base.add(f, MediaTypeTOML, []byte("args = [\"x\"]\n"))
	manifest := func(config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
		b, err := json.Marshal(ocispec.Manifest{Versioned: specsv.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	valid := manifest(wasmConfig, module, toml)
	validDesc := base.add(f, ocispec.MediaTypeImageManifest, valid)
	index := func(ms ...ocispec.Descriptor) []byte {
		b, err := json.Marshal(ocispec.Index{Versioned: specsv.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: ms})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	withPlatform := func(d ocispec.Descriptor, arch string) ocispec.Descriptor {
		d.Platform = &ocispec.Platform{OS: WasmOS, Architecture: arch}
		return d
	}
	wrongSize := module
	wrongSize.Size++
	badDigest := module
	badDigest.Digest = "sha512:abc"
	// The media type of the target: manifest, index, their Docker forms,
	// something else.
	targetTypes := []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json", "application/octet-stream"}
	f.Add(uint8(0), valid)
	f.Add(uint8(0), manifest(wasmConfig, component, module))
	f.Add(uint8(0), manifest(wasmConfig, text))
	f.Add(uint8(0), manifest(wasmConfig, toml))
	f.Add(uint8(0), manifest(wasmConfig, wrongSize))
	f.Add(uint8(0), manifest(wasmConfig, badDigest))
	f.Add(uint8(2), manifest(linuxConfig, module))
	f.Add(uint8(1), index(withPlatform(validDesc, WasmArchitecture)))
	f.Add(uint8(3), index(withPlatform(validDesc, "amd64"), withPlatform(validDesc, WasmArchitecture)))
	f.Add(uint8(1), index(withPlatform(module, WasmArchitecture)))
	f.Add(uint8(4), valid)
	f.Add(uint8(0), []byte(`{"layers":[{"mediaType":"application/wasm","digest":"sha256:","size":-1}]}`))
	dst := Bundle{Dir: dir}.ArtifactModule()
	f.Fuzz(func(t *testing.T, targetType uint8, doc []byte) {
		images := &memImages{blobs: map[digest.Digest][]byte{}}
		for d, b := range base.blobs {
			images.blobs[d] = b
		}
		images.target = images.add(t, targetTypes[int(targetType)%len(targetTypes)], doc)
		os.Remove(dst)
		ctx := context.Background()
		found, err := extractArtifactModule(ctx, images, dst)
		written, rerr := os.ReadFile(dst)
		switch {
		case err != nil && !strings.HasPrefix(err.Error(), "oci: "):
			t.Fatalf("error without its source: %v", err)
		case found && err != nil:
			t.Fatalf("found and an error: %v", err)
		case !found && rerr == nil:
			t.Fatalf("not found, but %s was left behind (err %v)", dst, err)
		case found && rerr != nil:
			t.Fatalf("found, but %s: %v", dst, rerr)
		case found && !bytes.Equal(written, images.blobs[module.Digest]) && !bytes.Equal(written, images.blobs[component.Digest]):
			t.Fatalf("wrote %q, not the module nor the component", written)
		}
		c, err := artifactEnarxTOML(ctx, images)
		switch {
		case err != nil && !strings.HasPrefix(err.Error(), "oci: "):
			t.Fatalf("error without its source: %v", err)
		case c != nil && !reflect.DeepEqual(c.Args, []string{"x"}):
			t.Fatalf("Enarx.toml args %q, want the layer's", c.Args)
		}
	})
}
