package shim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/version"
)

const testNS = "enarx-test"

// eventsServer is containerd's ttrpc Events service, recording what the
// shim forwards.
type eventsServer struct {
	mu     sync.Mutex
	events []receivedEvent // task events, in order
	// attestations are the /enarx/attestation events, kept apart so that
	// the task events' order is checked on its own.
	attestations []receivedEvent
	notify       chan struct{}
}

type receivedEvent struct {
	// metadataNS is the namespace of the request's ttrpc metadata.
	metadataNS string
	envelope   *types.Envelope
}

func (s *eventsServer) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	ns, _ := ttrpc.GetMetadataValue(ctx, "containerd-namespace-ttrpc")
	s.mu.Lock()
	if r.Envelope.GetTopic() == TopicAttestation {
		s.attestations = append(s.attestations, receivedEvent{metadataNS: ns, envelope: r.Envelope})
	} else {
		s.events = append(s.events, receivedEvent{metadataNS: ns, envelope: r.Envelope})
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return &emptypb.Empty{}, nil
}

// wait returns the events once there are n of them.
func (s *eventsServer) wait(t *testing.T, n int) []receivedEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := append([]receivedEvent(nil), s.events...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("got %d events, want %d: %v", len(got), n, topics(got))
		}
	}
}

func topics(events []receivedEvent) []string {
	var ts []string
	for _, e := range events {
		ts = append(ts, e.envelope.GetTopic())
	}
	return ts
}

// startEventsServer serves the Events service on a unix socket and returns
// its address.
func startEventsServer(t testing.TB) (string, *eventsServer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "events.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	es := &eventsServer{notify: make(chan struct{}, 1)}
	eventsapi.RegisterTTRPCEventsService(server, es)
	go func() { _ = server.Serve(context.Background(), l) }()
	t.Cleanup(func() { server.Close() })
	return sock, es
}

// fakeContainerd records the labels the service sets; its containers have
// no image.
type fakeContainerd struct {
	mu     sync.Mutex
	labels map[string]map[string]string
	ns     []string
	err    error
	// onSetLabels, when set, runs before the labels are recorded.
	onSetLabels func(id string)
}

func (f *fakeContainerd) SetLabels(ctx context.Context, ns, id string, labels map[string]string) error {
	if f.onSetLabels != nil {
		f.onSetLabels(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.labels == nil {
		f.labels = map[string]map[string]string{}
	}
	// As containerd: the labels given are set, others kept, and a label
	// set to "" removed.
	merged := map[string]string{}
	for k, v := range f.labels[id] {
		merged[k] = v
	}
	for k, v := range labels {
		if v == "" {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	if len(merged) == 0 {
		delete(f.labels, id)
	} else {
		f.labels[id] = merged
	}
	f.ns = append(f.ns, ns)
	return nil
}

// labelsOf is the labels container id has now.
func (f *fakeContainerd) labelsOf(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.labels[id]
}

func (f *fakeContainerd) Image(ns, id string) oci.ImageStore { return noImage{} }

// Warm has no connection to make.
func (f *fakeContainerd) Warm() {}

type noImage struct{}

func (noImage) Target(context.Context) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, oci.ErrNoImage
}

func (noImage) Open(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return nil, errors.New("no content")
}

type harness struct {
	svc        *service
	events     *eventsServer
	containerd *fakeContainerd
	// emptied receives when the service calls onEmpty.
	emptied chan struct{}
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	addr, es := startEventsServer(t)
	pub := newPublisher("unix://" + addr)
	h := &harness{events: es, containerd: &fakeContainerd{}, emptied: make(chan struct{}, 10)}
	h.svc = newService(testNS, pub, h.containerd, func() { h.emptied <- struct{}{} })
	h.svc.exe = os.Args[0]
	t.Cleanup(func() {
		h.svc.mu.Lock()
		left := make([]*task, 0, len(h.svc.tasks))
		for _, tk := range h.svc.tasks {
			left = append(left, tk)
		}
		h.svc.mu.Unlock()
		for _, tk := range left {
			_ = tk.proc.Signal(syscall.SIGKILL)
			<-tk.reaped
			tk.cleanup(context.Background())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pub.Close(ctx)
	})
	return h
}

// newBundle writes a bundle whose rootfs holds /app.wasm, a fake module
// running cmd, and returns the bundle and the module's bytes.
func newBundle(t *testing.T, cmd string) (string, []byte) {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	module := keeptest.Module(cmd)
	if err := os.WriteFile(filepath.Join(rootfs, "app.wasm"), module, 0o644); err != nil {
		t.Fatal(err)
	}
	writeSpec(t, bundle, "/app.wasm")
	return bundle, module
}

func writeSpec(t testing.TB, bundle string, args ...string) {
	t.Helper()
	spec := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Env: []string{"PATH=/"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
	}
	b, err := json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) create(t *testing.T, cmd string) (*taskapi.CreateTaskRequest, []byte) {
	t.Helper()
	bundle, module := newBundle(t, cmd)
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle}
	if _, err := h.svc.Create(context.Background(), r); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r, module
}

func (h *harness) state(t *testing.T, id string) *taskapi.StateResponse {
	t.Helper()
	st, err := h.svc.State(context.Background(), &taskapi.StateRequest{ID: id})
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

func (h *harness) wait(t *testing.T, id string) *taskapi.WaitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := h.svc.Wait(ctx, &taskapi.WaitRequest{ID: id})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return w
}

// wantCode checks err's gRPC code and that its message contains each of
// want.
func wantCode(t *testing.T, what string, err error, code codes.Code, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want %v", what, code)
		return
	}
	st := status.Convert(err)
	if st.Code() != code {
		t.Errorf("%s: code %v (%v), want %v", what, st.Code(), err, code)
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Errorf("%s: message %q does not contain %q", what, st.Message(), w)
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has not been reaped but has exited.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// noPIDFile checks that the Keep's PID and exit files are gone.
func noPIDFile(t *testing.T, bundle string) {
	t.Helper()
	for _, f := range []string{oci.Bundle{Dir: bundle}.KeepPID(), oci.Bundle{Dir: bundle}.KeepExit()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want none", f, err)
		}
	}
}

// decode checks an event's envelope and returns its payload.
func decode(t *testing.T, e receivedEvent, topic string) proto.Message {
	t.Helper()
	env := e.envelope
	if env.Topic != topic {
		t.Fatalf("event topic %q, want %q", env.Topic, topic)
	}
	if env.Namespace != testNS || e.metadataNS != testNS {
		t.Errorf("%s: namespace %q, metadata namespace %q, want %q", topic, env.Namespace, e.metadataNS, testNS)
	}
	if env.Timestamp == nil {
		t.Errorf("%s: no timestamp", topic)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(env.Event.GetTypeUrl()))
	if err != nil {
		t.Fatalf("%s: type URL %q is not a bare message name: %v", topic, env.Event.GetTypeUrl(), err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(env.Event.GetValue(), m); err != nil {
		t.Fatalf("%s: %v", topic, err)
	}
	return m
}

func TestServiceLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r, module := h.create(t, "spin")
	id := r.ID

	st := h.state(t, id)
	pid := st.Pid
	if st.Status != tasktypes.Status_CREATED || pid == 0 || st.Bundle != r.Bundle || st.ID != id {
		t.Fatalf("State after Create = %v, want CREATED with the Keep's pid", st)
	}
	if !host.IsProcessOf(int(pid), id) {
		t.Errorf("pid %d is not the Keep of %s", pid, id)
	}
	if b, err := os.ReadFile(oci.Bundle{Dir: r.Bundle}.KeepPID()); err != nil || string(b) != strconv.Itoa(int(pid)) {
		t.Errorf("pid file = %q, %v; want %d", b, err, pid)
	}

	// Attestation labels.
	sum := sha256.Sum256(module)
	wantLabels := map[string]string{
		enarxdev.LabelTEE:            "none",
		enarxdev.LabelBackend:        "nil",
		enarxdev.LabelAttestation:    "none",
		enarxdev.LabelRuntimeVersion: version.Version,
		enarxdev.LabelWorkloadDigest: "sha256:" + hex.EncodeToString(sum[:]),
		enarxdev.LabelEngine:         keeptest.EngineName,
	}
	h.containerd.mu.Lock()
	gotLabels, gotNS := h.containerd.labels[id], h.containerd.ns
	h.containerd.mu.Unlock()
	// The evidence file in the bundle, and the labels that point at it.
	evidencePath := oci.Bundle{Dir: r.Bundle}.Evidence()
	encoded, err := os.ReadFile(evidencePath)
	if err != nil {
		t.Fatalf("evidence file: %v", err)
	}
	evidence, err := attestation.ParseEvidence(encoded)
	if err != nil {
		t.Fatalf("evidence file: %v", err)
	}
	if err := evidence.CheckBinding(); err != nil {
		t.Errorf("evidence binding: %v", err)
	}
	wantLabels[enarxdev.LabelEvidencePath] = evidencePath
	wantLabels[enarxdev.LabelEvidenceDigest] = evidence.Digest()
	wantLabels[enarxdev.LabelRuntimeDigest] = evidence.Inputs.RuntimeDigest
	if evidence.Inputs.WorkloadDigest != wantLabels[enarxdev.LabelWorkloadDigest] || evidence.TEE != "none" {
		t.Errorf("evidence: workload %s, tee %s", evidence.Inputs.WorkloadDigest, evidence.TEE)
	}
	var attested []receivedEvent
	for deadline := time.Now().Add(5 * time.Second); len(attested) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		h.events.mu.Lock()
		attested = append([]receivedEvent(nil), h.events.attestations...)
		h.events.mu.Unlock()
	}
	if len(attested) != 1 || attested[0].metadataNS != testNS {
		t.Errorf("attestation events %v, want one in %s", attested, testNS)
	} else {
		var update eventstypes.ContainerUpdate
		if err := proto.Unmarshal(attested[0].envelope.GetEvent().GetValue(), &update); err != nil {
			t.Errorf("attestation event payload: %v", err)
		} else if attested[0].envelope.GetEvent().GetTypeUrl() != "containerd.events.ContainerUpdate" ||
			update.ID != id || update.Labels[enarxdev.LabelTEE] != "none" || update.Labels[enarxdev.LabelEvidenceDigest] != evidence.Digest() {
			t.Errorf("attestation event %s %v", attested[0].envelope.GetEvent().GetTypeUrl(), &update)
		}
	}
	if fmt.Sprint(gotLabels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels = %v, want %v", gotLabels, wantLabels)
	}
	if len(gotNS) != 1 || gotNS[0] != testNS {
		t.Errorf("labels set in namespaces %v, want [%s]", gotNS, testNS)
	}

	pids, err := h.svc.Pids(ctx, &taskapi.PidsRequest{ID: id})
	if err != nil || len(pids.Processes) != 1 || pids.Processes[0].Pid != pid {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}
	conn, err := h.svc.Connect(ctx, &taskapi.ConnectRequest{ID: id})
	if err != nil || conn.TaskPid != pid || conn.ShimPid != uint32(os.Getpid()) || conn.Version != version.Version {
		t.Errorf("Connect = %v, %v", conn, err)
	}

	start, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if start.Pid != pid {
		t.Errorf("Start pid = %d, want %d", start.Pid, pid)
	}
	if st := h.state(t, id); st.Status != tasktypes.Status_RUNNING {
		t.Fatalf("State after Start = %v, want RUNNING", st.Status)
	}
	_, err = h.svc.Start(ctx, &taskapi.StartRequest{ID: id})
	wantCode(t, "second Start", err, codes.FailedPrecondition, "running")

	// A running task is not deleted.
	_, err = h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	wantCode(t, "Delete of a running task", err, codes.FailedPrecondition, "running")
	if st := h.state(t, id); st.Status != tasktypes.Status_RUNNING {
		t.Fatalf("State after a refused Delete = %v, want RUNNING", st.Status)
	}
	if !alive(int(pid)) {
		t.Fatal("a refused Delete stopped the Keep")
	}

	// Shutdown with a task left does not end the shim.
	if _, err := h.svc.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id}); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-h.emptied:
		t.Fatal("Shutdown called onEmpty with a task left")
	case <-time.After(200 * time.Millisecond):
	}

	if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGTERM)}); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	w := h.wait(t, id)
	if w.ExitStatus != 143 || w.ExitedAt == nil {
		t.Errorf("Wait = %v, want status 143", w)
	}
	st = h.state(t, id)
	if st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 143 || st.ExitedAt == nil {
		t.Errorf("State after exit = %v, want STOPPED with status 143", st)
	}
	_, err = h.svc.Kill(ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)})
	wantCode(t, "Kill of a stopped task", err, codes.NotFound, "already finished")
	// Recorded for `shim delete`, should the shim die now.
	if status, at, ok := readExitRecord(oci.Bundle{Dir: r.Bundle}); !ok || status != 143 || !at.Equal(st.ExitedAt.AsTime()) {
		t.Errorf("exit file: %d %v %v, want 143 at %v", status, at, ok, st.ExitedAt.AsTime())
	}
	// An error, not an empty list: containerd 2.x deletes the tasks of
	// shims that list no process when it restarts.
	_, err = h.svc.Pids(ctx, &taskapi.PidsRequest{ID: id})
	wantCode(t, "Pids of a stopped task", err, codes.FailedPrecondition, "stopped")

	del, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if del.ExitStatus != 143 || del.Pid != pid || del.ExitedAt == nil {
		t.Errorf("Delete = %v, want pid %d status 143", del, pid)
	}
	noPIDFile(t, r.Bundle)
	if !(oci.Bundle{Dir: r.Bundle}).IsCleaned() {
		t.Error("Delete did not record the bundle cleaned: `shim delete` would run the server's whole delete")
	}
	_, err = h.svc.State(ctx, &taskapi.StateRequest{ID: id})
	wantCode(t, "State after Delete", err, codes.NotFound)
	_, err = h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id})
	wantCode(t, "second Delete", err, codes.NotFound)
	if conn, err := h.svc.Connect(ctx, &taskapi.ConnectRequest{ID: id}); err != nil || conn.TaskPid != 0 {
		t.Errorf("Connect after Delete = %v, %v", conn, err)
	}

	// Events, in order.
	events := h.events.wait(t, 4)
	if len(events) != 4 {
		t.Fatalf("events %v, want create, start, exit, delete", topics(events))
	}
	if e := decode(t, events[0], TopicTaskCreate).(*eventstypes.TaskCreate); e.ContainerID != id || e.Pid != pid || e.Bundle != r.Bundle {
		t.Errorf("TaskCreate = %v", e)
	}
	if e := decode(t, events[1], TopicTaskStart).(*eventstypes.TaskStart); e.ContainerID != id || e.Pid != pid {
		t.Errorf("TaskStart = %v", e)
	}
	if e := decode(t, events[2], TopicTaskExit).(*eventstypes.TaskExit); e.ContainerID != id || e.ID != id || e.Pid != pid || e.ExitStatus != 143 || e.ExitedAt == nil {
		t.Errorf("TaskExit = %v", e)
	}
	if e := decode(t, events[3], TopicTaskDelete).(*eventstypes.TaskDelete); e.ContainerID != id || e.Pid != pid || e.ExitStatus != 143 {
		t.Errorf("TaskDelete = %v", e)
	}
	for i, want := range []string{"containerd.events.TaskCreate", "containerd.events.TaskStart", "containerd.events.TaskExit", "containerd.events.TaskDelete"} {
		if got := events[i].envelope.Event.TypeUrl; got != want {
			t.Errorf("event %d type URL %q, want %q", i, got, want)
		}
	}

	// With no task left, Shutdown ends the shim.
	if _, err := h.svc.Shutdown(ctx, &taskapi.ShutdownRequest{ID: id}); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-h.emptied:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown with no task left did not call onEmpty")
	}
}

func TestServiceExitStatus(t *testing.T) {
	h := newHarness(t)
	r, _ := h.create(t, "exit 42")
	if _, err := h.svc.Start(context.Background(), &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 42 {
		t.Errorf("Wait status = %d, want 42", w.ExitStatus)
	}
	if st := h.state(t, r.ID); st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 42 {
		t.Errorf("State = %v, want STOPPED 42", st)
	}
	// Wait again, after the fact.
	if w := h.wait(t, r.ID); w.ExitStatus != 42 {
		t.Errorf("second Wait status = %d, want 42", w.ExitStatus)
	}
	events := h.events.wait(t, 3)
	if e := decode(t, events[2], TopicTaskExit).(*eventstypes.TaskExit); e.ExitStatus != 42 {
		t.Errorf("TaskExit status = %d, want 42", e.ExitStatus)
	}
}

func TestServiceDeleteCreated(t *testing.T) {
	h := newHarness(t)
	r, _ := h.create(t, "exit 0")
	pid := h.state(t, r.ID).Pid
	del, err := h.svc.Delete(context.Background(), &taskapi.DeleteRequest{ID: r.ID})
	if err != nil {
		t.Fatalf("Delete of a created task: %v", err)
	}
	if del.ExitStatus != 137 {
		t.Errorf("Delete status = %d, want 137 (killed)", del.ExitStatus)
	}
	if alive(int(pid)) {
		t.Errorf("Keep pid %d still alive after Delete", pid)
	}
	if pids := keeptest.Processes(r.ID); len(pids) != 0 {
		t.Errorf("keep processes left: %v", pids)
	}
	noPIDFile(t, r.Bundle)
	_, err = h.svc.State(context.Background(), &taskapi.StateRequest{ID: r.ID})
	wantCode(t, "State after Delete", err, codes.NotFound)
	events := h.events.wait(t, 3)
	if got := topics(events); fmt.Sprint(got) != fmt.Sprint([]string{TopicTaskCreate, TopicTaskExit, TopicTaskDelete}) {
		t.Errorf("events %v", got)
	}
}

// TestServiceDeleteLeftovers: a Delete that could not remove all Create
// made does not record the bundle cleaned, so that `shim delete` runs the
// server's whole delete (launcher.Delete).
func TestServiceDeleteLeftovers(t *testing.T) {
	h := newHarness(t)
	r, _ := h.create(t, "exit 0")
	// What Delete cannot remove: a non-empty directory where the Keep's
	// PID file was.
	b := oci.Bundle{Dir: r.Bundle}
	if err := os.Remove(b.KeepPID()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(b.KeepPID(), "kept"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Delete(context.Background(), &taskapi.DeleteRequest{ID: r.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if b.IsCleaned() {
		t.Error("Delete recorded the bundle cleaned with its PID file's place still taken")
	}
}

func TestServiceKillCreated(t *testing.T) {
	h := newHarness(t)
	r, _ := h.create(t, "exit 0")
	if _, err := h.svc.Kill(context.Background(), &taskapi.KillRequest{ID: r.ID, Signal: uint32(syscall.SIGTERM)}); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 143 {
		t.Errorf("Wait status = %d, want 143", w.ExitStatus)
	}
	if st := h.state(t, r.ID); st.Status != tasktypes.Status_STOPPED {
		t.Errorf("State = %v, want STOPPED", st.Status)
	}
	_, err := h.svc.Start(context.Background(), &taskapi.StartRequest{ID: r.ID})
	wantCode(t, "Start of a stopped task", err, codes.FailedPrecondition)
}

// stdinTask creates and starts a task running "cat" with stdin and stdout
// FIFOs, and returns the request and containerd's end of stdout.
func (h *harness) stdinTask(t *testing.T) (*taskapi.CreateTaskRequest, *os.File) {
	t.Helper()
	dir := t.TempDir()
	stdin, stdout := filepath.Join(dir, "stdin"), filepath.Join(dir, "stdout")
	for _, p := range []string{stdin, stdout} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.OpenFile(stdout, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	bundle, _ := newBundle(t, "cat")
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle, Stdin: stdin, Stdout: stdout}
	ctx := context.Background()
	if _, err := h.svc.Create(ctx, r); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := unix.SetNonblock(int(out.Fd()), false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return r, out
}

// writeStdin is containerd's client: it writes data to the stdin FIFO and
// closes it.
func writeStdin(t *testing.T, r *taskapi.CreateTaskRequest, data string) {
	t.Helper()
	in, err := os.OpenFile(r.Stdin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(in, data); err != nil {
		t.Fatal(err)
	}
	in.Close()
}

// readStdout reads the task's stdout to EOF, which comes when the Keep has
// exited and the shim holds no writer.
func readStdout(t *testing.T, out *os.File) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(out)
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("stdout did not reach EOF: the workload did not see stdin's EOF, or a writer of stdout is left")
		return ""
	}
}

func TestServiceStdin(t *testing.T) {
	h := newHarness(t)
	r, out := h.stdinTask(t)
	const data = "hello through the keep\n"
	writeStdin(t, r, data)
	// The workload sees EOF when the client closes its end.
	if got := readStdout(t, out); got != data {
		t.Errorf("stdout = %q, want %q", got, data)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 0 {
		t.Errorf("status = %d, want 0", w.ExitStatus)
	}
}

func TestServiceCloseIOWithoutWriter(t *testing.T) {
	h := newHarness(t)
	r, out := h.stdinTask(t)
	// The client never opens stdin: CloseIO ends it.
	if _, err := h.svc.CloseIO(context.Background(), &taskapi.CloseIORequest{ID: r.ID, Stdin: true}); err != nil {
		t.Fatalf("CloseIO: %v", err)
	}
	if got := readStdout(t, out); got != "" {
		t.Errorf("stdout = %q, want nothing", got)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 0 {
		t.Errorf("status = %d, want 0", w.ExitStatus)
	}
}

// TestServiceCloseIOAfterWrite is what docker and nerdctl do with -i: write
// stdin, close it, then call CloseIO. Nothing written may be lost.
func TestServiceCloseIOAfterWrite(t *testing.T) {
	h := newHarness(t)
	r, out := h.stdinTask(t)
	const data = "hello through the keep\n"
	writeStdin(t, r, data)
	if _, err := h.svc.CloseIO(context.Background(), &taskapi.CloseIORequest{ID: r.ID, Stdin: true}); err != nil {
		t.Fatalf("CloseIO: %v", err)
	}
	if got := readStdout(t, out); got != data {
		t.Errorf("stdout = %q, want %q", got, data)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 0 {
		t.Errorf("status = %d, want 0", w.ExitStatus)
	}
}

func TestServiceStdoutLogFile(t *testing.T) {
	h := newHarness(t)
	if out := h.runLogged(t, "print hello"); out != "hello\n" {
		t.Errorf("stdout log = %q, want %q", out, "hello\n")
	}
}

// runLogged creates and starts a task running cmd, its stdout a log file
// (a file:// URI), waits for it to exit 0, and returns what it logged.
func (h *harness) runLogged(t *testing.T, cmd string) string {
	t.Helper()
	bundle, _ := newBundle(t, cmd)
	log := filepath.Join(t.TempDir(), "stdout.log")
	r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle, Stdout: "file://" + log}
	if _, err := h.svc.Create(context.Background(), r); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := h.svc.Start(context.Background(), &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if w := h.wait(t, r.ID); w.ExitStatus != 0 {
		t.Fatalf("status = %d, want 0", w.ExitStatus)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServiceErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r, _ := h.create(t, "exit 0")

	const unknown = "no-such-task"
	_, err := h.svc.State(ctx, &taskapi.StateRequest{ID: unknown})
	wantCode(t, "State", err, codes.NotFound, unknown)
	_, err = h.svc.Start(ctx, &taskapi.StartRequest{ID: unknown})
	wantCode(t, "Start", err, codes.NotFound, unknown)
	_, err = h.svc.Wait(ctx, &taskapi.WaitRequest{ID: unknown})
	wantCode(t, "Wait", err, codes.NotFound, unknown)
	_, err = h.svc.Kill(ctx, &taskapi.KillRequest{ID: unknown, Signal: 9})
	wantCode(t, "Kill", err, codes.NotFound, unknown)
	_, err = h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: unknown})
	wantCode(t, "Delete", err, codes.NotFound, unknown)
	_, err = h.svc.Pids(ctx, &taskapi.PidsRequest{ID: unknown})
	wantCode(t, "Pids", err, codes.NotFound, unknown)
	_, err = h.svc.CloseIO(ctx, &taskapi.CloseIORequest{ID: unknown})
	wantCode(t, "CloseIO", err, codes.NotFound, unknown)
	// Requests the runtime never supports name no task either.
	_, err = h.svc.Pause(ctx, &taskapi.PauseRequest{ID: unknown})
	wantCode(t, "Pause", err, codes.NotFound, unknown)
	_, err = h.svc.Exec(ctx, &taskapi.ExecProcessRequest{ID: unknown, ExecID: "sh"})
	wantCode(t, "Exec", err, codes.NotFound, unknown)

	// Exec processes do not exist.
	_, err = h.svc.State(ctx, &taskapi.StateRequest{ID: r.ID, ExecID: "exec1"})
	wantCode(t, "State of an exec", err, codes.NotFound, "exec")
	_, err = h.svc.Kill(ctx, &taskapi.KillRequest{ID: r.ID, ExecID: "exec1", Signal: 9})
	wantCode(t, "Kill of an exec", err, codes.NotFound, "exec")
	_, err = h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID, ExecID: "exec1"})
	wantCode(t, "Delete of an exec", err, codes.NotFound, "exec")
	if st := h.state(t, r.ID); st.Status != tasktypes.Status_CREATED {
		t.Errorf("the task is %v after exec requests, want CREATED", st.Status)
	}

	// Unsupported operations.
	for name, call := range map[string]func() error{
		"Pause":  func() error { _, err := h.svc.Pause(ctx, &taskapi.PauseRequest{ID: r.ID}); return err },
		"Resume": func() error { _, err := h.svc.Resume(ctx, &taskapi.ResumeRequest{ID: r.ID}); return err },
		"Exec": func() error {
			_, err := h.svc.Exec(ctx, &taskapi.ExecProcessRequest{ID: r.ID, ExecID: "sh"})
			return err
		},
		"Checkpoint": func() error {
			_, err := h.svc.Checkpoint(ctx, &taskapi.CheckpointTaskRequest{ID: r.ID, Path: t.TempDir()})
			return err
		},
		"Update":    func() error { _, err := h.svc.Update(ctx, &taskapi.UpdateTaskRequest{ID: r.ID}); return err },
		"ResizePty": func() error { _, err := h.svc.ResizePty(ctx, &taskapi.ResizePtyRequest{ID: r.ID}); return err },
	} {
		wantCode(t, name, call(), codes.Unimplemented, "not supported")
	}
	// Metrics are the cgroup's, and this spec names none.
	_, err = h.svc.Stats(ctx, &taskapi.StatsRequest{ID: r.ID})
	wantCode(t, "Stats without a cgroup", err, codes.NotFound, "no cgroup")
	_, err = h.svc.Stats(ctx, &taskapi.StatsRequest{ID: unknown})
	wantCode(t, "Stats", err, codes.NotFound, unknown)

	// Create requests that are refused before anything starts.
	bundle, _ := newBundle(t, "exit 0")
	_, err = h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle, Terminal: true})
	wantCode(t, "Create with a terminal", err, codes.InvalidArgument, "terminal")
	// Never Unimplemented: containerd 2.x would retry with task API v2.
	_, err = h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle, Checkpoint: t.TempDir()})
	wantCode(t, "Create from a checkpoint", err, codes.InvalidArgument, "checkpoint")
	_, err = h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: r.ID, Bundle: bundle})
	wantCode(t, "Create of a duplicate ID", err, codes.AlreadyExists, r.ID)
	noPIDFile(t, bundle)
	if st := h.state(t, r.ID); st.Status != tasktypes.Status_CREATED {
		t.Errorf("the task is %v after a duplicate Create, want CREATED", st.Status)
	}
	if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID}); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

func TestServiceCreateFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("not a wasm module", func(t *testing.T) {
		h := newHarness(t)
		bundle := t.TempDir()
		if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "rootfs", "x.wasm"), []byte("#!/bin/sh\necho not wasm\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeSpec(t, bundle, "/x.wasm")
		id := keeptest.ID(t)
		_, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
		wantCode(t, "Create", err, codes.InvalidArgument, "x.wasm")
		h.nothingLeft(t, id, bundle)
	})

	t.Run("missing module", func(t *testing.T) {
		h := newHarness(t)
		bundle, _ := newBundle(t, "exit 0")
		writeSpec(t, bundle, "/missing.wasm")
		id := keeptest.ID(t)
		_, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
		wantCode(t, "Create", err, codes.InvalidArgument, "missing.wasm")
		h.nothingLeft(t, id, bundle)
	})

	t.Run("no config.json", func(t *testing.T) {
		h := newHarness(t)
		id := keeptest.ID(t)
		bundle := t.TempDir()
		_, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
		wantCode(t, "Create", err, codes.InvalidArgument, "config")
		h.nothingLeft(t, id, bundle)
	})

	t.Run("compile error", func(t *testing.T) {
		h := newHarness(t)
		bundle, _ := newBundle(t, "compile-error")
		id := keeptest.ID(t)
		_, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle})
		if err == nil {
			t.Fatal("Create succeeded")
		}
		if c := status.Code(err); c == codes.Unimplemented || c == codes.OK || c == codes.Unknown {
			t.Errorf("code %v", c)
		}
		if !strings.Contains(status.Convert(err).Message(), "fake engine: invalid opcode 0xff at offset 42") {
			t.Errorf("error %v does not give the engine's reason", err)
		}
		h.nothingLeft(t, id, bundle)
	})

	// The labels are published beside Create's answer: a task whose
	// labels could not be set is created, and refuses to start.
	t.Run("labels not set", func(t *testing.T) {
		h := newHarness(t)
		h.containerd.err = errors.New("containerd is gone")
		bundle, _ := newBundle(t, "exit 0")
		id := keeptest.ID(t)
		if _, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		_, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id})
		if err == nil || !strings.Contains(err.Error(), "containerd is gone") {
			t.Fatalf("Start: %v, want the labels' error", err)
		}
		wantCode(t, "Start without labels", err, codes.FailedPrecondition)
		if st := h.state(t, id); st.Status != tasktypes.Status_CREATED {
			t.Errorf("status after a failed Start: %v, want CREATED", st.Status)
		}
		if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if pids := keeptest.Processes(id); len(pids) != 0 {
			t.Errorf("keep processes left: %v", pids)
		}
		h.events.mu.Lock()
		if len(h.events.attestations) != 0 {
			t.Errorf("attestation events published for a task whose labels were not set: %d", len(h.events.attestations))
		}
		for _, e := range h.events.events {
			if e.envelope.GetTopic() == TopicTaskStart {
				t.Error("a task whose labels were not set was reported started")
			}
		}
		h.events.mu.Unlock()
		// With containerd back, the same ID is created and started.
		h.containerd.mu.Lock()
		h.containerd.err = nil
		h.containerd.mu.Unlock()
		if _, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle}); err != nil {
			t.Fatalf("Create after a failed Start: %v", err)
		}
		if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: id}); err != nil {
			t.Fatalf("Start: %v", err)
		}
		h.wait(t, id)
		if _, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	})
}

// nothingLeft checks that a failed Create left no task, no Keep, no pid file
// and published nothing.
func (h *harness) nothingLeft(t *testing.T, id, bundle string) {
	t.Helper()
	if pids := keeptest.Processes(id); len(pids) != 0 {
		t.Errorf("keep processes left: %v", pids)
	}
	noPIDFile(t, bundle)
	_, err := h.svc.State(context.Background(), &taskapi.StateRequest{ID: id})
	wantCode(t, "State after a failed Create", err, codes.NotFound)
	if !h.svc.empty() {
		t.Error("the service is not empty")
	}
	time.Sleep(50 * time.Millisecond)
	h.events.mu.Lock()
	defer h.events.mu.Unlock()
	if len(h.events.events) != 0 {
		t.Errorf("events published: %v", topics(h.events.events))
	}
}

// TestServiceKeepDiesAfterReady: a Keep that dies between ready and the end
// of Create (killed by a createRuntime hook, which runs then, and waits for
// it to be reaped) is reported as exited, and never before it is reported
// created.
func TestServiceKeepDiesAfterReady(t *testing.T) {
	for i := 0; i < 20; i++ {
		h := newHarness(t)
		bundle, _ := newBundle(t, "exit 0")
		kill := `pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p'); kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.001; done; sleep 0.005`
		editSpec(t, bundle, func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", kill}}}}
		})
		r := &taskapi.CreateTaskRequest{ID: keeptest.ID(t), Bundle: bundle}
		if _, err := h.svc.Create(context.Background(), r); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if w := h.wait(t, r.ID); w.ExitStatus != 137 {
			t.Fatalf("Wait status = %d, want 137", w.ExitStatus)
		}
		events := h.events.wait(t, 2)
		if got := topics(events); fmt.Sprint(got) != fmt.Sprint([]string{TopicTaskCreate, TopicTaskExit}) {
			t.Fatalf("run %d: events %v, want create then exit", i, got)
		}
		if _, err := h.svc.Delete(context.Background(), &taskapi.DeleteRequest{ID: r.ID}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
}

// TestServiceConcurrent drives one task from many goroutines; run it with
// -race.
func TestServiceConcurrent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	r, _ := h.create(t, "spin")
	if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := 0; i < n; i++ {
		wg.Add(4)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			w, err := h.svc.Wait(wctx, &taskapi.WaitRequest{ID: r.ID})
			if err != nil {
				errs <- fmt.Errorf("Wait: %w", err)
			} else if w.ExitStatus != 143 {
				errs <- fmt.Errorf("Wait status %d, want 143", w.ExitStatus)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: r.ID, Signal: uint32(syscall.SIGTERM)})
			if err != nil && status.Code(err) != codes.NotFound {
				errs <- fmt.Errorf("Kill: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			st, err := h.svc.State(ctx, &taskapi.StateRequest{ID: r.ID})
			if err != nil {
				errs <- fmt.Errorf("State: %w", err)
			} else if st.Status != tasktypes.Status_RUNNING && st.Status != tasktypes.Status_STOPPED {
				errs <- fmt.Errorf("State %v", st.Status)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := h.svc.Pids(ctx, &taskapi.PidsRequest{ID: r.ID}); err != nil && status.Code(err) != codes.FailedPrecondition {
				errs <- fmt.Errorf("Pids: %w", err)
			}
			if _, err := h.svc.Connect(ctx, &taskapi.ConnectRequest{ID: r.ID}); err != nil {
				errs <- fmt.Errorf("Connect: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := h.state(t, r.ID); st.Status != tasktypes.Status_STOPPED || st.ExitStatus != 143 {
		t.Errorf("State = %v, want STOPPED 143", st)
	}
	// Exactly one exit event.
	h.events.wait(t, 3)
	time.Sleep(100 * time.Millisecond)
	h.events.mu.Lock()
	got := topics(h.events.events)
	h.events.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint([]string{TopicTaskCreate, TopicTaskStart, TopicTaskExit}) {
		t.Errorf("events %v", got)
	}
}

// TestServiceOverTTRPC checks that the service answers under the names of
// task API v3 and v2, and that error codes cross the wire.
func TestServiceOverTTRPC(t *testing.T) {
	h := newHarness(t)
	r, _ := h.create(t, "exit 0")
	sock := filepath.Join(t.TempDir(), "shim.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	register(server, h.svc)
	go func() { _ = server.Serve(context.Background(), l) }()
	defer server.Close()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	v3 := taskapi.NewTTRPCTaskClient(client)
	st, err := v3.State(ctx, &taskapi.StateRequest{ID: r.ID})
	if err != nil || st.Status != tasktypes.Status_CREATED {
		t.Errorf("v3 State = %v, %v", st, err)
	}
	_, err = v3.State(ctx, &taskapi.StateRequest{ID: "no-such-task"})
	wantCode(t, "v3 State of an unknown task", err, codes.NotFound)

	v2 := taskv2.NewTTRPCTaskClient(client)
	st2, err := v2.State(ctx, &taskv2.StateRequest{ID: r.ID})
	if err != nil || st2.Status != tasktypes.Status_CREATED || st2.Pid != st.GetPid() {
		t.Errorf("v2 State = %v, %v", st2, err)
	}
	_, err = v2.Pause(ctx, &taskv2.PauseRequest{ID: r.ID})
	wantCode(t, "v2 Pause", err, codes.Unimplemented, "not supported")
	if _, err := v2.Start(ctx, &taskv2.StartRequest{ID: r.ID}); err != nil {
		t.Fatalf("v2 Start: %v", err)
	}
	w, err := v2.Wait(ctx, &taskv2.WaitRequest{ID: r.ID})
	if err != nil || w.ExitStatus != 0 {
		t.Errorf("v2 Wait = %v, %v", w, err)
	}
	if _, err := v2.Delete(ctx, &taskv2.DeleteRequest{ID: r.ID}); err != nil {
		t.Errorf("v2 Delete: %v", err)
	}
}

// TestServicePageProfile: what a task's Keep reported of its run's pages
// once it ended is given to the next task's Keep (keep.Config.Populate),
// which uses it for a module that measures as the one reported.
func TestServicePageProfile(t *testing.T) {
	h := newHarness(t)
	run := func() string {
		t.Helper()
		return strings.TrimSpace(h.runLogged(t, "touch"))
	}
	if given := run(); given != "null" {
		t.Errorf("first task's Keep was given %s to populate, want nothing", given)
	}
	// The report is kept once the Keep's last message is read, beside
	// the task's exit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.svc.mu.Lock()
		kept := h.svc.lastProfile
		h.svc.mu.Unlock()
		if kept != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first Keep's report of its pages was not kept")
		}
		time.Sleep(5 * time.Millisecond)
	}
	want, _ := json.Marshal(keeptest.TouchedRanges)
	if given := run(); given != string(want) {
		t.Errorf("second task's Keep was given %s to populate, want %s", given, want)
	}
}
