package test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep"
)

// spareOf is the spare shim server of d and ns, or none (PID 0): its
// command line names its socket and ends in "spare".
func spareOf(d *Daemon, ns string) process {
	for _, p := range findProcesses("-socket " + shimSocket(d, ns, "@spare") + " spare") {
		if strings.Contains(p.Cmdline, serverBinary) {
			return p
		}
	}
	return process{}
}

// waitSpare waits for the spare of d and ns.
func waitSpare(t *testing.T, d *Daemon, ns string) process {
	t.Helper()
	for deadline := time.Now().Add(leftoverGracePeriod); ; time.Sleep(20 * time.Millisecond) {
		if p := spareOf(d, ns); p.PID != 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no spare shim server in %s after %v; servers: %v", d.Name, ns, leftoverGracePeriod, shimsOf(d, ""))
		}
	}
}

// spareKeepOf waits for the spare Keep of spare, a spare shim server: its
// child, whose command line names no container but keep.SpareID.
func spareKeepOf(t *testing.T, spare process) process {
	t.Helper()
	for deadline := time.Now().Add(leftoverGracePeriod); ; time.Sleep(20 * time.Millisecond) {
		for _, p := range findProcesses(" keep -id " + keep.SpareID + " ") {
			if strings.Contains(p.Cmdline, keepBinary) && parentPID(p.PID) == spare.PID {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spare Keep of the spare shim server %v after %v", spare, leftoverGracePeriod)
		}
	}
}

// stopSpare ends the spare shim server of d and ns, if there is one, as a
// SIGTERM ends a server with nothing to serve, and waits until it is gone:
// it stops its spare Keep and removes that Keep's cgroup (beside the last
// container's, under the client's cgroup parent) before it exits, so that
// the checks of what containers left behind that follow see only that.
func stopSpare(t testing.TB, d *Daemon, ns string) {
	t.Helper()
	if p := spareOf(d, ns); p.PID != 0 {
		_ = syscall.Kill(p.PID, syscall.SIGTERM)
		waitGone(t, "the spare shim server", p.PID)
	}
}

// TestSpareServer: the server of a deleted container stays as the spare of
// its daemon and namespace, naming no container; the next container there
// is served by it, as by a server of its own, and it is the spare again
// once that one is deleted.
func TestSpareServer(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		first := uniqueID("first")
		if stdout, stderr, exit := runWasm(t, d, ns, nil, ref, first); exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
			t.Fatalf("first run: exit %d, stdout %q, stderr %s", exit, stdout, stderr)
		}
		spare := waitSpare(t, d, ns)
		if strings.Contains(spare.Cmdline, "-id") || strings.Contains(spare.Cmdline, first) {
			t.Errorf("the spare's command line names a container: %s", spare.Cmdline)
		}
		assertNothingLeft(t, d, ns, first, first)
		// It started a Keep shaped like the first container's.
		spareKeep := spareKeepOf(t, spare)

		second := uniqueID("second")
		d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, second)
		waitStatus(t, d, ns, second, "STOPPED")
		if pid := shimPID(t, d, second); pid != spare.PID {
			t.Errorf("%s is served by pid %d, not by the spare (pid %d)", second, pid, spare.PID)
		}
		if pid := taskPID(t, d, ns, second); pid != spareKeep.PID {
			t.Errorf("%s's Keep is pid %d, not the spare Keep (pid %d)", second, pid, spareKeep.PID)
		}
		if p := spareOf(d, ns); p.PID != 0 {
			t.Errorf("a spare while the only server serves %s: %v", second, p)
		}
		if labels := containerLabels(t, d, ns, second); labels[enarxdev.LabelTEE] != "none" || !strings.HasPrefix(labels[enarxdev.LabelWorkloadDigest], "sha256:") {
			t.Errorf("%s, served by the spare, has labels %v: want tee=none and its workload's digest", second, labels)
		}
		if got := deleteTask(t, d, ns, second); got != 0 {
			t.Errorf("ctr tasks delete %s: exit status %d, want 0", second, got)
		}
		d.mustCtr(t, ns, "containers", "rm", second)
		if again := waitSpare(t, d, ns); again.PID != spare.PID {
			t.Errorf("the spare after %s is pid %d, want the server that served it (%d)", second, again.PID, spare.PID)
		}
		assertNothingLeft(t, d, ns, second, second)
	})
}
