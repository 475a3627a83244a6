package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"

	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// annotate sets the annotations of the bundle's config.json.
func annotate(t testing.TB, bundle string, annotations map[string]string) {
	t.Helper()
	editSpec(t, bundle, func(s *specs.Spec) { s.Annotations = annotations })
}

// sandboxBundle is a pod sandbox's bundle as containerd's CRI plugin makes
// it: a pause command, no module.
func sandboxBundle(t testing.TB, podID string) string {
	t.Helper()
	bundle := t.TempDir()
	writeSpec(t, bundle, "/pause")
	annotate(t, bundle, map[string]string{annotationContainerType: containerTypeSandbox, annotationSandboxID: podID})
	if os.Geteuid() == 0 {
		// The CRI plugin's: new namespaces (the network one it makes
		// itself and names by path; a new one here).
		editSpec(t, bundle, func(s *specs.Spec) {
			s.Hostname = "pod-host"
			s.Linux = &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.MountNamespace}}}
		})
	}
	return bundle
}

// editSpec changes the bundle's config.json.
func editSpec(t testing.TB, bundle string, edit func(*specs.Spec)) {
	t.Helper()
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	edit(&spec)
	if b, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestServicePodSandbox(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := keeptest.ID(t)
	bundle := sandboxBundle(t, id)
	created, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
	if err != nil {
		t.Fatalf("Create of a pod sandbox: %v", err)
	}
	// Its process is the runtime holding the pod's namespaces, recorded
	// for `shim delete` as a Keep is.
	pid := int(created.Pid)
	if pid == os.Getpid() || !host.IsProcessOf(pid, id) {
		t.Fatalf("sandbox pid %d is not a sandbox process of %s", pid, id)
	}
	if b, err := os.ReadFile(oci.Bundle{Dir: bundle}.KeepPID()); err != nil || string(b) != fmt.Sprint(pid) {
		t.Errorf("PID file: %q, %v; want %d", b, err, pid)
	}
	if os.Geteuid() == 0 {
		for _, ns := range []string{"pid", "ipc", "uts", "net"} {
			mine, _ := os.Readlink("/proc/self/ns/" + ns)
			if theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns)); err != nil || theirs == mine {
				t.Errorf("the sandbox's %s namespace: %q, %v; want one of its own", ns, theirs, err)
			}
		}
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st := h.state(t, id); st.Status != tasktypes.Status_RUNNING {
		t.Errorf("State %v, want RUNNING", st.Status)
	}
	// No Keep, no labels, no attestation, no metrics of its own.
	if pids := keeptest.Processes(id); len(pids) != 1 || pids[0] != pid {
		t.Errorf("processes of the sandbox: %v, want its own only (%d)", pids, pid)
	}
	if _, ok := h.containerd.labels[id]; ok {
		t.Errorf("sandbox labelled: %v", h.containerd.labels[id])
	}
	_, err = h.svc.Stats(ctx, &taskapi.StatsRequest{ID: id})
	wantCode(t, "Stats of a sandbox", err, codes.NotFound, "pod sandbox")

	// Signals pause ignores change nothing; SIGTERM ends it, with status
	// 0 as pause.
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGCHLD)}); err != nil {
		t.Fatalf("Kill SIGCHLD: %v", err)
	}
	if st := h.state(t, id); st.Status != tasktypes.Status_RUNNING {
		t.Errorf("after SIGCHLD: %v, want RUNNING", st.Status)
	}
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGTERM)}); err != nil {
		t.Fatalf("Kill SIGTERM: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 0 {
		t.Errorf("Wait = %d, want 0", w.ExitStatus)
	}
	_, err = h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)})
	wantCode(t, "Kill after exit", err, codes.NotFound)
	del, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if del.ExitStatus != 0 {
		t.Errorf("Delete status %d, want 0", del.ExitStatus)
	}
	events := h.events.wait(t, 4)
	want := []string{TopicTaskCreate, TopicTaskStart, TopicTaskExit, TopicTaskDelete}
	if got := topics(events); !equalStrings(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if e := decode(t, events[2], TopicTaskExit).(*eventstypes.TaskExit); e.ExitStatus != 0 || e.ContainerID != id {
		t.Errorf("TaskExit %v", e)
	}
	if alive(pid) {
		t.Errorf("sandbox process %d outlived Delete", pid)
	}
}

// A pod: its sandbox and two Keeps in one shim. Shutdown ends the shim only
// once the last of them is deleted.
func TestServicePod(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	pod := keeptest.ID(t)
	sandbox := sandboxBundle(t, pod)
	if _, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: pod, Bundle: sandbox}); err != nil {
		t.Fatalf("Create sandbox: %v", err)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: pod}); err != nil {
		t.Fatalf("Start sandbox: %v", err)
	}
	var ids []string
	for i, cmd := range []string{"exit 3", "spin"} {
		bundle, _ := newBundle(t, cmd)
		annotate(t, bundle, map[string]string{annotationContainerType: "container", annotationSandboxID: pod})
		id := pod + "-c" + string(rune('0'+i))
		resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
		if err != nil {
			t.Fatalf("Create %s: %v", id, err)
		}
		if resp.Pid == uint32(os.Getpid()) || !alive(int(resp.Pid)) {
			t.Errorf("container %s pid %d is not a live Keep of its own", id, resp.Pid)
		}
		if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
			t.Fatalf("Start %s: %v", id, err)
		}
		ids = append(ids, id)
	}
	if w := h.wait(t, ids[0]); w.ExitStatus != 3 {
		t.Errorf("%s exit %d, want 3", ids[0], w.ExitStatus)
	}
	shutdown := func() bool {
		t.Helper()
		if _, err := h.svc.Shutdown(ctx, &taskapi.ShutdownRequest{ID: pod}); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		select {
		case <-h.emptied:
			return true
		default:
			return false
		}
	}
	del := func(id string) {
		t.Helper()
		if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
			t.Fatalf("Delete %s: %v", id, err)
		}
	}
	del(ids[0])
	if shutdown() {
		t.Fatal("Shutdown ended the shim with two tasks left")
	}
	// StopPodSandbox: the containers are killed first, then the sandbox.
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: ids[1], Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatalf("Kill %s: %v", ids[1], err)
	}
	if w := h.wait(t, ids[1]); w.ExitStatus != 137 {
		t.Errorf("%s exit %d, want 137", ids[1], w.ExitStatus)
	}
	del(ids[1])
	if shutdown() {
		t.Fatal("Shutdown ended the shim with the sandbox left")
	}
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: pod, Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatalf("Kill sandbox: %v", err)
	}
	if w := h.wait(t, pod); w.ExitStatus != 137 {
		t.Errorf("sandbox exit %d, want 137", w.ExitStatus)
	}
	del(pod)
	if !shutdown() {
		t.Fatal("Shutdown did not end the shim once the pod was gone")
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestServicePodSandboxRefusesHostSysctls: a pod whose sysctls would change
// the host's kernel is refused at create, as runc refuses its pause.
func TestServicePodSandboxRefusesHostSysctls(t *testing.T) {
	h := newHarness(t)
	id := keeptest.ID(t)
	bundle := sandboxBundle(t, id)
	editSpec(t, bundle, func(s *specs.Spec) {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Sysctl = map[string]string{"kernel.panic": "1"}
	})
	_, err := h.svc.Create(context.Background(), &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
	wantCode(t, "Create", err, codes.FailedPrecondition, `"kernel.panic" is not in a namespace`)
	if pids := keeptest.Processes(id); len(pids) != 0 {
		t.Errorf("processes left: %v", pids)
	}
}
