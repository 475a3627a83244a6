// Package layout holds tests of the repository's layout rather than of any
// code: which package may link what (the engine seam and the label keys
// stay leaves, the OCI and engine packages stay free of the TEE libraries,
// the CLI stays free of the shim), and what may be tracked (no build
// outputs or other large files: those belong in bin/, see .gitignore).
//
// The tests run in go test ./..., so in make test. They need the go tool
// and, for the tracked files, git.
package layout
