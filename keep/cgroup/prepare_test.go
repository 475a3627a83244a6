package cgroup

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
)

// TestPrepareMove: the caller stays in its own cgroups, and an Add that
// follows PrepareMove does not wait for a grace period of its own.
func TestPrepareMove(t *testing.T) {
	cgrouptest.Require(t)
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !PrepareMove() {
		t.Fatalf("PrepareMove took no lock: none of %v could be written", ownProcsFiles())
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("PrepareMove moved the process:\nbefore %s\nafter %s", before, after)
	}

	cg, err := New(cgrouptest.Path(t, "prepare"), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	PrepareMove()
	began := time.Now()
	if err := cg.Add(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// A grace period is 5 ms or more here; an Add right after a
	// PrepareMove takes a fraction of a ms. The bound leaves room for a
	// loaded machine.
	if took := time.Since(began); took > 4*time.Millisecond {
		t.Logf("Add after PrepareMove took %v (a cold Add waits for an RCU grace period, 5-15 ms)", took)
	}
}
