// Package oci turns what containerd hands a runtime — an OCI bundle and the
// container's image — into a Keep configuration, and builds images that carry
// WebAssembly modules.
package oci

// Media types of image layers that carry a WebAssembly binary directly (not in
// a tar). An image whose config says architecture "wasm" may carry its module
// in such a layer.
const (
	// MediaTypeWasmComponentLayer is the bytecodealliance layer type runwasi uses.
	MediaTypeWasmComponentLayer = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"
	// MediaTypeWasm is the plain wasm type of the CNCF wasm OCI artifact layout.
	MediaTypeWasm = "application/wasm"
	// MediaTypeWasmModule is the W3C core module type.
	MediaTypeWasmModule = "application/vnd.w3c.wasm.module.v1+wasm"
)

// IsWasmLayer reports whether a layer media type carries a raw wasm binary.
func IsWasmLayer(mediaType string) bool {
	switch mediaType {
	case MediaTypeWasmComponentLayer, MediaTypeWasm, MediaTypeWasmModule:
		return true
	}
	return false
}

// Image config values of a wasm image (the artifact form).
const (
	WasmArchitecture = "wasm"
	WasmOS           = "wasip1"
)

// DefaultModulePath is where `enarx package` puts the module in the image's
// root filesystem (the default, tar-layer form).
const DefaultModulePath = "/app.wasm"
