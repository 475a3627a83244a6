//go:build !linux

package wasmtime

func releaseCompilerMemory() {}
