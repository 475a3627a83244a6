// Package quietlog keeps github.com/google/logger, which go-sev-guest and
// go-tdx-guest log through, off standard output.
//
// go-tdx-guest's verify package calls logger.Init with os.Stdout in its
// init function, and only the first call to logger.Init sets the default
// logger. The enarx CLI prints verification results on standard output, so
// a library warning there ("Using embedded Intel certificate ...", or
// go-sev-guest's about a certificate table without a VCEK) would corrupt
// them. This package calls logger.Init first: Go initializes packages in
// import-path order among those whose imports are ready, and this path
// (github.com/enarx/...) sorts before github.com/google/go-tdx-guest/...,
// while its only import besides the standard library is the logger itself.
// Warnings and informational messages are discarded; errors still reach
// standard error (logger.Init always adds it), never standard output.
//
// Import it for its side effect only, as package verify does.
package quietlog

import (
	"io"

	"github.com/google/logger"
)

func init() {
	logger.Init("enarx-verify", false, false, io.Discard)
}
