package shim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/enarx/containerd-shim-enarx/oci"
)

// The exit record of a Keep: its exit status and time, written once the
// shim has reaped it (oci.Bundle.KeepExit), so that `shim delete` after a
// shim crash reports the status the workload really ended with, not a
// SIGKILL it never got.

// writeExitRecord records status and at in bundle ("STATUS UNIXNANO").
func writeExitRecord(bundle oci.Bundle, status int, at time.Time) error {
	path := bundle.KeepExit()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", status, at.UnixNano())), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readExitRecord returns what writeExitRecord recorded in bundle; ok is
// false when nothing (valid) is recorded.
func readExitRecord(bundle oci.Bundle) (status int, at time.Time, ok bool) {
	b, err := os.ReadFile(bundle.KeepExit())
	if err != nil {
		return 0, time.Time{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, time.Time{}, false
	}
	status, err1 := strconv.Atoi(f[0])
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || status < 0 {
		return 0, time.Time{}, false
	}
	return status, time.Unix(0, ns), true
}
