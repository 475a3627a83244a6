package test

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // go-digest's sha256 needs it registered
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// wasmImportFlags are the `ctr images import` flags for an image made by
// `enarx package`. The default form is an ordinary image of the host
// platform: no flags. The artifact form claims wasip1/wasm, which ctr drops
// unless told to keep every platform (containerd 2.x only: 1.6 cannot unpack
// it at all).
func wasmImportFlags(artifact bool) []string {
	if artifact {
		return []string{"--all-platforms"}
	}
	return nil
}

// importWasmImage packages the module at wasmPath as image ref with
// `enarx package [--artifact] --name REF -o X.tar [pkgArgs...] WASM`, imports
// it into namespace ns of d, checks the ref is there and returns it.
func importWasmImage(t testing.TB, d *Daemon, ns, ref, wasmPath string, artifact bool, pkgArgs ...string) string {
	t.Helper()
	archive := packageImage(t, ref, wasmPath, artifact, pkgArgs...)
	importArchive(t, d, ns, ref, archive, wasmImportFlags(artifact)...)
	return ref
}

// importNativeImage builds a one-layer OCI image holding the static binary
// binPath as /hello (config: linux/GOARCH, Entrypoint ["/hello"]), imports it
// into namespace ns of d and returns ref. It needs no registry.
func importNativeImage(t testing.TB, d *Daemon, ns, ref, binPath string) string {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "native.tar")
	if err := writeNativeImage(archive, ref, binPath); err != nil {
		t.Fatalf("building image %s from %s: %v", ref, binPath, err)
	}
	importArchive(t, d, ns, ref, archive)
	return ref
}

// importArchive runs `ctr images import [flags] archive` and checks that ref
// was imported.
func importArchive(t testing.TB, d *Daemon, ns, ref, archive string, flags ...string) {
	t.Helper()
	args := append(append([]string{"images", "import"}, flags...), archive)
	d.mustCtr(t, ns, args...)
	refs := strings.Fields(d.mustCtr(t, ns, "images", "ls", "-q"))
	if !contains(refs, ref) {
		t.Fatalf("%s: importing %s into %s: %q not among the images %q", d.Name, archive, ns, ref, refs)
	}
}

// writeNativeImage writes an OCI image layout tar at path: one uncompressed
// layer with binPath at /hello, named ref in index.json.
func writeNativeImage(path, ref, binPath string) error {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return err
	}
	return writeRootfsImage(path, ref, []tarFile{{Name: "hello", Mode: 0o755, Data: bin}}, []string{"/hello"})
}

// writeRootfsImage writes an OCI image layout tar at path for the host
// platform: one uncompressed layer holding files, the given entrypoint, named
// ref in index.json. Tests use it for images `enarx package` refuses to make.
func writeRootfsImage(path, ref string, rootfs []tarFile, entrypoint []string) error {
	layer, err := tarFiles(rootfs)
	if err != nil {
		return err
	}
	return writeLayerImage(path, ref, layer, entrypoint)
}

// writeLayerImage is writeRootfsImage of a layer made already (a damaged
// one, say): the image's digests and diff ID are the layer's as it is.
func writeLayerImage(path, ref string, layer []byte, entrypoint []string) error {
	return writeLayerImageConfig(path, ref, layer, ocispec.ImageConfig{Entrypoint: entrypoint})
}

// writeLayerImageConfig is writeLayerImage with an image config of the
// test's (its User, say); PATH is set.
func writeLayerImageConfig(path, ref string, layer []byte, cfg ocispec.ImageConfig) error {
	layerDigest := digest.FromBytes(layer)

	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	created := time.Unix(0, 0).UTC()
	cfg.Env = append(cfg.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	config, err := json.Marshal(ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
	})
	if err != nil {
		return err
	}
	return writeImageLayout(path, ref, platform, config, layerBlob{ocispec.MediaTypeImageLayer, layer})
}

// layerBlob is a layer of an image and its media type.
type layerBlob struct {
	mediaType string
	data      []byte
}

// writeImageLayout writes an OCI image layout tar holding one image (config
// and layers) named ref, as `ctr images import` reads it.
func writeImageLayout(path, ref string, platform ocispec.Platform, config []byte, layers ...layerBlob) error {
	descs := make([]ocispec.Descriptor, 0, len(layers))
	blobs := make([][]byte, 0, len(layers)+2)
	for _, l := range layers {
		descs = append(descs, descriptorOf(l.mediaType, l.data))
		blobs = append(blobs, l.data)
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptorOf(ocispec.MediaTypeImageConfig, config),
		Layers:    descs,
	})
	if err != nil {
		return err
	}
	md := descriptorOf(ocispec.MediaTypeImageManifest, manifest)
	md.Platform = &platform
	md.Annotations = map[string]string{
		"io.containerd.image.name": ref, // the name `ctr images import` gives it
		ocispec.AnnotationRefName:  refTag(ref),
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{md},
	})
	if err != nil {
		return err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	files := []tarFile{
		{Name: ocispec.ImageLayoutFile, Mode: 0o644, Data: layout},
		{Name: "index.json", Mode: 0o644, Data: index},
	}
	for _, blob := range append(blobs, config, manifest) {
		files = append(files, tarFile{Name: "blobs/sha256/" + digest.FromBytes(blob).Encoded(), Mode: 0o644, Data: blob})
	}
	archive, err := tarFiles(files)
	if err != nil {
		return err
	}
	return os.WriteFile(path, archive, 0o644)
}

// refTag is the tag of an image reference ("latest" when there is none).
func refTag(ref string) string {
	name := ref
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return "latest"
}

func descriptorOf(mediaType string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

// tarFile is one regular file for tarFiles, or a symbolic link to Link
// when Link is set.
type tarFile struct {
	Name string
	Mode int64
	Data []byte
	Link string
	// Type, when set, is another entry type: tar.TypeDir, or
	// tar.TypeChar / tar.TypeBlock with Major and Minor.
	Type         byte
	Major, Minor int64
}

// tarFiles returns an uncompressed tar of files (owned by root, mtime 0),
// with entries for their parent directories.
func tarFiles(files []tarFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for dir := filepath.Dir(f.Name); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			parents = append([]string{dir}, parents...)
			dirs[dir] = true
		}
		for _, dir := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
				return nil, err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Unix(0, 0)}
		if f.Link != "" {
			hdr = &tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777, ModTime: time.Unix(0, 0)}
		}
		if f.Type != 0 {
			hdr = &tar.Header{Typeflag: f.Type, Name: f.Name, Mode: f.Mode, Devmajor: f.Major, Devminor: f.Minor, ModTime: time.Unix(0, 0)}
			if f.Type == tar.TypeDir {
				hdr.Name += "/"
				dirs[f.Name] = true
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
