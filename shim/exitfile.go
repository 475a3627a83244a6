package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// keepExitFile in the bundle records the Keep's exit status and time once
// the shim has reaped it, so that `shim delete` after a shim crash reports
// the status the workload really ended with, not a SIGKILL it never got.
const keepExitFile = "enarx-keep.exit"

// writeExitFile records status and at in bundle ("STATUS UNIXNANO").
func writeExitFile(bundle string, status int, at time.Time) error {
	path := filepath.Join(bundle, keepExitFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", status, at.UnixNano())), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readExitFile returns what writeExitFile recorded in bundle; ok is false
// when nothing (valid) is recorded.
func readExitFile(bundle string) (status int, at time.Time, ok bool) {
	b, err := os.ReadFile(filepath.Join(bundle, keepExitFile))
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

// processGoneTimeout bounds how long `shim delete` waits for a Keep it
// killed to be gone.
const processGoneTimeout = 5 * time.Second

// waitGone waits until pid has exited (it is a zombie or gone): the Keep of
// a dead shim is no child of ours to wait for.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !running(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running reports whether pid exists and has not exited.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
