package test

// Host-side cleanup: processes, mounts and the directories earlier runs left.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// removeTree unmounts every mount under dir (deepest first) and removes dir.
func removeTree(dir string) error {
	var errs []error
	for _, mp := range mountsUnder(dir) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount decodes the octal escapes (\040) of /proc/self/mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// reapShim kills a leftover shim and everything below it (its containers or
// Keeps) and removes its host-side traces.
func reapShim(p process) {
	killTree(p.PID)
	f := strings.Fields(p.Cmdline)
	flag := func(name string) string {
		for i := 0; i+1 < len(f); i++ {
			if f[i] == name {
				return f[i+1]
			}
		}
		return ""
	}
	ns, id, address := flag("-namespace"), flag("-id"), flag("-address")
	if ns == "" || id == "" || address == "" || strings.Contains(ns+id, "/") {
		return
	}
	_ = os.RemoveAll(filepath.Join("/run/containerd/runc", ns, id))
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns, id))
	for _, dir := range cgroups {
		_ = os.Remove(dir)
	}
	(&Daemon{Address: address}).removeHostTraces(ns, []string{id})
}

// killTree sends SIGKILL to pid and all its descendants, and waits briefly
// for them to go.
func killTree(pid int) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPID(cpid); ppid > 0 {
			children[ppid] = append(children[ppid], cpid)
		}
	}
	var all []int
	var walk func(int)
	walk = func(p int) {
		all = append(all, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	for _, p := range all {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range all {
		for time.Now().Before(deadline) && processAlive(p) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// parentPID reads the parent of pid from /proc (0 if unknown).
func parentPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			return ppid
		}
	}
	return 0
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// process is one entry of leftoverProcesses.
type process struct {
	PID     int
	Cmdline string
}

func (p process) String() string { return fmt.Sprintf("%d: %s", p.PID, p.Cmdline) }

// leftoverProcesses lists the processes (other than this one) whose command
// line contains marker, e.g. a container id, a namespace or a daemon address.
func leftoverProcesses(t testing.TB, marker string) []process {
	t.Helper()
	if marker == "" {
		t.Fatal("leftoverProcesses: empty marker")
	}
	return findProcesses(marker)
}

// assertNoLeftovers fails the test if processes whose command line contains
// marker are still running after a short grace period (shims exit shortly
// after `ctr` returns).
func assertNoLeftovers(t testing.TB, marker string) {
	t.Helper()
	deadline := time.Now().Add(leftoverGracePeriod)
	for {
		left := leftoverProcesses(t, marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, p := range left {
				lines = append(lines, p.String())
			}
			t.Errorf("processes matching %q still running after %v:\n%s", marker, leftoverGracePeriod, strings.Join(lines, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findProcesses scans /proc/*/cmdline for marker.
func findProcesses(marker string) []process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		cmdline := strings.TrimSpace(string(bytes.ReplaceAll(data, []byte{0}, []byte{' '})))
		if strings.Contains(cmdline, marker) {
			out = append(out, process{PID: pid, Cmdline: cmdline})
		}
	}
	return out
}

// writeOwner records this test process in dir, for sweepStaleDirs.
func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(processIdentity(os.Getpid())), 0o644)
}

// processIdentity is "pid starttime", which survives pid reuse.
func processIdentity(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command (field 2) may contain spaces; fields after ")" are plain.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 19 {
			return fmt.Sprintf("%d %s", pid, f[19]) // field 22: starttime
		}
	}
	return ""
}

// sweepStaleDirs removes the /tmp directories of earlier runs whose test
// process is gone, after killing the processes that still refer to them
// (shims and their containers, a daemon that outlived its test): what a run
// killed by `go test -timeout` leaves.
func sweepStaleDirs() {
	for _, prefix := range []string{workDirPrefix, daemonDirPrefix} {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
		if os.TempDir() != "/tmp" {
			more, _ := filepath.Glob(filepath.Join("/tmp", prefix+"*"))
			dirs = append(dirs, more...)
		}
		for _, dir := range dirs {
			owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
			if err != nil {
				continue // not ours, or still being set up
			}
			f := strings.Fields(string(owner))
			if len(f) == 2 {
				if pid, err := strconv.Atoi(f[0]); err == nil && processIdentity(pid) == string(owner) {
					continue // its test is still running
				}
			}
			// Its shims (and a daemon that outlived its test) name the directory.
			for _, p := range findProcesses(dir) {
				fmt.Fprintf(os.Stderr, "e2e harness: killing leftover of an earlier run: %s\n", p)
				if strings.Contains(p.Cmdline, "-address") {
					reapShim(p)
				} else {
					killTree(p.PID)
				}
			}
			if err := removeTree(dir); err != nil {
				fmt.Fprintf(os.Stderr, "e2e harness: removing stale %s: %v\n", dir, err)
			}
		}
	}
}
