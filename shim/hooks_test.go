package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"

	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
)

// hookSpec writes a bundle whose spec has every kind of hook, each a shell
// that saves its stdin (the state) as KIND.json: in out on the host for the
// hooks of the runtime's namespaces and createContainer, in /hooks (out,
// bound) for startContainer, which runs in the container. The container
// gets the host's /usr so that it has a shell.
func hookSpec(t *testing.T, cmd string, out string, edit func(*specs.Hooks)) string {
	t.Helper()
	bundle, _ := newBundle(t, cmd)
	rootfs := filepath.Join(bundle, "rootfs")
	for _, l := range []string{"bin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(rootfs, l)); err != nil {
			t.Fatal(err)
		}
	}
	hook := func(dir, kind string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(dir, kind+".json")}}
	}
	hooks := &specs.Hooks{
		Prestart:        []specs.Hook{hook(out, "prestart")},
		CreateRuntime:   []specs.Hook{hook(out, "createRuntime")},
		CreateContainer: []specs.Hook{hook(out, "createContainer")},
		StartContainer:  []specs.Hook{hook("/hooks", "startContainer")},
		Poststart:       []specs.Hook{hook(out, "poststart")},
		Poststop:        []specs.Hook{hook(out, "poststop")},
	}
	if edit != nil {
		edit(hooks)
	}
	spec := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/usr/bin"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
		Hooks:   hooks,
		Mounts: []specs.Mount{
			{Destination: "/usr", Type: "bind", Source: "/usr", Options: []string{"rbind", "ro"}},
			{Destination: "/hooks", Type: "bind", Source: out, Options: []string{"rbind", "rw"}},
		},
		Annotations: map[string]string{"test": "hooks"},
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// readState reads the state a hook saved, or fails the test.
func readState(t *testing.T, out, kind string) specs.State {
	t.Helper()
	var st specs.State
	b, err := os.ReadFile(filepath.Join(out, kind+".json"))
	if err != nil {
		t.Fatalf("the %s hook did not run: %v", kind, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("the %s hook's stdin is not a state: %v: %q", kind, err, b)
	}
	return st
}

// TestServiceHooks: every kind of hook runs at its point, with the state on
// its stdin.
func TestServiceHooks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a confined Keep needs root")
	}
	h := newHarness(t)
	ctx := context.Background()
	out := t.TempDir()
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: hookSpec(t, "exit 3", out, nil)}
	created, err := h.svc.Create(ctx, r)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, kind := range []string{"prestart", "createRuntime", "createContainer"} {
		st := readState(t, out, kind)
		if st.Status != specs.StateCreated || st.ID != r.ID || st.Pid != int(created.Pid) || st.Bundle != r.Bundle || st.Annotations["test"] != "hooks" {
			t.Errorf("%s hook's state %+v, want created, pid %d, bundle %s", kind, st, created.Pid, r.Bundle)
		}
	}
	for _, kind := range []string{"startContainer", "poststart", "poststop"} {
		if _, err := os.Stat(filepath.Join(out, kind+".json")); err == nil {
			t.Errorf("the %s hook ran at Create", kind)
		}
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st := readState(t, out, "poststart"); st.Status != specs.StateRunning || st.Pid != int(created.Pid) {
		t.Errorf("poststart hook's state %+v, want running", st)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 3 {
		t.Errorf("exit %d, want the workload's 3 (the startContainer hook succeeded)", w.ExitStatus)
	}
	if st := readState(t, out, "startContainer"); st.Status != specs.StateCreated || st.Pid != int(created.Pid) {
		t.Errorf("startContainer hook's state %+v, want created with the Keep's pid", st)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if st := readState(t, out, "poststop"); st.Status != specs.StateStopped || st.ID != r.ID {
		t.Errorf("poststop hook's state %+v, want stopped", st)
	}
}

// TestServiceHookFailures: a failing createRuntime or createContainer hook
// fails Create, naming the hook; a failing startContainer hook ends the
// Keep instead of running the workload.
func TestServiceHookFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a confined Keep needs root")
	}
	h := newHarness(t)
	ctx := context.Background()
	fail := []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no network for you >&2; exit 7"}}}
	for _, c := range []struct {
		kind string
		edit func(*specs.Hooks)
	}{
		{"createRuntime", func(hk *specs.Hooks) { hk.CreateRuntime = fail }},
		{"createContainer", func(hk *specs.Hooks) { hk.CreateContainer = fail }},
	} {
		r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t) + "-" + strings.ToLower(c.kind), Bundle: hookSpec(t, "exit 0", t.TempDir(), c.edit)}
		_, err := h.svc.Create(ctx, r)
		wantCode(t, c.kind, err, codes.FailedPrecondition, c.kind+" hook 0 (/bin/sh)", "exit status 7", "no network for you")
		if pids := keeptest.Processes(r.ID); len(pids) != 0 {
			t.Errorf("%s: the Keep of a refused task runs: %v", c.kind, pids)
		}
		// Published while the Keep confined itself, taken back.
		if l := h.containerd.labelsOf(r.ID); len(l) != 0 {
			t.Errorf("%s: a refused task's container keeps the attestation labels %v", c.kind, l)
		}
	}
	out := t.TempDir()
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: hookSpec(t, "exit 0", out, func(hk *specs.Hooks) { hk.StartContainer = fail })}
	if _, err := h.svc.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatal(err)
	}
	done := make(chan *taskapi.WaitResponse, 1)
	go func() { done <- h.wait(t, r.ID) }()
	select {
	case w := <-done:
		if w.ExitStatus != 1 {
			t.Errorf("a failed startContainer hook: exit %d, want 1", w.ExitStatus)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the task never ended")
	}
}
