package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/shim/attestapi"
)

// FuzzRuntimeOptions decodes the runtime options of a CreateTaskRequest
// (their type URL and protobuf bytes): an accepted policy validates; a
// refused one gets an error that names the runtime options or the policy.
// A ConfigPath is only followed into the fuzz target's own directory.
func FuzzRuntimeOptions(f *testing.F) {
	dir := f.TempDir()
	file := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(file, []byte("backend = \"nil\"\nmodule_cache = \"off\"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	for _, ro := range []*runtimeoptions.Options{
		{},
		{ConfigPath: file},
		{ConfigPath: filepath.Join(dir, "missing.toml")},
		{ConfigPath: "policy.toml"},
		{ConfigBody: []byte("backend = \"sev-snp\"\nrequire_tee = true\nTypeUrl = \"x\"\n")},
		{ConfigBody: []byte("backend = \"tdx\"\n\nrequire_tee = [\n")},
		{ConfigBody: []byte("SystemdCgroup = true\n")},
		{TypeUrl: "io.containerd.runc.v1.Options", ConfigBody: []byte("backend = \"nil\"\n")},
	} {
		b, err := proto.Marshal(ro)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(runtimeOptionsName, b)
		f.Add("type.googleapis.com/"+runtimeOptionsName, b)
	}
	f.Add("containerd.runc.v1.Options", []byte{0x08, 0x01})
	f.Add("", []byte{})
	f.Add(runtimeOptionsName, []byte{0xff})
	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		var ro runtimeoptions.Options
		if proto.Unmarshal(value, &ro) == nil && ro.GetConfigPath() != "" {
			if p := filepath.Clean(ro.GetConfigPath()); filepath.IsAbs(p) && !strings.HasPrefix(p, dir+"/") {
				return // not a file of the test's
			}
		}
		p, err := policyFromOptions(&anypb.Any{TypeUrl: typeURL, Value: value})
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "runtime options") && !strings.Contains(msg, "enarx node policy") {
				t.Fatalf("error names neither the runtime options nor the policy: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted policy does not validate: %v", err)
		}
	})
}

// FuzzTaskRequest hands request bytes to every handler of the task API and
// the attestation service but Create, as the ttrpc server does after
// framing, on a shim serving a live pod sandbox; the request's id is, when
// the input says so, the sandbox's. No handler may panic; an error is a
// status (never the Unknown code of a plain error), and the sandbox is
// still in a state the task API knows, or deleted.
func FuzzTaskRequest(f *testing.F) {
	quiet(f)
	h := newHarness(f)
	bundle := sandboxBundle(f, "pod")
	methods := taskMethods(h.svc)
	delete(methods, "Create") // starts Keeps and mounts: TestHostileInputCreate
	for name, m := range attestationMethods(h.svc) {
		methods[name] = m
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range methods {
			if !yield(n) {
				return
			}
		}
	})
	seeds := map[string]proto.Message{
		"State":          &taskapi.StateRequest{ID: "pod"},
		"Start":          &taskapi.StartRequest{ID: "pod"},
		"Delete":         &taskapi.DeleteRequest{ID: "pod"},
		"Pids":           &taskapi.PidsRequest{ID: "pod"},
		"Kill":           &taskapi.KillRequest{ID: "pod", Signal: 9, All: true},
		"Exec":           &taskapi.ExecProcessRequest{ID: "pod", ExecID: "sh"},
		"CloseIO":        &taskapi.CloseIORequest{ID: "pod", Stdin: true},
		"Update":         &taskapi.UpdateTaskRequest{ID: "pod"},
		"Wait":           &taskapi.WaitRequest{ID: "pod", ExecID: "x"},
		"Stats":          &taskapi.StatsRequest{ID: "pod"},
		"Connect":        &taskapi.ConnectRequest{ID: "pod"},
		"Shutdown":       &taskapi.ShutdownRequest{ID: "pod", Now: true},
		attestapi.Method: wrapperspb.Bytes([]byte(`{"id":"pod","nonce":"00ff"}`)),
	}
	for i, n := range names {
		req, ok := seeds[n]
		if !ok {
			f.Add(uint8(i), false, []byte{})
			continue
		}
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), true, b)
		f.Add(uint8(i), false, b)
	}
	f.Add(uint8(0), true, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	// A context that is already done: Wait returns at once.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	f.Fuzz(func(t *testing.T, which uint8, targetSandbox bool, payload []byte) {
		n++
		id := fmt.Sprintf("pod-%d", n)
		if _, err := h.svc.Create(context.Background(), &taskapi.CreateTaskRequest{ID: id, Bundle: bundle}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_, _ = h.svc.Kill(context.Background(), &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)})
			_, _ = h.svc.Delete(context.Background(), &taskapi.DeleteRequest{ID: id})
		}()
		name := names[int(which)%len(names)]
		var decodeErr error
		unmarshal := func(v any) error {
			m := v.(proto.Message)
			if decodeErr = proto.Unmarshal(payload, m); decodeErr != nil {
				return decodeErr
			}
			if targetSandbox {
				if fd := m.ProtoReflect().Descriptor().Fields().ByName("id"); fd != nil && fd.Kind() == protoreflect.StringKind {
					m.ProtoReflect().Set(fd, protoreflect.ValueOfString(id))
				}
			}
			return nil
		}
		_, err := methods[name](done, unmarshal)
		if err != nil && decodeErr == nil {
			if st, ok := status.FromError(err); !ok || st.Code() == codes.Unknown {
				t.Fatalf("%s: error %v is not a status with a code", name, err)
			}
		}
		st, err := h.svc.State(context.Background(), &taskapi.StateRequest{ID: id})
		switch {
		case err == nil && !slices.Contains([]tasktypes.Status{tasktypes.Status_CREATED, tasktypes.Status_RUNNING, tasktypes.Status_STOPPED}, st.Status):
			t.Fatalf("after %s: sandbox is %v", name, st.Status)
		case err != nil && (name != "Delete" || status.Code(err) != codes.NotFound):
			t.Fatalf("after %s: State: %v", name, err)
		}
	})
}

// TestHostileInputHandlerPanic: a handler that panics answers Internal,
// and the server goes on serving the next call.
func TestHostileInputHandlerPanic(t *testing.T) {
	quiet(t)
	server, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(recoverPanic))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	server.RegisterService("test.Panic", &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Call": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req wrapperspb.StringValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			calls++
			if req.Value == "panic" {
				var m map[string]int
				m["x"] = 1 // a nil map: a bug
			}
			return wrapperspb.String("ok"), nil
		},
	}})
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(context.Background(), l)
	defer server.Close()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	var resp wrapperspb.StringValue
	err = client.Call(context.Background(), "test.Panic", "Call", wrapperspb.String("panic"), &resp)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "internal error in the enarx shim") || !strings.Contains(err.Error(), "nil map") {
		t.Fatalf("a panicking handler answered %v, want Internal saying it is a shim bug", err)
	}
	if err := client.Call(context.Background(), "test.Panic", "Call", wrapperspb.String("again"), &resp); err != nil || resp.Value != "ok" || calls != 2 {
		t.Fatalf("after the panic: %q, %v, %d calls; want the server to go on", resp.Value, err, calls)
	}
}

// quiet keeps the shim's error logs (of refused requests, of the panic)
// out of the test output until the test ends.
func quiet(t testing.TB) {
	level := log.L.Logger.GetLevel()
	log.L.Logger.SetLevel(logrus.PanicLevel)
	t.Cleanup(func() { log.L.Logger.SetLevel(level) })
}
