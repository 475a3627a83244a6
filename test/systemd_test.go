package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup/systemdtest"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSystemdCgroupDriver runs a Wasm workload whose spec has a systemd
// driver's cgroup path ("slice:prefix:name", as `ctr run --cgroup` sets it
// and the CRI plugin does under a kubelet with the systemd driver) through
// Debian's containerd, against a real systemd: Debian's, PID 1 of a PID
// and mount namespace of its own on the host's cgroup v1 hybrid
// hierarchies, in which containerd, the shim and the Keep run (systemd
// takes a unit's PIDs in its own PID namespace). The Keep is in the scope
// systemd made, with the container's limits; `ctr tasks metrics` reads it;
// deleting the task stops the unit.
func TestSystemdCgroupDriver(t *testing.T) {
	binDir := requireBinaries(t)
	requireDaemonEnv(t, containerd16)
	systemdtest.Require(t, systemdtest.Hybrid)
	sd := systemdtest.Start(t, systemdtest.Hybrid)
	d := startDaemonInSystemd(t, sd, containerd16, binDir, nil)
	ns := newNamespace(t, d)

	ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
	id := uniqueID("sd")
	path := "enarx-test-pod1.slice:enarx:" + id
	unit := "enarx-" + id + ".scope"
	d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, "--cgroup", path, "--memory-limit", strconv.Itoa(memoryLimit), ref, id, "/app.wasm", "1h")
	waitStatus(t, d, ns, id, "RUNNING")

	show := func(props string) map[string]string {
		out, err := sd.Command("systemctl", "show", unit, "-p", props).Output()
		if err != nil {
			t.Fatalf("systemctl show %s: %v", unit, err)
		}
		m := map[string]string{}
		for _, line := range readLines(string(out)) {
			k, v, _ := strings.Cut(line, "=")
			m[k] = v
		}
		return m
	}
	p := show("ControlGroup,Slice,ActiveState,MemoryLimit")
	group := p["ControlGroup"]
	if p["ActiveState"] != "active" || p["Slice"] != "enarx-test-pod1.slice" || !strings.HasSuffix(group, "/enarx.slice/enarx-test.slice/enarx-test-pod1.slice/"+unit) {
		t.Fatalf("unit %s: %v", unit, p)
	}
	// tasks ps gives the Keep's PID in containerd's PID namespace: systemd's.
	lines := readLines(d.mustCtr(t, ns, "tasks", "ps", id))
	if len(lines) != 2 {
		t.Fatalf("tasks ps %s: %q, want one process", id, lines)
	}
	pid := strings.Fields(lines[1])[0]
	for _, controller := range []string{"systemd", "memory", "pids", "cpu", "cpuset", "freezer", "devices"} {
		procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, group, "cgroup.procs"))
		if err != nil {
			t.Errorf("the unit's cgroup in %s: %v", controller, err)
			continue
		}
		// The files list PIDs as the reader's namespace has them: the host's.
		if got := readLines(string(procs)); len(got) != 1 {
			t.Errorf("%s cgroup.procs of the unit = %q, want the Keep alone", controller, got)
		}
	}
	inside, err := sd.Command("cat", "/proc/"+pid+"/cgroup").Output()
	if err != nil || !strings.Contains(string(inside), ":memory:"+group+"\n") {
		t.Errorf("/proc/%s/cgroup of the Keep in systemd's namespace: %s (%v), want the unit's %s", pid, inside, err, group)
	}
	limit, err := strconv.ParseUint(p["MemoryLimit"], 10, 64)
	if err != nil || limit < memoryLimit || limit > 4*memoryLimit {
		t.Errorf("systemd's MemoryLimit of the unit %q, want a little above %d", p["MemoryLimit"], memoryLimit)
	}

	values := metricValues(d.mustCtr(t, ns, "tasks", "metrics", id))
	if n, err := strconv.ParseUint(values["memory.usage_in_bytes"], 10, 64); err != nil || n == 0 {
		t.Errorf("tasks metrics: memory.usage_in_bytes %q, want > 0; metrics: %v", values["memory.usage_in_bytes"], values)
	}
	if values["memory.limit_in_bytes"] != p["MemoryLimit"] {
		t.Errorf("tasks metrics: memory.limit_in_bytes %q, systemd's MemoryLimit %q", values["memory.limit_in_bytes"], p["MemoryLimit"])
	}
	if n, err := strconv.ParseUint(values["pids.current"], 10, 64); err != nil || n == 0 {
		t.Errorf("tasks metrics: pids.current %q, want > 0", values["pids.current"])
	}

	d.mustCtr(t, ns, "tasks", "kill", id)
	waitStatus(t, d, ns, id, "STOPPED")
	_, _, _ = d.ctr(t, ns, "tasks", "rm", id)
	d.mustCtr(t, ns, "containers", "rm", id)
	if got := show("ActiveState")["ActiveState"]; got != "inactive" {
		t.Errorf("unit %s after the task's deletion: %s", unit, got)
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", group)); len(left) > 0 {
		t.Errorf("the unit's cgroup is left in %v", left)
	}
}

// TestCRISystemdCgroupDriver is a pod as a kubelet with the systemd cgroup
// driver makes it (a cgroup parent that is a slice), through the CRI
// plugin of Debian's containerd run in a real systemd's namespaces: the CRI
// plugin gives the container the path "slice:cri-containerd:ID", the Keep
// runs in systemd's scope cri-containerd-ID.scope in the pod's slice, and
// removing the pod stops the unit.
func TestCRISystemdCgroupDriver(t *testing.T) {
	binDir := requireBinaries(t)
	requireDaemonEnv(t, containerd16)
	systemdtest.Require(t, systemdtest.Hybrid)
	sd := systemdtest.Start(t, systemdtest.Hybrid)
	cni := t.TempDir()
	d := startDaemonInSystemd(t, sd, containerd16, binDir, &criOptions{SandboxImage: criPauseImage, CNIConfDir: filepath.Join(cni, "net.d"), CNIBinDir: filepath.Join(cni, "bin")})
	c, refs := criFixtureOn(t, d, "sleep")

	podCfg := podConfig("systemd", t.TempDir())
	// kubelet's form: kubepods-<qos>-pod<uid>.slice; here under enarx.slice.
	slice := "enarx-test-pod" + randomHex(4) + ".slice"
	podCfg.Linux.CgroupParent = slice
	pod := c.runPod(t, podCfg)
	sleeper := c.runContainer(t, pod, podCfg, "sleep", refs["sleep"])
	if st := c.status(t, sleeper); st.State != cri.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("sleep: %v, want running", st.State)
	}
	unit := "cri-containerd-" + sleeper + ".scope"
	show := func() map[string]string {
		out, err := sd.Command("systemctl", "show", unit, "-p", "ControlGroup,Slice,ActiveState,Delegate").Output()
		if err != nil {
			t.Fatalf("systemctl show %s: %v", unit, err)
		}
		m := map[string]string{}
		for _, line := range readLines(string(out)) {
			k, v, _ := strings.Cut(line, "=")
			m[k] = v
		}
		return m
	}
	p := show()
	if p["ActiveState"] != "active" || p["Slice"] != slice || p["Delegate"] != "yes" || !strings.HasSuffix(p["ControlGroup"], "/"+slice+"/"+unit) {
		t.Fatalf("unit %s: %v", unit, p)
	}
	keeps := keepsOf(d)
	if len(keeps) != 1 {
		t.Fatalf("keeps: %v, want sleep's", keeps)
	}
	procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", p["ControlGroup"], "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(procs)) != strconv.Itoa(keeps[0].PID) {
		t.Errorf("the unit's memory cgroup holds %q (%v), want the Keep %d", procs, err, keeps[0].PID)
	}

	c.removePod(t, pod)
	waitNone(t, "keeps", func() []process { return keepsOf(d) })
	if got := show()["ActiveState"]; got != "inactive" {
		t.Errorf("unit %s after the pod's removal: %s", unit, got)
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", p["ControlGroup"])); len(left) > 0 {
		t.Errorf("the unit's cgroup is left in %v", left)
	}
}

// startDaemonInSystemd starts containerd of kind in the namespaces of sd,
// with our binaries from binDir and the CRI plugin when criOpts is set, and
// stops it at the end of the test (before sd). Its ctr (Daemon.Ctr) runs in
// those namespaces too.
func startDaemonInSystemd(t *testing.T, sd *systemdtest.Systemd, kind daemonKind, binDir string, criOpts *criOptions) *Daemon {
	t.Helper()
	containerd, ctr, err := daemonBinaries(kind)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", daemonDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Name: string(kind) + "-in-systemd", Kind: kind, Binary: containerd, Ctr: ctr, Dir: dir,
		Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		Address: filepath.Join(dir, "c.sock"), TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		Config: filepath.Join(dir, "config.toml"), Log: filepath.Join(dir, "containerd.log"),
		BinDir: binDir, CRI: criOpts, namespaces: map[string]bool{},
	}
	if criOpts != nil {
		for _, dir := range []string{criOpts.CNIConfDir, criOpts.CNIBinDir} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.Path = daemonPath(binDir)
	// ctr runs in systemd's namespaces too: it makes the stdio FIFOs in
	// /run/containerd/fifo, which must be the shim's /run.
	d.Ctr = filepath.Join(dir, "ctr")
	wrapper := fmt.Sprintf("#!/bin/sh\nexec nsenter --target %d --mount --pid -- %s \"$@\"\n", sd.PID, ctr)
	if err := os.WriteFile(d.Ctr, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Config, []byte(d.configTOML()), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := sd.Command(d.Binary, "--config", d.Config)
	cmd.Env = append(append(withoutPath(cleanEnv()), "PATH="+d.Path), systemdtest.InsideEnv+"="+string(sd.Layout))
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, d.Dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// nsenter forks containerd into systemd's PID namespace: stop it by
		// its PID, then nsenter ends with it.
		if pid := childPID(cmd.Process.Pid); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Logf("%s did not stop on SIGTERM: systemd's poweroff ends it", d.Name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", d.Name, d.LogTail(60))
		}
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(daemonReadyTimeout)
	for {
		if _, _, exit, err := d.exec(context.Background(), "", "", 5*time.Second, "version"); err == nil && exit == 0 {
			return d
		}
		select {
		case <-exited:
			t.Fatalf("%s exited during startup\n%s", d.Name, d.LogTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer `ctr version` within %v\n%s", d.Name, daemonReadyTimeout, d.LogTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childPID is the first child of process pid, 0 when it has none.
func childPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
