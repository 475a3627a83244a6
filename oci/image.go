package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	_ "crypto/sha256" // go-digest verifies sha256 digests

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNoImage is returned by an ImageStore when the container has no image.
var ErrNoImage = errors.New("container has no image")

// maxMetadataSize bounds an index, manifest or image config read into memory.
const maxMetadataSize = 4 << 20

// ImageStore is the part of containerd's stores that finding a module in an
// image needs.
type ImageStore interface {
	// Target returns the descriptor the container's image points at (an
	// index or a manifest), or an error wrapping ErrNoImage.
	Target(ctx context.Context) (ocispec.Descriptor, error)
	// Open returns the content of a blob.
	Open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// extractArtifactModule writes the module of a wasm artifact image to dst. It
// returns false when the image is not a wasm artifact image.
func extractArtifactModule(ctx context.Context, images ImageStore, dst string) (bool, error) {
	target, err := images.Target(ctx)
	if errors.Is(err, ErrNoImage) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("oci: look up the container's image: %w", err)
	}
	manifest, ok, err := wasmManifest(ctx, images, target)
	if err != nil || !ok {
		return false, err
	}
	for _, layer := range manifest.Layers {
		if !IsWasmLayer(layer.MediaType) {
			continue
		}
		if err := copyBlob(ctx, images, layer, dst); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("oci: wasm image %s has no layer of a wasm media type (%s, %s or %s)",
		target.Digest, MediaTypeWasm, MediaTypeWasmModule, MediaTypeWasmComponentLayer)
}

// wasmManifest finds the manifest of a wasm image: target itself, or the
// entry of an index for the wasm architecture. It returns false for images
// of any other architecture.
func wasmManifest(ctx context.Context, images ImageStore, target ocispec.Descriptor) (ocispec.Manifest, bool, error) {
	var manifest ocispec.Manifest
	switch target.MediaType {
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		var index ocispec.Index
		if err := readJSON(ctx, images, target, &index); err != nil {
			return manifest, false, err
		}
		for _, m := range index.Manifests {
			if m.Platform != nil && m.Platform.Architecture == WasmArchitecture {
				return wasmManifest(ctx, images, m)
			}
		}
		return manifest, false, nil
	case ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
	default:
		return manifest, false, fmt.Errorf("oci: image target %s has unsupported media type %q", target.Digest, target.MediaType)
	}
	if err := readJSON(ctx, images, target, &manifest); err != nil {
		return manifest, false, err
	}
	var config ocispec.Image
	if err := readJSON(ctx, images, manifest.Config, &config); err != nil {
		return manifest, false, err
	}
	return manifest, config.Architecture == WasmArchitecture, nil
}

func readJSON(ctx context.Context, images ImageStore, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxMetadataSize {
		return fmt.Errorf("oci: blob %s is %d bytes, more than the %d allowed for image metadata", desc.Digest, desc.Size, maxMetadataSize)
	}
	verifier, err := newVerifier(desc)
	if err != nil {
		return err
	}
	rc, err := images.Open(ctx, desc)
	if err != nil {
		return fmt.Errorf("oci: read blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(io.TeeReader(rc, verifier), maxMetadataSize+1))
	if err != nil {
		return fmt.Errorf("oci: read blob %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size || !verifier.Verified() {
		return fmt.Errorf("oci: blob %s (%s) does not match its digest or size: the image is corrupt, pull or import it again", desc.Digest, desc.MediaType)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("oci: blob %s (%s) is not valid JSON: %w", desc.Digest, desc.MediaType, err)
	}
	return nil
}

func newVerifier(desc ocispec.Descriptor) (digest.Verifier, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("oci: descriptor digest %q: %w: the image is damaged, pull or import it again", desc.Digest, err)
	}
	return desc.Digest.Verifier(), nil
}

// copyBlob writes the wasm layer desc to dst, verifying digest, size and
// module header.
func copyBlob(ctx context.Context, images ImageStore, desc ocispec.Descriptor, dst string) (err error) {
	verifier, err := newVerifier(desc)
	if err != nil {
		return err
	}
	rc, err := images.Open(ctx, desc)
	if err != nil {
		return fmt.Errorf("oci: read wasm layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("oci: write module: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("oci: write module %s: %w", dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	// No more than the descriptor says, and one byte to see a longer blob.
	n, err := io.Copy(io.MultiWriter(f, verifier), io.LimitReader(rc, max(desc.Size, 0)+1))
	if err != nil {
		return fmt.Errorf("oci: copy wasm layer %s to %s: %w", desc.Digest, dst, err)
	}
	if n != desc.Size || !verifier.Verified() {
		return fmt.Errorf("oci: wasm layer %s does not match its digest or size: the image is corrupt, pull or import it again", desc.Digest)
	}
	header := make([]byte, ModuleHeaderSize)
	hn, _ := f.ReadAt(header, 0)
	if err := CheckModuleHeader(fmt.Sprintf("wasm layer %s", desc.Digest), header[:hn]); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	return nil
}
