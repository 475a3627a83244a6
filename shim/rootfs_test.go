package shim

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/moby/sys/mountinfo"

	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// TestServiceRootfsUnmountedAtExit: the root filesystem the shim mounted is
// unmounted once the task's Keep has exited and its exit is published,
// before Delete, which then finds it gone and records the bundle cleaned.
func TestServiceRootfsUnmountedAtExit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	h := newHarness(t)
	// The image's files, bound as containerd's snapshot mounts would be.
	image, _ := newBundle(t, "exit 3")
	bundle := t.TempDir()
	writeSpec(t, bundle, "/app.wasm")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle,
		Rootfs: []*types.Mount{{Type: "bind", Source: filepath.Join(image, "rootfs"), Options: []string{"rbind", "ro"}}}}
	ctx := context.Background()
	if _, err := h.svc.Create(ctx, r); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if mounted, err := mountinfo.Mounted(rootfs); err != nil || !mounted {
		t.Fatalf("rootfs %s after Create: mounted %v (%v), want mounted", rootfs, mounted, err)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 3 {
		t.Fatalf("exit status %d, want 3", w.ExitStatus)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mounted, err := mountinfo.Mounted(rootfs)
		if err == nil && !mounted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rootfs %s still mounted (%v) 10 s after its Keep exited", rootfs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if !(oci.Bundle{Dir: bundle}).IsCleaned() {
		t.Error("Delete after the early unmount did not record the bundle cleaned")
	}
}
