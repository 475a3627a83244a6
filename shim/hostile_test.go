package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// TestHostileInputCreate creates tasks from hostile bundles and runtime
// options next to a running task: each Create fails in time with
// InvalidArgument and an error that names the input and the fix, leaves no
// task, Keep or file behind, and the running task is untouched.
func TestHostileInputCreate(t *testing.T) {
	quiet(t)
	h := newHarness(t)
	ctx := context.Background()
	running, _ := h.create(t, "spin")
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: running.ID}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "policy.toml")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	options := func(ro *runtimeoptions.Options) func(*taskapi.CreateTaskRequest) {
		return func(r *taskapi.CreateTaskRequest) { r.Options = containerdOptions(t, ro) }
	}
	for _, c := range []struct {
		name string
		// bundle edits a bundle whose rootfs holds /app.wasm.
		bundle  func(t *testing.T, bundle string)
		request func(r *taskapi.CreateTaskRequest)
		want    []string
	}{
		{name: "garbage config.json", bundle: writeFile("config.json", "\x00\x01 not JSON"),
			want: []string{"config.json", "is not a valid runtime spec"}},
		{name: "truncated config.json", bundle: writeFile("config.json", `{"ociVersion":"1.0.2","process":{"args":["/app.wasm"],"cwd":"/"},"root":{"pa`),
			want: []string{"config.json", "is not a valid runtime spec", "unexpected end of JSON input"}},
		{name: "config.json without process", bundle: writeFile("config.json", `{"ociVersion":"1.0.2","root":{"path":"rootfs"}}`),
			want: []string{"config.json has no process", "process.args"}},
		{name: "no config.json", bundle: func(t *testing.T, b string) { os.Remove(filepath.Join(b, "config.json")) },
			want: []string{"config.json", "no such file or directory"}},
		{name: "config.json a FIFO", bundle: func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, "config.json"))
			if err := unix.Mkfifo(filepath.Join(b, "config.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"config.json is not a regular file"}},
		{name: "relative bundle", request: func(r *taskapi.CreateTaskRequest) { r.Bundle = "bundle/../x" },
			want: []string{`bundle "bundle/../x"`, "absolute path"}},
		{name: "ID no containerd makes", request: func(r *taskapi.CreateTaskRequest) { r.ID = strings.Repeat("x", 1<<16) },
			want: []string{"... (65536 bytes)", "at most 76 characters"}},
		{name: "missing rootfs", bundle: func(t *testing.T, b string) { os.RemoveAll(filepath.Join(b, "rootfs")) },
			want: []string{"no root filesystem at", "check root.path"}},
		{name: "module path with ..", bundle: func(t *testing.T, b string) {
			writeFile("secret.wasm", keeptest.Header+"exit 0")(t, b)
			writeSpec(t, b, "/../../../secret.wasm")
		}, want: []string{`module "/../../../secret.wasm"`, "not found in the container's root filesystem"}},
		{name: "module symlink out of the rootfs", bundle: func(t *testing.T, b string) {
			writeFile("secret.wasm", keeptest.Header+"exit 0")(t, b)
			if err := os.Symlink(filepath.Join(b, "secret.wasm"), filepath.Join(b, "rootfs", "link.wasm")); err != nil {
				t.Fatal(err)
			}
			writeSpec(t, b, "/link.wasm")
		}, want: []string{`module "/link.wasm"`, "not found in the container's root filesystem"}},
		{name: "module a FIFO", bundle: func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, "rootfs", "app.wasm"))
			if err := unix.Mkfifo(filepath.Join(b, "rootfs", "app.wasm"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`module "/app.wasm"`, "not a regular file"}},
		{name: "oversized Enarx.toml", bundle: writeFile("rootfs/Enarx.toml", "args = []\n"+strings.Repeat("#\n", oci.MaxEnarxTOMLSize/2)),
			want: []string{"Enarx.toml is larger than 1048576 bytes"}},
		{name: "oversized runtime options", request: options(&runtimeoptions.Options{ConfigBody: bytes.Repeat([]byte("# padding\n"), nodepolicy.MaxSize/10+1)}),
			want: []string{configBodySource, "larger than 65536 bytes"}},
		{name: "malformed runtime options", request: func(r *taskapi.CreateTaskRequest) {
			r.Options = containerdOptions(t, &runtimeoptions.Options{})
			r.Options.Value = []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}
		}, want: []string{"runtime options (runtimeoptions.v1.Options)"}},
		{name: "runtime options naming a FIFO", request: options(&runtimeoptions.Options{ConfigPath: fifo}),
			want: []string{fifo, "not a regular file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bundle, _ := newBundle(t, "exit 0")
			if c.bundle != nil {
				c.bundle(t, bundle)
			}
			r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle}
			if c.request != nil {
				c.request(r)
			}
			done := make(chan error, 1)
			go func() { _, err := h.svc.Create(ctx, r); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Create still blocked after 30s")
			}
			wantCode(t, "Create", err, codes.InvalidArgument, c.want...)
			if _, err := h.svc.State(ctx, &taskapi.StateRequest{ID: r.ID}); err == nil {
				t.Error("the refused task exists")
			}
			if pids := keeptest.Processes(r.ID); len(pids) != 0 {
				t.Errorf("Keeps of the refused task run: %v", pids)
			}
			if filepath.IsAbs(r.Bundle) {
				b := oci.Bundle{Dir: r.Bundle}
				for _, f := range []string{b.ArtifactModule(), b.KeepPID(), b.Evidence()} {
					if _, err := os.Stat(f); err == nil {
						t.Errorf("%s left in the bundle", f)
					}
				}
			}
		})
	}
	if st := h.state(t, running.ID); st.Status != tasktypes.Status_RUNNING {
		t.Fatalf("the running task is %v after the refused creates", st.Status)
	}
	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: running.ID, Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	h.wait(t, running.ID)
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: running.ID}); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes content to name in the bundle.
func writeFile(name, content string) func(t *testing.T, bundle string) {
	return func(t *testing.T, bundle string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
