package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/systemdtest"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// writeCgroupSpec gives the bundle's spec a cgroup and resources.
func writeCgroupSpec(t *testing.T, bundle, cgroupPath string, res *specs.LinuxResources) {
	t.Helper()
	spec := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
		Linux:   &specs.Linux{CgroupsPath: cgroupPath, Resources: res},
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestServiceCgroup runs a task in a cgroup: the Keep is in it from
// Create, Stats reports its metrics as containerd's cgroup Metrics, Pids
// lists the Keep, Wait answers after the Keep is gone, and Delete removes
// the cgroup.
func TestServiceCgroup(t *testing.T) {
	cgrouptest.Require(t)
	h := newHarness(t)
	ctx := context.Background()
	bundle, _ := newBundle(t, "spin")
	id := keeptest.ID(t)
	path := cgrouptest.Path(t, id)
	limit, pidsLimit := int64(64<<20), int64(32)
	writeCgroupSpec(t, bundle, path, &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
		Pids:   &specs.LinuxPids{Limit: &pidsLimit},
	})
	resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	pid := int(resp.Pid)

	procs, err := os.ReadFile(filepath.Join(cgrouptest.MemoryDir(path), "cgroup.procs"))
	if err != nil {
		t.Fatalf("the task's cgroup: %v", err)
	}
	if strings.TrimSpace(string(procs)) != strconv.Itoa(pid) {
		t.Errorf("cgroup.procs = %q, want the Keep's pid %d alone", procs, pid)
	}
	ps, err := h.svc.Pids(ctx, &taskapi.PidsRequest{ID: id})
	if err != nil || len(ps.Processes) != 1 || int(ps.Processes[0].Pid) != pid {
		t.Errorf("Pids = %v, %v; want the Keep, pid %d", ps, err, pid)
	}

	stats, m := h.startAndStats(ctx, t, id)
	switch m := m.(type) {
	case *v1stats.Metrics:
		if stats.Stats.GetTypeUrl() != "io.containerd.cgroups.v1.Metrics" {
			t.Errorf("type URL %q", stats.Stats.GetTypeUrl())
		}
		if m.GetMemory().GetUsage().GetUsage() == 0 || m.GetPids().GetCurrent() == 0 || m.GetPids().GetLimit() != uint64(pidsLimit) {
			t.Errorf("metrics: memory %v, pids %v", m.GetMemory().GetUsage(), m.GetPids())
		}
		// The container's limit plus what the Keep needs for itself.
		if got := m.GetMemory().GetUsage().GetLimit(); got < uint64(limit+host.MemoryHeadroom) || got > 1<<40 {
			t.Errorf("memory limit %d, want %d plus the Keep's own", got, limit)
		}
	case *v2stats.Metrics:
		if stats.Stats.GetTypeUrl() != "io.containerd.cgroups.v2.Metrics" {
			t.Errorf("type URL %q", stats.Stats.GetTypeUrl())
		}
		if m.GetMemory().GetUsage() == 0 || m.GetPids().GetCurrent() == 0 {
			t.Errorf("metrics: memory %v, pids %v", m.GetMemory(), m.GetPids())
		}
	default:
		t.Fatalf("Stats decodes to a %T", m)
	}

	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGTERM)}); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 143 {
		t.Errorf("exit status after SIGTERM %d, want 143", w.ExitStatus)
	}
	// The Keep is gone; Wait still answers, and metrics are still there
	// until the task is deleted.
	if alive(pid) {
		t.Errorf("the Keep, pid %d, is still alive after Wait", pid)
	}
	if w := h.wait(t, id); w.ExitStatus != 143 {
		t.Errorf("a second Wait: exit status %d, want 143", w.ExitStatus)
	}
	if _, err := h.svc.Stats(ctx, &taskapi.StatsRequest{ID: id}); err != nil {
		t.Errorf("Stats of a stopped task: %v", err)
	}
	_, err = h.svc.Pids(ctx, &taskapi.PidsRequest{ID: id})
	wantCode(t, "Pids of a stopped task", err, codes.FailedPrecondition, "stopped")
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(cgrouptest.MemoryDir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup %s after Delete: %v, want it gone", cgrouptest.MemoryDir(path), err)
	}
}

// TestServiceCgroupSystemd: on a node where systemd cannot be reached, a
// task in a systemd driver's cgroup fails Create with the cgroup path and
// the fix, and starts nothing.
func TestServiceCgroupSystemd(t *testing.T) {
	for _, sock := range []string{"/run/systemd/private", "/run/dbus/system_bus_socket"} {
		if _, err := os.Stat(sock); err == nil {
			t.Skipf("systemd may be reachable here (%s exists): this test is of a node without it", sock)
		}
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	h := newHarness(t)
	bundle, _ := newBundle(t, "exit 0")
	path := "kubepods-besteffort-pod1.slice:cri-containerd:abc"
	writeCgroupSpec(t, bundle, path, nil)
	_, err := h.svc.Create(context.Background(), &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle})
	for _, want := range []string{path, "systemd cannot be reached", "SystemdCgroup = false", "--cgroup-driver=cgroupfs"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Create in a systemd cgroup without systemd: %v, want an error saying %q", err, want)
		}
	}
	noPIDFile(t, bundle)
}

// TestCleanupRemovesCgroup is `shim delete` after a shim died: the Keep
// left in the cgroup named by the bundle's spec is killed and the cgroup
// removed.
func TestCleanupRemovesCgroup(t *testing.T) {
	cgrouptest.Require(t)
	bundle, _ := newBundle(t, "spin")
	id := keeptest.ID(t)
	path := cgrouptest.Path(t, id)
	writeCgroupSpec(t, bundle, path, nil)
	p, err := host.Start(context.Background(), host.StartOptions{
		Executable: os.Args[0],
		Dir:        bundle,
		Config:     keep.Config{ID: id, Workload: workload.Workload{Module: filepath.Join(bundle, "rootfs", "app.wasm"), Args: []string{"app.wasm"}}},
		Cgroup:     path,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
	})
	var out bytes.Buffer
	if err := cleanup(context.Background(), launcher.Flags{ID: id, Namespace: "default", Bundle: bundle}, &out); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("the Keep in the cgroup still runs")
	}
	if _, err := os.Stat(cgrouptest.MemoryDir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup %s after shim delete: %v, want it gone", cgrouptest.MemoryDir(path), err)
	}
}

// TestServiceSystemdDriver runs TestServiceSystemdScope against a real
// systemd (Debian's, PID 1 of namespaces of its own, on the host's cgroup
// v1 hybrid hierarchies).
func TestServiceSystemdDriver(t *testing.T) {
	if _, inside := systemdtest.Inside(); inside {
		t.Skip("this is the test systemd's side")
	}
	systemdtest.Require(t, systemdtest.Hybrid)
	sd := systemdtest.Start(t, systemdtest.Hybrid)
	sd.RunTest(t, "TestServiceSystemdScope")
}

// TestServiceSystemdScope runs a task whose spec has a systemd driver's
// cgroup path, in a test systemd's namespaces (see
// TestServiceSystemdDriver): from Create the Keep is in the scope systemd
// made in the slice, with the container's limits; Stats reads it; Delete
// stops the unit, and its cgroup is gone.
func TestServiceSystemdScope(t *testing.T) {
	if _, inside := systemdtest.Inside(); !inside {
		t.Skip("runs in a test systemd's namespaces: see TestServiceSystemdDriver")
	}
	h := newHarness(t)
	ctx := context.Background()
	bundle, _ := newBundle(t, "spin")
	id := keeptest.ID(t)
	path := "enarx-test.slice:enarx:" + id
	unit := "enarx-" + id + ".scope"
	limit, pidsLimit := int64(64<<20), int64(32)
	writeCgroupSpec(t, bundle, path, &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
		Pids:   &specs.LinuxPids{Limit: &pidsLimit},
	})
	resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	pid := int(resp.Pid)
	show := func(props string) string {
		out, err := exec.Command("systemctl", "show", unit, "-p", props).Output()
		if err != nil {
			t.Fatalf("systemctl show %s: %v", unit, err)
		}
		return strings.TrimSpace(string(out))
	}
	group := strings.TrimPrefix(show("ControlGroup"), "ControlGroup=")
	if !strings.HasSuffix(group, "/enarx.slice/enarx-test.slice/"+unit) {
		t.Fatalf("unit %s has the control group %q", unit, group)
	}
	for _, controller := range []string{"systemd", "memory", "pids", "cpuset", "freezer"} {
		procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, group, "cgroup.procs"))
		if err != nil {
			t.Errorf("the unit's cgroup in %s: %v", controller, err)
			continue
		}
		if strings.TrimSpace(string(procs)) != strconv.Itoa(pid) {
			t.Errorf("%s cgroup.procs = %q, want the Keep's pid %d alone", controller, procs, pid)
		}
	}
	_, m := h.startAndStats(ctx, t, id)
	v1, ok := m.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("Stats decodes to a %T, want cgroup v1 metrics", m)
	}
	if v1.GetMemory().GetUsage().GetUsage() == 0 || v1.GetPids().GetCurrent() == 0 || v1.GetPids().GetLimit() != uint64(pidsLimit) {
		t.Errorf("metrics: memory %v, pids %v", v1.GetMemory().GetUsage(), v1.GetPids())
	}
	// The container's limit plus what the Keep needs for itself, in
	// systemd's view too.
	memLimit := v1.GetMemory().GetUsage().GetLimit()
	if memLimit < uint64(limit+host.MemoryHeadroom) || memLimit > 1<<40 {
		t.Errorf("memory limit %d, want %d plus the Keep's own", memLimit, limit)
	}
	if got := show("MemoryLimit"); got != "MemoryLimit="+strconv.FormatUint(memLimit, 10) {
		t.Errorf("systemd's %s, want %d", got, memLimit)
	}
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGTERM)}); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 143 {
		t.Errorf("exit status after SIGTERM %d, want 143", w.ExitStatus)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := show("ActiveState"); got != "ActiveState=inactive" {
		t.Errorf("unit %s after Delete: %s", unit, got)
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", group)); len(left) > 0 {
		t.Errorf("the unit's cgroup is left in %v", left)
	}
}

// startAndStats starts task id and returns its Stats, raw and decoded.
func (h *harness) startAndStats(ctx context.Context, t *testing.T, id string) (*taskapi.StatsResponse, any) {
	t.Helper()
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	stats, err := h.svc.Stats(ctx, &taskapi.StatsRequest{ID: id})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	m, err := typeurl.UnmarshalAny(stats.Stats)
	if err != nil {
		t.Fatalf("decode Stats (type URL %q): %v", stats.Stats.GetTypeUrl(), err)
	}
	return stats, m
}

// TestServiceCgroupRemovedOnFailure: the Keep's cgroup is made while
// Create mounts and resolves the workload; a Create that fails then (no
// module at the spec's path), or once the Keep starts (a module that does
// not compile), leaves no cgroup behind in any hierarchy.
func TestServiceCgroupRemovedOnFailure(t *testing.T) {
	cgrouptest.Require(t)
	h := newHarness(t)
	ctx := context.Background()
	for _, c := range []struct{ name, cmd string }{{"no module", ""}, {"compile error", "compile-error"}} {
		bundle, _ := newBundle(t, c.cmd)
		if c.cmd == "" {
			if err := os.Remove(filepath.Join(bundle, "rootfs", "app.wasm")); err != nil {
				t.Fatal(err)
			}
		}
		id := keeptest.ID(t) + "-" + strings.ReplaceAll(c.name, " ", "-")
		path := cgrouptest.Path(t, id)
		writeCgroupSpec(t, bundle, path, nil)
		if _, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle}); err == nil {
			t.Fatalf("%s: Create succeeded", c.name)
		}
		// A cgroup made after the failure would show by now.
		time.Sleep(100 * time.Millisecond)
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", path)); err == nil {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", path))
		}
		if len(dirs) != 0 {
			t.Errorf("%s: the cgroup of a failed Create is left: %v", c.name, dirs)
		}
	}
}
