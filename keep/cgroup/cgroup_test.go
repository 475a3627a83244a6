package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCheckCgroupPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want string // part of the error; empty for none
	}{
		{"/default/hello", ""},
		{"/kubepods/burstable/pod1234/abcd", ""},
		{"relative/id", ""},
		{"", "not a clean path"},
		{"/", "not a clean path"},
		{"/default/../../etc", "not a clean path"},
		{"/default//id", "not a clean path"},
	} {
		err := checkCgroupPath(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("checkCgroupPath(%q) = %v, want nil", tc.path, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("checkCgroupPath(%q) = %v, want an error saying %q", tc.path, err, tc.want)
		}
	}
}

func TestWithoutHeldBack(t *testing.T) {
	limit, swap, reservation, pids := int64(64<<20), int64(128<<20), int64(32<<20), int64(10)
	res := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &limit, Swap: &swap, Reservation: &reservation},
		Pids:    &specs.LinuxPids{Limit: &pids},
	}
	got := withoutHeldBack(res)
	if got.Memory.Limit != nil || got.Memory.Swap != nil {
		t.Errorf("memory limit or swap applied at creation: %+v", got.Memory)
	}
	if len(got.Devices) != 1 {
		t.Errorf("devices %+v, want the spec's rules applied at creation", got.Devices)
	}
	if got.Memory.Reservation == nil || *got.Memory.Reservation != reservation || got.Pids != res.Pids {
		t.Errorf("other resources dropped: %+v", got)
	}
	if res.Memory.Limit == nil || res.Devices == nil {
		t.Errorf("the spec's resources were modified")
	}
	if withoutHeldBack(nil) == nil {
		t.Errorf("withoutHeldBack(nil) = nil, want empty resources")
	}

	// Zero is unset, as runc reads it (nerdctl's specs carry zeros).
	zero, zeroU, one := int64(0), uint64(0), uint64(1024)
	got = withoutHeldBack(&specs.LinuxResources{
		CPU:  &specs.LinuxCPU{Shares: &one, Quota: &zero, Period: &zeroU, RealtimePeriod: &zeroU, RealtimeRuntime: &zero},
		Pids: &specs.LinuxPids{Limit: &zero},
	})
	if c := got.CPU; c.Shares == nil || *c.Shares != 1024 || c.Quota != nil || c.Period != nil || c.RealtimePeriod != nil || c.RealtimeRuntime != nil || got.Pids != nil {
		t.Errorf("zero values kept: %+v, pids %+v", c, got.Pids)
	}
}

// TestCgroupZeroValues: a cgroup is made from nerdctl's resources, whose
// realtime CPU values are 0, as runc makes it.
func TestCgroupZeroValues(t *testing.T) {
	cgrouptest.Require(t)
	zero, zeroU := int64(0), uint64(0)
	cg, err := New(cgrouptest.Path(t, "zeros"), &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: &zeroU, Quota: &zero, Period: &zeroU, RealtimePeriod: &zeroU, RealtimeRuntime: &zero},
	})
	if err != nil {
		t.Fatalf("New with zero CPU values: %v", err)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupLifecycle(t *testing.T) {
	cgrouptest.Require(t)
	path := cgrouptest.Path(t, "keep")
	pidsLimit := int64(64)
	limit := int64(64 << 20)
	shares := uint64(512)
	cg, err := New(path, &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &limit},
		Pids:    &specs.LinuxPids{Limit: &pidsLimit},
		CPU:     &specs.LinuxCPU{Shares: &shares},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = cg.Delete()
		}
	})

	// The process uses its memory once in the cgroup: cgroup v1 does not
	// move what it used before.
	sleep := exec.Command("sh", "-c", "read go; exec sleep 60")
	stdin, err := sleep.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, cg, sleep)
	procs, err := os.ReadFile(filepath.Join(cgrouptest.MemoryDir(path), "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(sleep.Process.Pid)+"\n") {
		t.Errorf("cgroup.procs %q does not list pid %d", procs, sleep.Process.Pid)
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 1 || pids[0] != sleep.Process.Pid {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, sleep.Process.Pid)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}

	// The memory limit waits for SetMemoryLimit.
	limitFile := "memory.limit_in_bytes"
	if cgroups.Mode() == cgroups.Unified {
		limitFile = "memory.max"
	}
	readLimit := func() string {
		b, err := os.ReadFile(filepath.Join(cgrouptest.MemoryDir(path), limitFile))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := readLimit(); got == strconv.FormatInt(limit, 10) {
		t.Errorf("%s = %s before SetMemoryLimit", limitFile, got)
	}
	if err := cg.SetMemoryLimit(limit, 0); err != nil {
		t.Fatalf("SetMemoryLimit: %v", err)
	}
	if got := readLimit(); got != strconv.FormatInt(limit, 10) {
		t.Errorf("%s = %s, want %d", limitFile, got, limit)
	}

	if waitMemoryUsage(t, cg) == 0 {
		t.Errorf("MemoryUsage() = 0 with a process that runs in the cgroup")
	}
	m, err := cg.Metrics()
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	switch m := m.(type) {
	case *v1stats.Metrics:
		if m.GetMemory().GetUsage().GetUsage() == 0 || m.GetPids().GetCurrent() != 1 || m.GetPids().GetLimit() != uint64(pidsLimit) {
			t.Errorf("v1 metrics: memory %v, pids %v", m.GetMemory().GetUsage(), m.GetPids())
		}
	case *v2stats.Metrics:
		if m.GetMemory().GetUsage() == 0 || m.GetPids().GetCurrent() != 1 || m.GetPids().GetLimit() != uint64(pidsLimit) {
			t.Errorf("v2 metrics: memory %v, pids %v", m.GetMemory(), m.GetPids())
		}
	default:
		t.Errorf("Metrics() is a %T", m)
	}

	loaded, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// Delete kills what is left in the cgroup.
	if err := loaded.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true
	if err := sleep.Wait(); err == nil {
		t.Errorf("the process in the cgroup was not killed")
	}
	if _, err := os.Stat(cgrouptest.MemoryDir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup directory %s: %v, want it gone", cgrouptest.MemoryDir(path), err)
	}
	if _, err := Load(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a deleted cgroup: %v, want os.ErrNotExist", err)
	}
	if err := cg.Delete(); err != nil {
		t.Errorf("a second Delete: %v", err)
	}
}

// waitMemoryUsage is cg's memory usage once it is not 0, or 0 after 5 s.
func waitMemoryUsage(t *testing.T, cg *Cgroup) uint64 {
	t.Helper()
	var used uint64
	var err error
	for deadline := time.Now().Add(5 * time.Second); used == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if used, err = cg.MemoryUsage(); err != nil {
			t.Fatalf("MemoryUsage: %v", err)
		}
	}
	return used
}

// startIn starts cmd and adds it to cg; it is killed at the test's end.
func startIn(t *testing.T, cg *Cgroup, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

// TestRename renames a cgroup with a process in it to a sibling path: the
// process, its limits and its charge go with it, and a path that exists or
// is not a sibling is refused with the cgroup left as it was.
func TestRename(t *testing.T) {
	cgrouptest.Require(t)
	parent := cgrouptest.Parent(t)
	pidsLimit := int64(33)
	cg, err := New(parent+"/spare@1", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pidsLimit}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	if !cg.Renamable() {
		if err := cg.Rename(parent + "/ctr"); err == nil {
			t.Fatalf("Rename on a %v host succeeded; Renamable said it would not", cgroups.Mode())
		}
		t.Skipf("cgroups of a %v host are not renamed", cgroups.Mode())
	}
	sleep := exec.Command("sleep", "60")
	startIn(t, cg, sleep)
	other, err := New(parent+"/taken", nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = other.Delete() })
	for _, bad := range []string{parent + "/taken", parent + "/a/b", "/elsewhere", parent + "/../x", "relative"} {
		if err := cg.Rename(bad); err == nil {
			t.Errorf("Rename(%q) succeeded", bad)
		}
		if cg.Path() != parent+"/spare@1" {
			t.Fatalf("a refused Rename(%q) left the path %q", bad, cg.Path())
		}
	}
	if err := cg.Rename(parent + "/ctr"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if cg.Path() != parent+"/ctr" {
		t.Errorf("Path() = %q after Rename", cg.Path())
	}
	for _, h := range []string{"memory", "pids", "cpu,cpuacct", "devices", "freezer"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, parent, "spare@1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the old path is still there (%v)", h, err)
		}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(sleep.Process.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ":memory:"+parent+"/ctr\n") || !strings.Contains(string(b), ":pids:"+parent+"/ctr\n") {
		t.Errorf("the process's cgroups after Rename:\n%s", b)
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 1 || pids[0] != sleep.Process.Pid {
		t.Errorf("Pids() = %v, %v after Rename; want [%d]", pids, err, sleep.Process.Pid)
	}
	if limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", parent, "ctr", "pids.max")); err != nil || strings.TrimSpace(string(limit)) != "33" {
		t.Errorf("pids.max after Rename = %q, %v; want 33", limit, err)
	}
	loaded, err := Load(parent + "/ctr")
	if err != nil {
		t.Fatalf("Load after Rename: %v", err)
	}
	if err := loaded.Delete(); err != nil {
		t.Fatalf("Delete after Rename: %v", err)
	}
	if err := sleep.Wait(); err == nil {
		t.Errorf("the process in the renamed cgroup was not killed by its Delete")
	}
}
