package oci

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ModuleHeaderSize is the number of leading bytes of a file that
// CheckModuleHeader needs: the 4-byte magic "\0asm" and the 4-byte version.
const ModuleHeaderSize = 8

// ErrNotWasmModule is wrapped by the errors of CheckModuleHeader for input that
// is not a WebAssembly binary at all.
var ErrNotWasmModule = errors.New("not a WebAssembly module")

// ErrWasmComponent is wrapped by the errors of CheckModuleHeader for a
// WebAssembly component of a binary version other than ComponentVersion (a
// pre-release of the component model, or a later one).
var ErrWasmComponent = errors.New("unsupported component binary version")

// ComponentVersion is the binary version of the WebAssembly components the
// Keep runs (bytes 4..6 of the binary; the layer, bytes 6..8, is 1).
const ComponentVersion = 0x0d

// wasmMagic starts every WebAssembly binary, module or component.
var wasmMagic = []byte("\x00asm")

// How to build something that CheckModuleHeader accepts; appended to its
// errors so that a user of `ctr run` or `enarx package` knows what to do.
const buildHint = "build a WASI preview 1 core module, e.g. `GOOS=wasip1 GOARCH=wasm go build` " +
	"or `cargo build --target wasm32-wasip1`, or a wasi:cli/command component, e.g. `cargo build --target wasm32-wasip2`"

// CheckModuleHeader checks that header, the first bytes of the file called
// name (at least ModuleHeaderSize of them when the file is that long), starts
// a binary the Keep runs: a WebAssembly core module of version 1, or a
// component of ComponentVersion (IsComponent tells them apart).
//
// The error names the file, says what it is instead and how to fix it. It
// wraps ErrWasmComponent for a component of another version and
// ErrNotWasmModule for anything else.
func CheckModuleHeader(name string, header []byte) error {
	if len(header) < len(wasmMagic) || !bytes.Equal(header[:len(wasmMagic)], wasmMagic) {
		return fmt.Errorf("%s: %w: it does not start with the WebAssembly magic \"\\0asm\" (it starts with %s); %s",
			name, ErrNotWasmModule, describePrefix(header), buildHint)
	}
	if len(header) < ModuleHeaderSize {
		return fmt.Errorf("%s: %w: the file ends inside the 8-byte WebAssembly header (%d bytes); %s",
			name, ErrNotWasmModule, len(header), buildHint)
	}
	version := binary.LittleEndian.Uint16(header[4:6])
	layer := binary.LittleEndian.Uint16(header[6:8])
	switch {
	case layer == 0 && version == 1:
		return nil
	case layer == 1 && version == ComponentVersion:
		return nil
	case layer == 1:
		return fmt.Errorf("%s is a WebAssembly component of binary version 0x%02x: %w, only version 0x%02x (the component model as wasm-tools 1.200 and later, cargo's wasm32-wasip2 and jco write it) runs; rebuild it with a current toolchain",
			name, version, ErrWasmComponent, ComponentVersion)
	default:
		return fmt.Errorf("%s: %w: unsupported WebAssembly binary version %d (layer %d), only core modules of version 1 run; %s",
			name, ErrNotWasmModule, version, layer, buildHint)
	}
}

// IsComponent reports whether header, the first bytes of a binary that
// CheckModuleHeader accepted, starts a component rather than a core module.
func IsComponent(header []byte) bool {
	return len(header) >= ModuleHeaderSize && binary.LittleEndian.Uint16(header[6:8]) == 1
}

// describePrefix shows the first bytes of a file for an error message.
func describePrefix(header []byte) string {
	if len(header) == 0 {
		return "nothing: the file is empty"
	}
	n := min(len(header), len(wasmMagic))
	return fmt.Sprintf("% x", header[:n])
}
