//go:build linux

package verify

import (
	"io"
	"os"
	"testing"
	"time"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
	tdxverify "github.com/google/go-tdx-guest/verify"
	"github.com/google/logger"
	"golang.org/x/sys/unix"
)

// Nothing the TEE libraries log reaches standard output, which the enarx
// CLI uses for its results: not go-tdx-guest's warning when it falls back to
// its embedded root, not a plain library warning.
func TestLibrariesDoNotLogToStdout(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(int(out.Fd()), 1, 0); err != nil {
		t.Fatal(err)
	}
	func() {
		defer unix.Dup3(saved, 1, 0)
		// nil TrustedRoots: go-tdx-guest logs that it uses its embedded root.
		_ = tdxverify.RawTdxQuote(tdxdata.RawQuote, &tdxverify.Options{Now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
		logger.Warning("a library warning")
		logger.Info("a library message")
	}()
	unix.Close(saved)
	out.Seek(0, io.SeekStart)
	got, _ := io.ReadAll(out)
	if len(got) != 0 {
		t.Errorf("libraries wrote to standard output: %q", got)
	}
}
