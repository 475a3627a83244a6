package archive

import (
	"github.com/enarx/containerd-shim-enarx/oci"

	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// emptyModule is the smallest valid WebAssembly core module: just the header.
var emptyModule = []byte("\x00asm\x01\x00\x00\x00")

// testModule is a valid module with a custom section, so that its bytes are
// recognizable.
var testModule = append(slices.Clone(emptyModule), 0x00, 0x05, 0x04, 't', 'e', 's', 't')

// componentHeader is the header of a WebAssembly component.
var componentHeader = []byte("\x00asm\x0d\x00\x01\x00")

func TestCheckModuleHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  []byte
		is      error    // errors.Is target; nil for success
		message []string // substrings of the error message
	}{
		{"good", emptyModule, nil, nil},
		{"good-long", testModule, nil, nil},
		{"empty", nil, oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module", "file is empty", "wasip1"}},
		{"short-magic", []byte("\x00as"), oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module", "00 61 73"}},
		{"short-version", []byte("\x00asm\x01"), oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module", "ends inside the 8-byte WebAssembly header"}},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00"), oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module", "7f 45 4c 46", "GOOS=wasip1 GOARCH=wasm"}},
		{"text", []byte("(module)"), oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module"}},
		{"component", componentHeader, nil, nil},
		{"component-other-version", []byte("\x00asm\x0c\x00\x01\x00"), oci.ErrWasmComponent, []string{"x.wasm is a WebAssembly component of binary version 0x0c", "unsupported component binary version", "only version 0x0d"}},
		{"version-2", []byte("\x00asm\x02\x00\x00\x00"), oci.ErrNotWasmModule, []string{"x.wasm: not a WebAssembly module", "unsupported WebAssembly binary version 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := oci.CheckModuleHeader("x.wasm", tc.header)
			if tc.is == nil {
				if err != nil {
					t.Fatalf("CheckModuleHeader: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckModuleHeader: no error")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			for _, m := range tc.message {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not contain %q", err, m)
				}
			}
		})
	}
}

// layout is an OCI image layout read back from a WritePackage archive.
type layout struct {
	files    map[string][]byte
	names    []string // in archive order
	index    ocispec.Index
	manifest ocispec.Manifest
	config   ocispec.Image
}

// blob returns the content of desc after checking its digest and size.
func (l *layout) blob(t *testing.T, desc ocispec.Descriptor) []byte {
	t.Helper()
	if err := desc.Digest.Validate(); err != nil {
		t.Fatalf("descriptor %+v: %v", desc, err)
	}
	data, ok := l.files["blobs/sha256/"+desc.Digest.Encoded()]
	if !ok {
		t.Fatalf("no blob for %s (%s)", desc.Digest, desc.MediaType)
	}
	if got := digest.FromBytes(data); got != desc.Digest {
		t.Fatalf("blob %s has digest %s", desc.Digest, got)
	}
	if int64(len(data)) != desc.Size {
		t.Fatalf("blob %s: size %d, descriptor says %d", desc.Digest, len(data), desc.Size)
	}
	return data
}

// readLayout parses an archive: index.json → manifest → config, checking
// digests, sizes and media types along the way.
func readLayout(t *testing.T, archive []byte) *layout {
	t.Helper()
	l := &layout{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading archive: %v", err)
		}
		l.names = append(l.names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: owner %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			t.Fatalf("%s: type %c", hdr.Name, hdr.Typeflag)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		l.files[hdr.Name] = data
	}
	if !slices.IsSorted(l.names) {
		t.Errorf("archive entries not sorted: %q", l.names)
	}

	var ol ocispec.ImageLayout
	mustUnmarshal(t, l.files[ocispec.ImageLayoutFile], &ol)
	if ol.Version != ocispec.ImageLayoutVersion {
		t.Errorf("oci-layout version %q", ol.Version)
	}
	mustUnmarshal(t, l.files[ocispec.ImageIndexFile], &l.index)
	if l.index.SchemaVersion != 2 || l.index.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index: schemaVersion %d, mediaType %q", l.index.SchemaVersion, l.index.MediaType)
	}
	if len(l.index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(l.index.Manifests))
	}
	md := l.index.Manifests[0]
	if md.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("index entry media type %q", md.MediaType)
	}
	mustUnmarshal(t, l.blob(t, md), &l.manifest)
	if l.manifest.SchemaVersion != 2 || l.manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest: schemaVersion %d, mediaType %q", l.manifest.SchemaVersion, l.manifest.MediaType)
	}
	if l.manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("config media type %q", l.manifest.Config.MediaType)
	}
	mustUnmarshal(t, l.blob(t, l.manifest.Config), &l.config)
	if len(l.manifest.Layers) != 1 {
		t.Fatalf("manifest has %d layers, want 1", len(l.manifest.Layers))
	}
	l.blob(t, l.manifest.Layers[0])
	// Every blob is referenced.
	if n := len(l.files) - 2; n != 3 {
		t.Errorf("%d blobs, want 3 (manifest, config, layer)", n)
	}
	return l
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if data == nil {
		t.Fatalf("missing file for %T", v)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("parsing %T: %v", v, err)
	}
}

func writePackage(t *testing.T, opts PackageOptions) ([]byte, ocispec.Descriptor) {
	t.Helper()
	var buf bytes.Buffer
	desc, err := WritePackage(context.Background(), &buf, opts)
	if err != nil {
		t.Fatalf("WritePackage: %v", err)
	}
	return buf.Bytes(), desc
}

func TestWritePackageDefault(t *testing.T) {
	archive, desc := writePackage(t, PackageOptions{
		Module:      testModule,
		Name:        "hello",
		Args:        []string{"a", "b"},
		Env:         []string{"FOO=bar"},
		Annotations: map[string]string{"org.example": "x"},
	})
	l := readLayout(t, archive)

	md := l.index.Manifests[0]
	if md.Digest != desc.Digest || md.Size != desc.Size {
		t.Errorf("returned descriptor %+v, index has %+v", desc, md)
	}
	want := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if md.Platform == nil || md.Platform.OS != want.OS || md.Platform.Architecture != want.Architecture {
		t.Errorf("index platform %+v, want %+v", md.Platform, want)
	}
	if got := md.Annotations[AnnotationImageName]; got != "docker.io/library/hello:latest" {
		t.Errorf("%s = %q", AnnotationImageName, got)
	}
	if got := md.Annotations[ocispec.AnnotationRefName]; got != "latest" {
		t.Errorf("%s = %q", ocispec.AnnotationRefName, got)
	}
	if md.Annotations["org.example"] != "x" || l.manifest.Annotations["org.example"] != "x" {
		t.Errorf("annotations: index %v, manifest %v", md.Annotations, l.manifest.Annotations)
	}

	c := l.config
	if c.OS != want.OS || c.Architecture != want.Architecture {
		t.Errorf("config platform %s/%s", c.OS, c.Architecture)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{oci.DefaultModulePath}) || !slices.Equal(c.Config.Cmd, []string{"a", "b"}) ||
		!slices.Equal(c.Config.Env, []string{"FOO=bar"}) {
		t.Errorf("config %+v", c.Config)
	}
	if c.Created == nil || !c.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("created %v, want the epoch", c.Created)
	}

	layer := l.manifest.Layers[0]
	if layer.MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("layer media type %q", layer.MediaType)
	}
	zr, err := gzip.NewReader(bytes.NewReader(l.blob(t, layer)))
	if err != nil {
		t.Fatal(err)
	}
	uncompressed, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if c.RootFS.Type != "layers" || !slices.Equal(c.RootFS.DiffIDs, []digest.Digest{digest.FromBytes(uncompressed)}) {
		t.Errorf("rootfs %+v, want the diff_id %s", c.RootFS, digest.FromBytes(uncompressed))
	}
	tr := tar.NewReader(bytes.NewReader(uncompressed))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if "/"+hdr.Name != oci.DefaultModulePath || hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 ||
		!hdr.ModTime.Equal(time.Unix(0, 0)) {
		t.Errorf("layer entry %q type %c mode %o owner %d:%d mtime %v", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, testModule) {
		t.Errorf("layer holds %x, want the module %x", data, testModule)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("more than one entry in the layer: %v", err)
	}
}

func TestWritePackageArtifact(t *testing.T) {
	for _, mediaType := range []string{"", oci.MediaTypeWasm, oci.MediaTypeWasmModule, oci.MediaTypeWasmComponentLayer} {
		t.Run(mediaType, func(t *testing.T) {
			archive, _ := writePackage(t, PackageOptions{
				Module:         testModule,
				Name:           "ghcr.io/example/hello:v1",
				Artifact:       true,
				LayerMediaType: mediaType,
				Args:           []string{"-v"},
			})
			l := readLayout(t, archive)
			md := l.index.Manifests[0]
			if md.Platform == nil || md.Platform.OS != oci.WasmOS || md.Platform.Architecture != oci.WasmArchitecture {
				t.Errorf("index platform %+v", md.Platform)
			}
			if md.Annotations[AnnotationImageName] != "ghcr.io/example/hello:v1" || md.Annotations[ocispec.AnnotationRefName] != "v1" {
				t.Errorf("index annotations %v", md.Annotations)
			}
			c := l.config
			if c.OS != oci.WasmOS || c.Architecture != oci.WasmArchitecture {
				t.Errorf("config platform %s/%s", c.OS, c.Architecture)
			}
			if c.RootFS.Type != "layers" || c.RootFS.DiffIDs == nil || len(c.RootFS.DiffIDs) != 0 {
				t.Errorf("rootfs %+v, want layers with empty diff_ids", c.RootFS)
			}
			if !bytes.Contains(l.blob(t, l.manifest.Config), []byte(`"diff_ids":[]`)) {
				t.Errorf("config does not list diff_ids as []: %s", l.blob(t, l.manifest.Config))
			}
			if !slices.Equal(c.Config.Entrypoint, []string{"app.wasm"}) || !slices.Equal(c.Config.Cmd, []string{"-v"}) {
				t.Errorf("config %+v", c.Config)
			}
			layer := l.manifest.Layers[0]
			want := mediaType
			if want == "" {
				want = oci.MediaTypeWasm
			}
			if layer.MediaType != want {
				t.Errorf("layer media type %q, want %q", layer.MediaType, want)
			}
			if !bytes.Equal(l.blob(t, layer), testModule) {
				t.Errorf("layer is not the module")
			}
		})
	}
}

// TestWritePackageComponentArtifact: a component's layer gets runwasi's
// component media type by default.
func TestWritePackageComponentArtifact(t *testing.T) {
	archive, _ := writePackage(t, PackageOptions{Module: componentHeader, Name: "hello", Artifact: true})
	l := readLayout(t, archive)
	if got := l.manifest.Layers[0].MediaType; got != oci.MediaTypeWasmComponentLayer {
		t.Errorf("layer media type %q, want %q", got, oci.MediaTypeWasmComponentLayer)
	}
	if !oci.IsComponent(componentHeader) || oci.IsComponent(testModule) {
		t.Error("IsComponent does not tell a component from a module")
	}
}

func TestWritePackageDeterministic(t *testing.T) {
	for _, artifact := range []bool{false, true} {
		opts := PackageOptions{Module: testModule, Name: "hello", Artifact: artifact, Env: []string{"A=1"}}
		a, _ := writePackage(t, opts)
		b, _ := writePackage(t, opts)
		if !bytes.Equal(a, b) {
			t.Errorf("artifact=%v: two runs differ", artifact)
		}
		created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		opts.Created = &created
		c, _ := writePackage(t, opts)
		if bytes.Equal(a, c) {
			t.Errorf("artifact=%v: Created changes nothing", artifact)
		}
		if l := readLayout(t, c); l.config.Created == nil || !l.config.Created.Equal(created) {
			t.Errorf("artifact=%v: created %v, want %v", artifact, l.config.Created, created)
		}
	}
}

func TestWritePackagePlatform(t *testing.T) {
	archive, desc := writePackage(t, PackageOptions{
		Module:   emptyModule,
		Name:     "hello",
		Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
	})
	l := readLayout(t, archive)
	if desc.Platform == nil || desc.Platform.Architecture != "arm64" || desc.Platform.Variant != "v8" {
		t.Errorf("descriptor platform %+v", desc.Platform)
	}
	if l.config.Architecture != "arm64" || l.config.Variant != "v8" || l.config.OS != "linux" {
		t.Errorf("config platform %+v", l.config.Platform)
	}
}

func TestWritePackageRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    PackageOptions
		is      error
		message string
	}{
		{"not-wasm", PackageOptions{Module: []byte("#!/bin/sh\necho hi\n"), ModuleName: "hello.sh", Name: "hello"},
			oci.ErrNotWasmModule, "hello.sh: not a WebAssembly module"},
		{"default-module-name", PackageOptions{Module: []byte("nope"), Name: "hello"},
			oci.ErrNotWasmModule, "module: not a WebAssembly module"},
		{"component-other-version", PackageOptions{Module: []byte("\x00asm\x0c\x00\x01\x00"), ModuleName: "c.wasm", Name: "hello"},
			oci.ErrWasmComponent, "c.wasm is a WebAssembly component of binary version 0x0c: unsupported component binary version"},
		{"no-name", PackageOptions{Module: emptyModule}, nil, "no image name"},
		{"bad-name", PackageOptions{Module: emptyModule, Name: "Hello World"}, nil, `image name "Hello World"`},
		{"digest-name", PackageOptions{Module: emptyModule, Name: "hello@sha256:" + strings.Repeat("0", 64)}, nil, "digest"},
		{"media-type-without-artifact", PackageOptions{Module: emptyModule, Name: "hello", LayerMediaType: oci.MediaTypeWasm}, nil, "artifact"},
		{"bad-media-type", PackageOptions{Module: emptyModule, Name: "hello", Artifact: true, LayerMediaType: "text/plain"}, nil, "not a wasm layer type"},
		{"bad-env", PackageOptions{Module: emptyModule, Name: "hello", Env: []string{"FOO"}}, nil, "KEY=VALUE"},
		{"bad-platform", PackageOptions{Module: emptyModule, Name: "hello", Platform: &ocispec.Platform{OS: "linux"}}, nil, "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := WritePackage(context.Background(), &buf, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err, tc.message)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written on error", buf.Len())
			}
		})
	}
}

func TestNormalizeImageName(t *testing.T) {
	for in, want := range map[string]string{
		"hello":                    "docker.io/library/hello:latest",
		"hello:v1":                 "docker.io/library/hello:v1",
		"me/hello":                 "docker.io/me/hello:latest",
		"ghcr.io/me/hello":         "ghcr.io/me/hello:latest",
		"localhost:5000/hello:dev": "localhost:5000/hello:dev",
	} {
		ref, err := NormalizeImageName(in)
		if err != nil {
			t.Errorf("NormalizeImageName(%q): %v", in, err)
			continue
		}
		if ref.String() != want {
			t.Errorf("NormalizeImageName(%q) = %q, want %q", in, ref.String(), want)
		}
	}
}

func TestDefaultImageName(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/hello.wasm":        "docker.io/library/hello:latest",
		"Hello World.wasm":       "docker.io/library/hello-world:latest",
		"dir/my_app.v2.wasm":     "docker.io/library/my_app.v2:latest",
		"module":                 "docker.io/library/module:latest",
		"...wasm":                "docker.io/library/app:latest",
		"x/--We!rd__.-name.wasm": "docker.io/library/we-rd-name:latest",
		"a__b--c_d.e.wasm":       "docker.io/library/a__b--c_d.e:latest",
		"é.wasm":                 "docker.io/library/app:latest",
	} {
		got := DefaultImageName(in)
		if got != want {
			t.Errorf("DefaultImageName(%q) = %q, want %q", in, got, want)
		}
		if _, err := NormalizeImageName(got); err != nil {
			t.Errorf("DefaultImageName(%q) = %q: %v", in, got, err)
		}
	}
}
