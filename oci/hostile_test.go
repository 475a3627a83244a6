package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specsv "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// Hostile input from a bundle or an image: every case fails with an error
// that names the input and says what to do, and none blocks (a FIFO where
// a file is expected would, opened for reading, wait for a writer forever).

// within runs f and fails the test if it has not returned after a while.
func within[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still blocked after 10s", what)
		panic("unreachable")
	}
}

func wantError(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one saying %q", what, want)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", what, err, w)
		}
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostileInputConfigJSON(t *testing.T) {
	for _, c := range []struct {
		name  string
		write func(t *testing.T, p string)
		want  []string
	}{
		{"garbage", writeBytes("this is not JSON\x00\xff"), []string{"config.json", "not a valid runtime spec"}},
		{"truncated", writeBytes(`{"ociVersion":"1.0.2","process":{"args":["/app.wasm"]`), []string{"config.json", "not a valid runtime spec", "unexpected end"}},
		{"wrong types", writeBytes(`{"process":{"args":"/app.wasm"}}`), []string{"config.json", "not a valid runtime spec"}},
		{"null", writeBytes(`null`), []string{"config.json", "has no process", "process.args"}},
		{"no process", writeBytes(`{"ociVersion":"1.0.2","root":{"path":"rootfs"}}`), []string{"config.json", "has no process"}},
		{"missing", func(*testing.T, string) {}, []string{"config.json", "no such file"}},
		{"directory", func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, []string{"config.json", "not a regular file"}},
		{"FIFO", func(t *testing.T, p string) { mkfifo(t, p) }, []string{"config.json", "not a regular file"}},
		{"oversized", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte(`{"process":{"args":["/app.wasm"]},"x":"`), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, MaxSpecSize+1); err != nil {
				t.Fatal(err)
			}
		}, []string{"config.json", "more than the 16777216"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bundle := t.TempDir()
			c.write(t, filepath.Join(bundle, "config.json"))
			err := within(t, "LoadSpec", func() error { _, err := LoadSpec(bundle); return err })
			wantError(t, c.name, err, append([]string{"oci: "}, c.want...)...)
		})
	}
}

func writeBytes(b string) func(t *testing.T, p string) {
	return func(t *testing.T, p string) {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostileBundle is a bundle whose rootfs holds /app.wasm, with a module
// outside the root filesystem (bundle/secret.wasm).
func hostileBundle(t *testing.T) (bundle, rootfs string) {
	t.Helper()
	bundle = t.TempDir()
	rootfs = filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(rootfs, "app.wasm"), filepath.Join(bundle, "secret.wasm")} {
		if err := os.WriteFile(p, wasmHeader, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bundle, rootfs
}

func resolveArgs(t *testing.T, bundle string, root string, args ...string) error {
	t.Helper()
	spec := &specs.Spec{Root: &specs.Root{Path: root}, Process: &specs.Process{Args: args, Cwd: "/"}}
	return within(t, "Resolve", func() error {
		_, err := Resolve(context.Background(), bundle, spec, nil)
		return err
	})
}

func TestHostileInputRootfs(t *testing.T) {
	bundle, _ := hostileBundle(t)
	mkfifo(t, filepath.Join(bundle, "fifo"))
	wantError(t, "missing rootfs", resolveArgs(t, bundle, "missing", "/app.wasm"),
		"oci: ", "no root filesystem at "+filepath.Join(bundle, "missing"), "check root.path")
	wantError(t, "rootfs a file", resolveArgs(t, bundle, "secret.wasm", "/app.wasm"),
		"oci: ", "root filesystem "+filepath.Join(bundle, "secret.wasm")+" is not a directory", "root.path")
	wantError(t, "rootfs a FIFO", resolveArgs(t, bundle, "fifo", "/app.wasm"), "is not a directory")
	// An artifact image still runs without a root filesystem.
	spec := &specs.Spec{Root: &specs.Root{Path: "missing"}, Process: &specs.Process{Args: []string{"app"}, Cwd: "/"}}
	if _, err := Resolve(context.Background(), bundle, spec, artifactImage(t, nil)); err != nil {
		t.Errorf("artifact image without a root filesystem: %v", err)
	}
}

func TestHostileInputModulePaths(t *testing.T) {
	bundle, rootfs := hostileBundle(t)
	secret := filepath.Join(bundle, "secret.wasm")
	for name, target := range map[string]string{
		"up.wasm":  "../secret.wasm",
		"abs.wasm": secret,
		"in.wasm":  "../../../app.wasm",
	} {
		if err := os.Symlink(target, filepath.Join(rootfs, name)); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(t, filepath.Join(rootfs, "fifo.wasm"))
	if err := os.Mkdir(filepath.Join(rootfs, "dir.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args0 := range []string{"/../secret.wasm", "../../secret.wasm", "/up.wasm", "/abs.wasm", "/./../../" + strings.TrimPrefix(secret, "/")} {
		wantError(t, args0, resolveArgs(t, bundle, "rootfs", args0), "oci: ", "not found in the container's root filesystem", "enarx package")
	}
	// A link that stays inside resolves, inside.
	spec := &specs.Spec{Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"/in.wasm"}, Cwd: "/"}}
	cfg, err := Resolve(context.Background(), bundle, spec, nil)
	if err != nil || cfg.Module != filepath.Join(rootfs, "app.wasm") {
		t.Errorf("/in.wasm: module %q, %v; want %s", cfg.Module, err, filepath.Join(rootfs, "app.wasm"))
	}
	wantError(t, "FIFO module", resolveArgs(t, bundle, "rootfs", "/fifo.wasm"), `"/fifo.wasm"`, "not a regular file")
	wantError(t, "directory module", resolveArgs(t, bundle, "rootfs", "/dir.wasm"), `"/dir.wasm"`, "not a regular file")
	wantError(t, "NUL in args", resolveArgs(t, bundle, "rootfs", "/app.wasm", "a\x00b"), "process.args[1]", "NUL")
	spec.Process = &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/", "NOVALUE"}}
	_, err = Resolve(context.Background(), bundle, spec, nil)
	wantError(t, "env without =", err, "process.env[1]", `"NOVALUE"`, "NAME=value")
}

func TestHostileInputEnarxTOML(t *testing.T) {
	bundle, rootfs := hostileBundle(t)
	toml := filepath.Join(rootfs, EnarxTOMLFile)
	mkfifo(t, toml)
	wantError(t, "FIFO Enarx.toml", resolveArgs(t, bundle, "rootfs", "/app.wasm"), "Enarx.toml", "not a regular file")
	os.Remove(toml)
	big := append([]byte("args = [\"x\"]\n"), bytes.Repeat([]byte("# padding\n"), MaxEnarxTOMLSize/10)...)
	if err := os.WriteFile(toml, big, 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, "oversized Enarx.toml", resolveArgs(t, bundle, "rootfs", "/app.wasm"), "oci: Enarx.toml is larger than 1048576 bytes", "remove what is not configuration")
	if err := os.WriteFile(toml, []byte("files = [{kind=\"stdin\"},{kind=\"stdout\"},{kind=\"stderr\"},{kind=\"listen\",name=\"web\",addr=\"example.com\"}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantError(t, "listen on a name", resolveArgs(t, bundle, "rootfs", "/app.wasm"), "Enarx.toml: line 1: files[3]", "must be an IP address", "[::]:443")
	os.Remove(toml)
	spec := &specs.Spec{
		Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"/app.wasm"}},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "run/netns/x"}}},
	}
	_, err := Resolve(context.Background(), bundle, spec, nil)
	wantError(t, "relative netns", err, "linux.namespaces[0]", `"run/netns/x"`, "not absolute")
	spec.Linux = nil
	spec.Annotations = map[string]string{enarxdev.AnnotationConnectPrefix + "db": "tcp://0.0.0.0:5432"}
	_, err = Resolve(context.Background(), bundle, spec, nil)
	wantError(t, "connect to every address", err, enarxdev.AnnotationConnectPrefix+"db", "name the server's host")
	spec.Annotations = map[string]string{enarxdev.AnnotationListenPrefix + "web": "tcp://:80"}
	// A mount whose path has ':' beside sockets is fine: FD_NAMES lists
	// only "/", the root of the container's view the mount is in.
	spec.Mounts = []specs.Mount{{Destination: "/a:b", Type: "bind", Source: rootfs}}
	if _, err = Resolve(context.Background(), bundle, spec, nil); err != nil {
		t.Errorf("mount with ':' next to sockets: %v, want none (FD_NAMES names the view's root only)", err)
	}
}

// TestHostileInputImage damages the blobs of a wasm artifact image: every
// damage is an error that says the image is corrupt, and no module is left
// in the bundle.
func TestHostileInputImage(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"app"}, Cwd: "/"}}
	layerOf := func(m *memImages, mediaType string) digest.Digest {
		for d, b := range m.blobs {
			if mediaType == MediaTypeWasm && bytes.HasPrefix(b, wasmHeader) {
				return d
			}
			if mediaType == MediaTypeTOML && bytes.HasPrefix(b, []byte("args")) {
				return d
			}
		}
		t.Fatalf("no %s layer", mediaType)
		return ""
	}
	for _, c := range []struct {
		name   string
		damage func(m *memImages)
		want   []string
	}{
		{"wasm layer of another digest", func(m *memImages) {
			d := layerOf(m, MediaTypeWasm)
			m.blobs[d] = append(bytes.Clone(m.blobs[d][:len(m.blobs[d])-1]), 1)
		}, []string{"wasm layer sha256:", "does not match its digest or size", "pull or import it again"}},
		{"truncated wasm layer", func(m *memImages) {
			d := layerOf(m, MediaTypeWasm)
			m.blobs[d] = m.blobs[d][:4]
		}, []string{"wasm layer sha256:", "does not match its digest or size", "pull or import it again"}},
		{"longer wasm layer", func(m *memImages) {
			d := layerOf(m, MediaTypeWasm)
			m.blobs[d] = append(m.blobs[d], make([]byte, 1<<20)...)
		}, []string{"does not match its digest or size"}},
		{"corrupt manifest", func(m *memImages) {
			b := bytes.Clone(m.blobs[m.target.Digest])
			b[len(b)-2] ^= 1
			m.blobs[m.target.Digest] = b
		}, []string{"blob sha256:", "does not match its digest or size", "pull or import it again"}},
		{"manifest not JSON", func(m *memImages) { m.target = m.add(t, ocispec.MediaTypeImageManifest, []byte("{\"layers\":")) }, []string{"is not valid JSON"}},
		{"oversized manifest", func(m *memImages) { m.target.Size = 1 << 30 }, []string{"1073741824 bytes, more than the 4194304 allowed"}},
		{"unknown target media type", func(m *memImages) { m.target.MediaType = "text/plain" }, []string{`unsupported media type "text/plain"`}},
		{"digest algorithm", func(m *memImages) { m.target.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e" }, []string{`descriptor digest "md5:`}},
		{"corrupt Enarx.toml layer", func(m *memImages) {
			d := layerOf(m, MediaTypeTOML)
			m.blobs[d] = []byte("args = [\"y\"]\n")
		}, []string{"does not match its digest or size"}},
		{"module that is not wasm", func(m *memImages) {
			manifestOf(t, m, func(man *ocispec.Manifest) { man.Layers[0] = m.add(t, MediaTypeWasm, []byte("#!/bin/sh\n")) })
		}, []string{"wasm layer sha256:", "not a WebAssembly module", "GOOS=wasip1"}},
		{"no wasm layer", func(m *memImages) {
			manifestOf(t, m, func(man *ocispec.Manifest) { man.Layers = man.Layers[1:] })
		}, []string{"has no layer of a wasm media type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := artifactImage(t, []byte("args = [\"x\"]\n"))
			c.damage(m)
			bundle := t.TempDir()
			_, err := Resolve(context.Background(), bundle, spec, m)
			wantError(t, c.name, err, append([]string{"oci: "}, c.want...)...)
			if _, serr := os.Stat(Bundle{Dir: bundle}.ArtifactModule()); serr == nil {
				t.Errorf("%s: the module was left in the bundle", c.name)
			}
		})
	}
}

// manifestOf replaces m's manifest with an edited copy.
func manifestOf(t *testing.T, m *memImages, edit func(*ocispec.Manifest)) {
	t.Helper()
	var man ocispec.Manifest
	if err := json.Unmarshal(m.blobs[m.target.Digest], &man); err != nil {
		t.Fatal(err)
	}
	edit(&man)
	man.Versioned = specsv.Versioned{SchemaVersion: 2}
	m.target = m.addJSON(t, ocispec.MediaTypeImageManifest, man)
}
