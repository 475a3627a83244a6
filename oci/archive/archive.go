// Package archive writes OCI image archives of WebAssembly modules (`enarx
// package`): an ordinary image whose root filesystem holds the module, or a
// wasm artifact image. It is apart from package oci so that the shim and the
// Keep, which only read images, do not link (and initialize) what writing
// one needs, such as the image-name grammar of distribution/reference.
package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	_ "crypto/sha256" // go-digest's sha256 needs it linked in
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/enarx/containerd-shim-enarx/oci"
)

// AnnotationImageName is the index.json annotation that `ctr images import`
// (containerd 1.6 and 2.x) takes as the full name of the imported image.
const AnnotationImageName = "io.containerd.image.name"

// artifactEntrypoint is argv[0] of the program in the artifact form, which has
// no root filesystem to put the module in.
const artifactEntrypoint = "app.wasm"

// PackageOptions describes the image WritePackage builds.
type PackageOptions struct {
	// Module is the WebAssembly core module or component to package.
	Module []byte
	// ModuleName names the module in errors, typically its file path.
	// Default "module".
	ModuleName string

	// Name is the image reference, e.g. "docker.io/library/hello:latest".
	// It is normalized like docker and containerd's CRI do ("hello" becomes
	// "docker.io/library/hello:latest"); a digest is refused. Required.
	Name string

	// Artifact selects the wasm artifact form: an image config with os
	// "wasip1" and architecture "wasm", no root filesystem, and one layer of
	// media type LayerMediaType holding the raw module. Otherwise the image
	// is an ordinary one: a gzip tar layer with the module at
	// oci.DefaultModulePath.
	Artifact bool
	// LayerMediaType is the media type of the module layer of the artifact
	// form: one oci.IsWasmLayer accepts. Default oci.MediaTypeWasm for a core
	// module, oci.MediaTypeWasmComponentLayer for a component. It must be
	// empty when Artifact is false.
	LayerMediaType string

	// Platform is the image's platform, in the image config and on the
	// index.json entry. Default linux/runtime.GOARCH, or wasip1/wasm for the
	// artifact form.
	Platform *ocispec.Platform

	// Args are the default arguments (config.Cmd) after the module.
	Args []string
	// Env are the default environment variables, each "KEY=VALUE".
	Env []string
	// Annotations go on the manifest and on its index.json entry.
	Annotations map[string]string
	// Created is the image's creation time and the time of every file in
	// the archive. Default the Unix epoch, so that the same options always
	// give the same bytes.
	Created *time.Time
}

// NormalizeImageName returns the full reference containerd stores an image
// under for name, as docker and the CRI normalize it: "hello" becomes
// "docker.io/library/hello:latest", "ghcr.io/x/y" becomes "ghcr.io/x/y:latest".
// A reference with a digest is refused: the digest of a new image is not known
// in advance.
func NormalizeImageName(name string) (reference.NamedTagged, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", name, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, fmt.Errorf("image name %q: a digest cannot be chosen, give a tag instead", name)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("image name %q: no tag", name)
	}
	return tagged, nil
}

// DefaultImageName is the image name `enarx package` gives a module file by
// default: "docker.io/library/NAME:latest" where NAME is the file's base name
// without its extension (".wasm"), lower-cased, with characters and runs of
// separators a repository name cannot hold replaced by "-" ("app" if nothing
// is left). It is what the CRI makes of a pod's `image: NAME`.
func DefaultImageName(modulePath string) string {
	base := strings.TrimSuffix(filepath.Base(modulePath), filepath.Ext(modulePath))
	// A repository path component is runs of [a-z0-9] joined by ".", "_",
	// "__" or dashes; make any other run of separators one "-".
	var b strings.Builder
	sep := ""
	for _, r := range strings.ToLower(base) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if b.Len() > 0 && sep != "" {
				switch {
				case sep == "." || sep == "_" || sep == "__" || strings.Trim(sep, "-") == "":
					b.WriteString(sep)
				default:
					b.WriteString("-")
				}
			}
			sep = ""
			b.WriteRune(r)
			continue
		}
		switch r {
		case '.', '_', '-':
			sep += string(r)
		default:
			sep += "!"
		}
	}
	name := b.String()
	if name == "" {
		name = "app"
	}
	return "docker.io/library/" + name + ":latest"
}

// DefaultPlatform is the platform of a package: linux and the architecture
// this program was built for in the default form, so that containerd and the
// kubelet pull and unpack it without platform flags; wasip1/wasm in the
// artifact form.
func DefaultPlatform(artifact bool) ocispec.Platform {
	if artifact {
		return ocispec.Platform{OS: oci.WasmOS, Architecture: oci.WasmArchitecture}
	}
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// WritePackage writes to w an OCI image layout as a tar archive (oci-layout,
// index.json, blobs/sha256/...) holding one image that runs opts.Module, and
// returns the descriptor of its manifest as listed in index.json. The archive
// is what `ctr images import` reads; the same options give the same bytes.
func WritePackage(ctx context.Context, w io.Writer, opts PackageOptions) (ocispec.Descriptor, error) {
	moduleName := opts.ModuleName
	if moduleName == "" {
		moduleName = "module"
	}
	if err := oci.CheckModuleHeader(moduleName, opts.Module); err != nil {
		return ocispec.Descriptor{}, err
	}
	if opts.Name == "" {
		return ocispec.Descriptor{}, errors.New("package: no image name given")
	}
	ref, err := NormalizeImageName(opts.Name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if opts.LayerMediaType != "" {
		if !opts.Artifact {
			return ocispec.Descriptor{}, fmt.Errorf("layer media type %q: only the artifact form has a wasm layer", opts.LayerMediaType)
		}
		if !oci.IsWasmLayer(opts.LayerMediaType) {
			return ocispec.Descriptor{}, fmt.Errorf("layer media type %q: not a wasm layer type (use %s, %s or %s)",
				opts.LayerMediaType, oci.MediaTypeWasm, oci.MediaTypeWasmModule, oci.MediaTypeWasmComponentLayer)
		}
	}
	for _, kv := range opts.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return ocispec.Descriptor{}, fmt.Errorf("environment variable %q: want KEY=VALUE", kv)
		}
	}
	platform := DefaultPlatform(opts.Artifact)
	if opts.Platform != nil {
		platform = *opts.Platform
		if platform.OS == "" || platform.Architecture == "" {
			return ocispec.Descriptor{}, fmt.Errorf("platform %q: want both an os and an architecture", path.Join(platform.OS, platform.Architecture))
		}
	}
	created := time.Unix(0, 0).UTC()
	if opts.Created != nil {
		created = opts.Created.UTC()
	}
	// Whole seconds in the tars, so that they need no PAX records.
	mtime := created.Truncate(time.Second)

	b := blobs{}
	var layer ocispec.Descriptor
	config := ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config: ocispec.ImageConfig{
			Cmd: slices.Clone(opts.Args),
			Env: slices.Clone(opts.Env),
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}
	if opts.Artifact {
		mediaType := opts.LayerMediaType
		if mediaType == "" {
			mediaType = oci.MediaTypeWasm
			if oci.IsComponent(opts.Module) {
				mediaType = oci.MediaTypeWasmComponentLayer
			}
		}
		layer = b.add(mediaType, opts.Module)
		layer.Annotations = map[string]string{ocispec.AnnotationTitle: artifactEntrypoint}
		config.Config.Entrypoint = []string{artifactEntrypoint}
	} else {
		tarLayer, err := moduleLayer(opts.Module, mtime)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: layer: %w", moduleName, err)
		}
		gz, err := gzipBytes(tarLayer)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: layer: %w", moduleName, err)
		}
		layer = b.add(ocispec.MediaTypeImageLayerGzip, gz)
		config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, digest.FromBytes(tarLayer))
		config.Config.Entrypoint = []string{oci.DefaultModulePath}
	}
	configDesc, err := b.addJSON(ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	manifest := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      configDesc,
		Layers:      []ocispec.Descriptor{layer},
		Annotations: maps.Clone(opts.Annotations),
	}
	manifestDesc, err := b.addJSON(ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	manifestDesc.Platform = &platform
	manifestDesc.Annotations = maps.Clone(opts.Annotations)
	if manifestDesc.Annotations == nil {
		manifestDesc.Annotations = map[string]string{}
	}
	manifestDesc.Annotations[AnnotationImageName] = ref.String()
	manifestDesc.Annotations[ocispec.AnnotationRefName] = ref.Tag()

	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	files := map[string][]byte{
		ocispec.ImageIndexFile:  index,
		ocispec.ImageLayoutFile: layout,
	}
	for d, data := range b {
		files[path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())] = data
	}
	if err := writeTar(ctx, w, files, mtime); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing the image archive: %w", err)
	}
	return manifestDesc, nil
}

// blobs are the content of an image by digest.
type blobs map[digest.Digest][]byte

func (b blobs) add(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	b[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (b blobs) addJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encoding %s: %w", mediaType, err)
	}
	return b.add(mediaType, data), nil
}

// moduleLayer is an uncompressed tar holding the module at oci.DefaultModulePath.
func moduleLayer(module []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(oci.DefaultModulePath, "/"),
		Mode:     0o755,
		Size:     int64(len(module)),
		ModTime:  mtime,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(module); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf) // no name, zero mtime: deterministic
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeTar writes files, with their parent directories, in name order.
func writeTar(ctx context.Context, w io.Writer, files map[string][]byte, mtime time.Time) error {
	entries := map[string][]byte{}
	for name, data := range files {
		entries[name] = data
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			entries[dir+"/"] = nil
		}
	}
	tw := tar.NewWriter(w)
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		data := entries[name]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime}
		if strings.HasSuffix(name, "/") {
			hdr = &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
