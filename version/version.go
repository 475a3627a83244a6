// Package version holds the build's version, set by the Makefile with
// -ldflags "-X github.com/enarx/containerd-shim-enarx/version.Version=...".
package version

// Version is the release (git describe) of this build.
var Version = "v0.0.0-dev"

// Revision is the git commit of this build.
var Revision = "unknown"
