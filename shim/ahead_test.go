package shim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// aheadBundle is a bundle whose root filesystem is empty until Create
// mounts the image's (a bind, as containerd's snapshot mounts would be),
// and that mount.
func aheadBundle(t *testing.T, cmd string) (string, []*types.Mount) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a confined Keep and a root filesystem mount need root")
	}
	image, _ := newBundle(t, cmd)
	bundle := t.TempDir()
	writeSpec(t, bundle, "/app.wasm")
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return bundle, []*types.Mount{{Type: "bind", Source: filepath.Join(image, "rootfs"), Options: []string{"rbind", "ro"}}}
}

// startedAhead starts the Keep of id ahead and returns its PID.
func startedAhead(t *testing.T, h *harness, id, bundle string) int {
	t.Helper()
	h.svc.startAhead(context.Background(), id, bundle)
	a := h.svc.ahead
	<-a.done
	if a.keep == nil {
		t.Fatal("no Keep started ahead (the server's debug log says why)")
	}
	return a.keep.Pid()
}

// TestServiceKeepStartedAhead: the Keep the server starts as it starts is
// the one Create configures. It reads its module from the root filesystem
// that Create mounted after it started, and its stdout is the one Create
// opened.
func TestServiceKeepStartedAhead(t *testing.T) {
	h := newHarness(t)
	bundle, rootfs := aheadBundle(t, "print started ahead")
	id := keeptest.ID(t)
	pid := startedAhead(t, h, id, bundle)
	stdout := filepath.Join(t.TempDir(), "stdout.log")
	ctx := context.Background()
	resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Rootfs: rootfs, Stdout: "file://" + stdout})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if int(resp.Pid) != pid {
		t.Errorf("Create's Keep has PID %d, want %d, the Keep started ahead", resp.Pid, pid)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 0 {
		t.Fatalf("exit status %d, want 0", w.ExitStatus)
	}
	if b, err := os.ReadFile(stdout); string(b) != "started ahead\n" {
		t.Errorf("stdout %q (%v), want %q", b, err, "started ahead\n")
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestServiceKeepStartedAheadDiscarded: a Keep started ahead for another
// container is stopped when Create comes, which starts its own; one no
// Create takes is stopped when the server shuts down.
func TestServiceKeepStartedAheadDiscarded(t *testing.T) {
	h := newHarness(t)
	bundle, rootfs := aheadBundle(t, "exit 4")
	id := keeptest.ID(t)
	pid := startedAhead(t, h, id+"-other", bundle)
	ctx := context.Background()
	resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Rootfs: rootfs})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if int(resp.Pid) == pid {
		t.Errorf("the Keep started ahead for another ID (PID %d) serves Create", pid)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("the Keep started ahead for another ID (PID %d) still runs", pid)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 4 {
		t.Fatalf("exit status %d, want 4", w.ExitStatus)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	pid = startedAhead(t, h, id, bundle)
	h.svc.discardAhead(ctx)
	if alive(pid) {
		t.Errorf("the Keep started ahead (PID %d) runs on after the server discarded it", pid)
	}
}

// TestServiceNoKeepStartedAheadForAPod: the server of a pod is started
// with the pod's ID, not the container's: a bundle that names a pod
// starts no Keep ahead, and its Create starts its own.
func TestServiceNoKeepStartedAheadForAPod(t *testing.T) {
	h := newHarness(t)
	bundle, rootfs := aheadBundle(t, "exit 0")
	editSpec(t, bundle, func(s *specs.Spec) { s.Annotations = map[string]string{launcher.AnnotationSandboxID: "pod-1"} })
	h.svc.startAhead(context.Background(), "pod-1", bundle)
	<-h.svc.ahead.done
	if h.svc.ahead.keep != nil {
		t.Fatalf("a Keep (PID %d) was started ahead for a pod's container", h.svc.ahead.keep.Pid())
	}
	id := keeptest.ID(t)
	if _, err := h.svc.Create(context.Background(), &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Rootfs: rootfs}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := h.svc.Start(context.Background(), &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 0 {
		t.Fatalf("exit status %d, want 0", w.ExitStatus)
	}
}
