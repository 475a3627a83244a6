package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/systemdtest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSystemdDriver runs TestSystemdUnit against a real systemd (Debian's,
// started as PID 1 of namespaces of its own), in each cgroup layout this
// host can give it.
func TestSystemdDriver(t *testing.T) {
	if _, inside := systemdtest.Inside(); inside {
		t.Skip("this is the test systemd's side")
	}
	for _, layout := range []systemdtest.Layout{systemdtest.Hybrid, systemdtest.Unified} {
		t.Run(string(layout), func(t *testing.T) {
			systemdtest.Require(t, layout)
			sd := systemdtest.Start(t, layout)
			sd.RunTest(t, "TestSystemdUnit")
		})
	}
}

// TestSystemdUnit is a Keep's cgroup through the systemd driver, in a
// test systemd's namespaces (see TestSystemdDriver): systemd makes the
// scope with the process in it, in the slice nested as its name says;
// systemd and the cgroup's files hold the limits; metrics are read from
// it; Load finds it; Delete kills what is left in it and stops the unit,
// which is gone with its cgroups.
func TestSystemdUnit(t *testing.T) {
	layout, inside := systemdtest.Inside()
	if !inside {
		t.Skip("runs in a test systemd's namespaces: see TestSystemdDriver")
	}
	id := strconv.Itoa(os.Getpid())
	path := "enarx-test-pod1.slice:enarx:" + id
	unit := "enarx-" + id + ".scope"
	var res *specs.LinuxResources
	pidsLimit, shares := int64(16), uint64(512)
	compile, limit := int64(96<<20), int64(48<<20)
	if layout == systemdtest.Hybrid {
		// The unified layout has no controllers on a host that binds them
		// to cgroup v1: no limits there.
		null, zero := int64(1), int64(3)
		res = &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: &limit},
			Pids:   &specs.LinuxPids{Limit: &pidsLimit},
			CPU:    &specs.LinuxCPU{Shares: &shares},
			Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Access: "rwm"},
				{Allow: true, Type: "c", Major: &null, Minor: &zero, Access: "rwm"},
			},
		}
	}
	if want := map[systemdtest.Layout]cgroups.CGMode{systemdtest.Hybrid: cgroups.Hybrid, systemdtest.Unified: cgroups.Unified}[layout]; cgroups.Mode() != want {
		t.Fatalf("cgroup mode %v in the %s layout", cgroups.Mode(), layout)
	}

	cg, err := New(path, res)
	if err != nil {
		t.Fatalf("New(%q): %v", path, err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = cg.Delete()
		}
	})
	if layout == systemdtest.Hybrid {
		// The compile limit, before the unit exists.
		if err := cg.SetMemoryLimit(compile, 0); err != nil {
			t.Fatalf("SetMemoryLimit before Add: %v", err)
		}
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 0 {
		t.Errorf("Pids() before Add = %v, %v", pids, err)
	}

	proc := exec.Command("sh", "-c", "read go; exec sleep 60")
	stdin, err := proc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = proc.Process.Kill()
		_ = proc.Wait()
	}()
	pid := proc.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatalf("Add(%d): %v", pid, err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}

	// systemd made the scope in the nested slice, with the process in it.
	dir := cg.dir
	wantDir := "/enarx.slice/enarx-test.slice/enarx-test-pod1.slice/" + unit
	if !strings.HasSuffix(dir, wantDir) {
		t.Fatalf("the unit's cgroup is %q, want it to end in %q", dir, wantDir)
	}
	show := func(props ...string) map[string]string {
		out, err := exec.Command("systemctl", "show", unit, "-p", strings.Join(props, ",")).Output()
		if err != nil {
			t.Fatalf("systemctl show %s: %v", unit, err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(line, "=")
			m[k] = v
		}
		return m
	}
	if p := show("ControlGroup", "Slice", "ActiveState", "Delegate"); p["ControlGroup"] != dir || p["Slice"] != "enarx-test-pod1.slice" || p["ActiveState"] != "active" || p["Delegate"] != "yes" {
		t.Errorf("unit %s: %v", unit, p)
	}
	self, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		// (The unified layout shows systemd no v1 hierarchy.)
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && layout == systemdtest.Hybrid && f[1] != "" && !strings.Contains(f[1], "hugetlb") && !strings.Contains(f[1], "net_") && !strings.Contains(f[1], "perf_event") && !strings.Contains(f[1], "rdma") && f[2] != dir {
			t.Errorf("the process is in %q of hierarchy %q, want the unit's %q (all of /proc/%d/cgroup: %s)", f[2], f[1], dir, pid, self)
		}
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "" && f[2] != dir {
			t.Errorf("the process is in %q of the unified hierarchy, want %q", f[2], dir)
		}
	}
	if pids, err := cg.Pids(); err != nil || len(pids) != 1 || pids[0] != pid {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, pid)
	}

	if layout == systemdtest.Hybrid {
		read := func(controller, file string) string {
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, dir, file))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		if got := read("memory", "memory.limit_in_bytes"); got != strconv.FormatInt(compile, 10) {
			t.Errorf("memory.limit_in_bytes = %s, want the compile limit %d", got, compile)
		}
		if got := read("pids", "pids.max"); got != "16" {
			t.Errorf("pids.max = %s, want 16", got)
		}
		if got := read("cpu", "cpu.shares"); got != "512" {
			t.Errorf("cpu.shares = %s, want 512", got)
		}
		if p := show("MemoryLimit", "TasksMax", "CPUShares", "DevicePolicy", "DeviceAllow"); p["MemoryLimit"] != strconv.FormatInt(compile, 10) || p["TasksMax"] != "16" || p["CPUShares"] != "512" ||
			p["DevicePolicy"] != "strict" || p["DeviceAllow"] != "/dev/char/1:3 rwm" {
			t.Errorf("systemd keeps %v", p)
		}
		// systemd applies its view of the unit again on a reload: the
		// device rules hold (without DevicePolicy it would allow all).
		if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
			t.Fatalf("systemctl daemon-reload: %v: %s", err, out)
		}
		if got := read("devices", "devices.list"); got != "c 1:3 rwm" {
			t.Errorf("devices.list after a reload = %q, want only c 1:3 rwm", got)
		}
		// The workload's limit replaces the compile limit, in systemd too.
		if err := cg.SetMemoryLimit(limit, 0); err != nil {
			t.Fatalf("SetMemoryLimit: %v", err)
		}
		if got := read("memory", "memory.limit_in_bytes"); got != strconv.FormatInt(limit, 10) {
			t.Errorf("memory.limit_in_bytes = %s, want %d", got, limit)
		}
		if p := show("MemoryLimit"); p["MemoryLimit"] != strconv.FormatInt(limit, 10) {
			t.Errorf("systemd's MemoryLimit = %s, want %d", p["MemoryLimit"], limit)
		}
		if waitMemoryUsage(t, cg) == 0 {
			t.Errorf("MemoryUsage() = 0 with a process in the unit")
		}
	}

	m, err := cg.Metrics()
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	switch m := m.(type) {
	case *v1stats.Metrics:
		if m.GetPids().GetCurrent() != 1 || m.GetPids().GetLimit() != uint64(pidsLimit) || m.GetMemory().GetUsage().GetLimit() != uint64(limit) {
			t.Errorf("v1 metrics: pids %v, memory %v", m.GetPids(), m.GetMemory().GetUsage())
		}
	case *v2stats.Metrics:
		if layout != systemdtest.Unified {
			t.Errorf("v2 metrics in the %s layout", layout)
		}
	default:
		t.Errorf("Metrics() is a %T", m)
	}

	loaded, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	if loaded.dir != dir {
		t.Errorf("Load found %q, want %q", loaded.dir, dir)
	}
	if err := loaded.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true
	if err := proc.Wait(); err == nil {
		t.Errorf("the process in the unit was not killed")
	}
	if out, _ := exec.Command("systemctl", "show", unit, "-p", "LoadState,ActiveState").Output(); !strings.Contains(string(out), "ActiveState=inactive") {
		t.Errorf("unit %s after Delete: %s", unit, out)
	}
	left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", dir))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", dir)); err == nil {
		left = append(left, filepath.Join("/sys/fs/cgroup", dir))
	}
	if len(left) > 0 {
		t.Errorf("the unit's cgroup is left in %v", left)
	}
	if _, err := Load(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load after Delete: %v, want os.ErrNotExist", err)
	}
	if err := cg.Delete(); err != nil {
		t.Errorf("a second Delete: %v", err)
	}
}
