package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	"github.com/enarx/containerd-shim-enarx/keep/host"
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

// spareKeepPid retires the server (as Shutdown does with no task left) and
// returns the PID of the spare Keep it starts.
func spareKeepPid(t *testing.T, h *harness) int {
	t.Helper()
	h.svc.retired(context.Background())
	h.svc.mu.Lock()
	sk := h.svc.spare
	h.svc.mu.Unlock()
	if sk == nil {
		t.Fatal("no spare Keep started (the server's debug log says why)")
	}
	// Started once the bundle is gone, or after spareKeepWait: not taken.
	<-sk.done
	if sk.keep == nil {
		t.Fatal("no spare Keep started (the server's debug log says why)")
	}
	return sk.keep.Pid()
}

// TestAwaitTeardown: a spare Keep starts once containerd has removed the
// last container's bundle, or after spareKeepWait, and not at all once a
// claim has taken it.
func TestAwaitTeardown(t *testing.T) {
	bundle := t.TempDir()
	taken := make(chan struct{})
	gone := make(chan bool, 1)
	go func() { gone <- awaitTeardown(bundle, taken) }()
	select {
	case <-gone:
		t.Fatal("the wait ended while the bundle was there")
	case <-time.After(30 * time.Millisecond):
	}
	if err := os.Remove(bundle); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-gone:
		if !ok {
			t.Error("awaitTeardown: false once the bundle was removed")
		}
	case <-time.After(spareKeepWait / 2):
		t.Error("the wait did not end when the bundle was removed")
	}

	began := time.Now()
	if !awaitTeardown(t.TempDir(), taken) || time.Since(began) < spareKeepWait {
		t.Errorf("awaitTeardown with the bundle there: ended after %v, want true after %v", time.Since(began), spareKeepWait)
	}
	close(taken)
	if awaitTeardown(t.TempDir(), taken) {
		t.Error("awaitTeardown once taken: true")
	}
}

// runAhead creates, starts and deletes container id of bundle, whose Keep
// was started ahead (or adopted) as PID want, and checks its output.
func runAhead(t *testing.T, h *harness, id, bundle string, rootfs []*types.Mount, want int, out string) {
	t.Helper()
	ctx := context.Background()
	stdout := filepath.Join(t.TempDir(), "stdout.log")
	resp, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle, Rootfs: rootfs, Stdout: "file://" + stdout})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if want != 0 && int(resp.Pid) != want {
		t.Errorf("Create's Keep has PID %d, want %d", resp.Pid, want)
	}
	if !host.IsProcessOf(int(resp.Pid), id) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", resp.Pid))
		t.Errorf("the Keep's command line %q does not name container %s", b, id)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, id); w.ExitStatus != 0 {
		t.Fatalf("exit status %d, want 0", w.ExitStatus)
	}
	if b, err := os.ReadFile(stdout); string(b) != out {
		t.Errorf("stdout %q (%v), want %q", b, err, out)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// TestServiceSpareKeep: a server that becomes the spare starts a Keep
// shaped like its last container's, in a cgroup beside that container's,
// naming no container; the next container of that shape adopts it (its
// cgroup renamed to the container's, its command line naming the
// container), and one of another shape discards it and starts its own.
// The server's shutdown stops a spare Keep nobody adopted.
func TestServiceSpareKeep(t *testing.T) {
	h := newHarness(t)
	parent := ""
	if cgrouptest.Available() {
		parent = cgrouptest.Parent(t)
	}
	bundleOf := func(id, out string, namespaces ...specs.LinuxNamespaceType) (string, []*types.Mount) {
		bundle, rootfs := aheadBundle(t, "print "+out)
		editSpec(t, bundle, func(s *specs.Spec) {
			s.Linux = &specs.Linux{}
			if parent != "" {
				s.Linux.CgroupsPath = parent + "/" + id
			}
			for _, ns := range namespaces {
				s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: ns})
			}
		})
		return bundle, rootfs
	}
	shape := []specs.LinuxNamespaceType{specs.MountNamespace, specs.PIDNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.NetworkNamespace}
	// The kernel shows the command line a moment after the exec.
	cmdlineOf := func(pid int) string {
		var cmdline []byte
		for deadline := time.Now().Add(5 * time.Second); len(cmdline) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		}
		return string(cmdline)
	}
	newNetNS := "\x00-" + keep.NewNetNSFlag + "\x00"
	first := keeptest.ID(t)
	bundle, rootfs := bundleOf(first, "first", shape...)
	firstPid := startedAhead(t, h, first, bundle)
	// A server that has served no container does not know the node
	// policy's Steward: its Keep makes the network namespace itself.
	if cmdline := cmdlineOf(firstPid); strings.Contains(cmdline, newNetNS) {
		t.Errorf("a new server's Keep started ahead is made in a network namespace: %q", cmdline)
	}
	runAhead(t, h, first, bundle, rootfs, firstPid, "first\n")

	pid := spareKeepPid(t, h)
	cmdline := cmdlineOf(pid)
	if !strings.Contains(cmdline, "\x00-id\x00"+keep.SpareID+"\x00") {
		t.Errorf("the spare Keep's command line %q does not say %s", cmdline, keep.SpareID)
	}
	// Its last container had no Steward: the spare Keep is made in a new
	// network namespace, as the next container's process would be.
	mine, _ := os.Readlink("/proc/self/ns/net")
	if theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); !strings.Contains(cmdline, newNetNS) || err != nil || theirs == mine {
		t.Errorf("the spare Keep is not made in a network namespace of its own: %q, %s (%v), ours %s", cmdline, theirs, err, mine)
	}
	cgroupOf := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		return string(b)
	}
	if parent != "" && !strings.Contains(cgroupOf(pid), ":memory:"+parent+"/enarx-spare-keep@") {
		t.Errorf("the spare Keep's cgroups:\n%s", cgroupOf(pid))
	}
	second := keeptest.ID(t) + "-2"
	bundle, rootfs = bundleOf(second, "second", shape...)
	if got := startedAhead(t, h, second, bundle); got != pid {
		t.Fatalf("the Keep started for the next container is PID %d, not the spare Keep, %d", got, pid)
	}
	if parent != "" {
		if !strings.Contains(cgroupOf(pid), ":memory:"+parent+"/"+second+"\n") {
			t.Errorf("the adopted Keep's cgroups:\n%s", cgroupOf(pid))
		}
		if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", parent, "enarx-spare-keep@*")); len(left) > 0 {
			t.Errorf("the spare Keep's cgroup is left: %v", left)
		}
	}
	runAhead(t, h, second, bundle, rootfs, pid, "second\n")

	// Another shape: the spare Keep goes, and a Keep is started for it.
	pid = spareKeepPid(t, h)
	third := keeptest.ID(t) + "-3"
	bundle, rootfs = bundleOf(third, "third", specs.MountNamespace)
	if got := startedAhead(t, h, third, bundle); got == pid {
		t.Fatalf("a container of another shape adopted the spare Keep")
	}
	h.svc.discards.Wait()
	if alive(pid) {
		t.Errorf("the spare Keep (PID %d) of another shape runs on", pid)
	}
	runAhead(t, h, third, bundle, rootfs, 0, "third\n")

	// Nobody claims the spare: the server's shutdown stops its Keep.
	pid = spareKeepPid(t, h)
	h.svc.discardKeeps(context.Background())
	if alive(pid) {
		t.Errorf("the spare Keep (PID %d) runs on after the server's shutdown", pid)
	}
	if parent != "" {
		if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", parent, "enarx-spare-keep@*")); len(left) > 0 {
			t.Errorf("the spare Keep's cgroup is left: %v", left)
		}
	}
}

// TestPreloadHintNext: a spare Keep preloads the module of the last Keep
// that found its code in the cache, or, while none has, the last Keep's.
func TestPreloadHintNext(t *testing.T) {
	ready := func(digest, cache string) keep.Ready {
		return keep.Ready{WorkloadDigest: digest, ModuleCache: cache}
	}
	steps := []struct {
		ready keep.Ready
		cache string
		want  preloadHint
	}{
		// None yet: a miss is the best guess (its next start hits).
		{ready("sha256:new", keep.CacheMiss), "/cache/a", preloadHint{digest: "sha256:new", cache: "/cache/a"}},
		{ready("sha256:svc", keep.CacheHit), "/cache/a", preloadHint{digest: "sha256:svc", cache: "/cache/a", hit: true}},
		// A compile into a fresh cache, a Keep without a cache, a cache
		// that could not be used: the service is still preloaded.
		{ready("sha256:svc", keep.CacheMiss), "/cache/cold-1", preloadHint{digest: "sha256:svc", cache: "/cache/a", hit: true}},
		{ready("sha256:job", keep.CacheOff), "", preloadHint{digest: "sha256:svc", cache: "/cache/a", hit: true}},
		{ready("sha256:job", keep.CacheMiss+": entry damaged"), "/cache/a", preloadHint{digest: "sha256:svc", cache: "/cache/a", hit: true}},
		// Another hit takes its place.
		{ready("sha256:other", keep.CacheHit), "/cache/b", preloadHint{digest: "sha256:other", cache: "/cache/b", hit: true}},
	}
	var h preloadHint
	for i, st := range steps {
		h = h.next(st.ready, st.cache)
		if h != st.want {
			t.Fatalf("step %d (%s, %q): hint %+v, want %+v", i, st.ready.ModuleCache, st.cache, h, st.want)
		}
	}
}
