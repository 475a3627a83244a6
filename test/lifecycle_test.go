package test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/enarx/containerd-shim-enarx/internal/lifecycle"
)

// The lifecycle tests drive containerd's task API (the gRPC service `ctr`
// and every client use) with our shim behind it, through sequences of
// requests, and check every answer against the lifecycle model
// (internal/lifecycle, docs/reliability.md): the answers and
// their codes, the exit statuses and times reported by State, Wait, Delete,
// `ctr tasks ls` and the TaskExit events, and that nothing of a deleted task
// comes back.

// lifecycleImages are the images of the fixtures, imported once per
// namespace.
type lifecycleImages struct {
	sleep, exit string
}

func importLifecycleImages(t *testing.T, d *Daemon, ns string) lifecycleImages {
	t.Helper()
	return lifecycleImages{
		sleep: importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false),
		exit:  importWasmImage(t, d, ns, "docker.io/enarx-test/exit:latest", buildGoWasm(t, "exit"), false),
	}
}

// daemonRuntime is containerd's task API for lifecycle.Run: one container
// per fixture, made with `ctr containers create`; every task of an index is
// a task of its container.
type daemonRuntime struct {
	d      *Daemon
	ns     string
	conn   *grpc.ClientConn
	tasks  tasksapi.TasksClient
	ids    []string
	rootfs [][]*types.Mount
	index  map[string]int

	mu     sync.Mutex
	events []lifecycle.Event
	stop   context.CancelFunc
}

func newDaemonRuntime(t *testing.T, d *Daemon, ns string, images lifecycleImages, fixtures []lifecycle.Fixture) *daemonRuntime {
	t.Helper()
	requireBinaries(t)
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("client of %s: %v", d.Address, err)
	}
	t.Cleanup(func() { conn.Close() })
	rt := &daemonRuntime{d: d, ns: ns, conn: conn, tasks: tasksapi.NewTasksClient(conn), index: map[string]int{}}
	ctx := rt.ctx(context.Background())
	for i, f := range fixtures {
		id := uniqueID(fmt.Sprintf("lc%d", i))
		args := []string{"containers", "create", "--runtime", runtimeEnarx}
		switch f.Kind {
		case lifecycle.Sleeper:
			args = append(args, images.sleep, id, "/app.wasm", "1h")
		case lifecycle.Exiter:
			args = append(args, images.exit, id, "/app.wasm", fmt.Sprint(f.Status))
		case lifecycle.Broken:
			args = append(args, images.sleep, id, "/missing.wasm")
		}
		d.mustCtr(t, ns, args...)
		c, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: id})
		if err != nil {
			t.Fatalf("container %s: %v", id, err)
		}
		m, err := snapshotsapi.NewSnapshotsClient(conn).Mounts(ctx, &snapshotsapi.MountsRequest{Snapshotter: c.Container.Snapshotter, Key: c.Container.SnapshotKey})
		if err != nil {
			t.Fatalf("rootfs of %s: %v", id, err)
		}
		rt.ids = append(rt.ids, id)
		rt.rootfs = append(rt.rootfs, m.Mounts)
		rt.index[id] = i
	}
	rt.subscribe(t)
	return rt
}

func (rt *daemonRuntime) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", rt.ns)
}

// subscribe collects the namespace's task events, from before the first
// request on: it publishes an event of its own until it sees it come back.
func (rt *daemonRuntime) subscribe(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(rt.ctx(context.Background()))
	rt.stop = cancel
	t.Cleanup(cancel)
	events := eventsapi.NewEventsClient(rt.conn)
	stream, err := events.Subscribe(ctx, &eventsapi.SubscribeRequest{Filters: []string{"namespace==" + rt.ns}})
	if err != nil {
		t.Fatalf("subscribe to events: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		once := sync.Once{}
		for {
			env, err := stream.Recv()
			if err != nil {
				return
			}
			if env.Topic == "/lifecycle/ready" {
				once.Do(func() { close(ready) })
				continue
			}
			rt.received(env)
		}
	}()
	marker, err := anypb.New(&eventstypes.ContainerUpdate{ID: "lifecycle-ready"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := events.Publish(rt.ctx(context.Background()), &eventsapi.PublishRequest{Topic: "/lifecycle/ready", Event: marker}); err != nil {
			t.Fatalf("publish an event: %v", err)
		}
		select {
		case <-ready:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the event subscription never delivered an event")
		}
	}
}

func (rt *daemonRuntime) received(env *types.Envelope) {
	e := lifecycle.Event{Topic: env.Topic}
	var id string
	value := env.GetEvent().GetValue()
	switch env.Topic {
	case "/tasks/create":
		var m eventstypes.TaskCreate
		_ = proto.Unmarshal(value, &m)
		id, e.Pid = m.ContainerID, m.Pid
	case "/tasks/start":
		var m eventstypes.TaskStart
		_ = proto.Unmarshal(value, &m)
		id, e.Pid = m.ContainerID, m.Pid
	case "/tasks/exit":
		var m eventstypes.TaskExit
		_ = proto.Unmarshal(value, &m)
		id, e.Pid, e.ExitStatus, e.ExitedAt = m.ContainerID, m.Pid, int(m.ExitStatus), timeOf(m.ExitedAt)
	case "/tasks/delete":
		var m eventstypes.TaskDelete
		_ = proto.Unmarshal(value, &m)
		id, e.Pid, e.ExitStatus, e.ExitedAt = m.ContainerID, m.Pid, int(m.ExitStatus), timeOf(m.ExitedAt)
	default:
		return
	}
	i, ok := rt.index[id]
	if !ok {
		return
	}
	e.Task = i
	rt.mu.Lock()
	rt.events = append(rt.events, e)
	rt.mu.Unlock()
}

func (rt *daemonRuntime) Events() []lifecycle.Event {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]lifecycle.Event(nil), rt.events...)
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func (rt *daemonRuntime) Do(ctx context.Context, op lifecycle.Op) (lifecycle.Answer, lifecycle.Report) {
	ctx = rt.ctx(ctx)
	id := rt.ids[op.Task]
	var a lifecycle.Answer
	var rep lifecycle.Report
	var err error
	switch op.Kind {
	case lifecycle.Create:
		var r *tasksapi.CreateTaskResponse
		if r, err = rt.tasks.Create(ctx, &tasksapi.CreateTaskRequest{ContainerID: id, Rootfs: rt.rootfs[op.Task]}); err == nil {
			rep.Pid = r.Pid
		}
	case lifecycle.Start:
		var r *tasksapi.StartResponse
		if r, err = rt.tasks.Start(ctx, &tasksapi.StartRequest{ContainerID: id}); err == nil {
			rep.Pid = r.Pid
		}
	case lifecycle.Kill:
		_, err = rt.tasks.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, Signal: uint32(op.Signal)})
	case lifecycle.Wait:
		var r *tasksapi.WaitResponse
		if r, err = rt.tasks.Wait(ctx, &tasksapi.WaitRequest{ContainerID: id}); err == nil {
			a.ExitStatus, rep.ExitedAt = int(r.ExitStatus), timeOf(r.ExitedAt)
		}
	case lifecycle.State:
		var r *tasksapi.GetResponse
		if r, err = rt.tasks.Get(ctx, &tasksapi.GetRequest{ContainerID: id}); err == nil {
			a, rep = processAnswer(r.Process)
		}
	case lifecycle.Delete:
		var r *tasksapi.DeleteResponse
		if r, err = rt.tasks.Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: id}); err == nil {
			a.ExitStatus, rep.Pid, rep.ExitedAt = int(r.ExitStatus), r.Pid, timeOf(r.ExitedAt)
		}
	case lifecycle.Pids:
		var r *tasksapi.ListPidsResponse
		if r, err = rt.tasks.ListPids(ctx, &tasksapi.ListPidsRequest{ContainerID: id}); err == nil {
			a.Pids = len(r.Processes)
			if len(r.Processes) > 0 {
				rep.Pid = r.Processes[0].Pid
			}
		}
	case lifecycle.CloseIO:
		_, err = rt.tasks.CloseIO(ctx, &tasksapi.CloseIORequest{ContainerID: id, Stdin: true})
	case lifecycle.Stats:
		// containerd answers Metrics for the tasks it has, and leaves
		// out the others: none is NotFound.
		var r *tasksapi.MetricsResponse
		if r, err = rt.tasks.Metrics(ctx, &tasksapi.MetricsRequest{Filters: []string{"id==" + id}}); err == nil && len(r.Metrics) == 0 {
			return lifecycle.Answer{Code: codes.NotFound, Says: "not found (no metrics)"}, rep
		}
	case lifecycle.Pause:
		_, err = rt.tasks.Pause(ctx, &tasksapi.PauseTaskRequest{ContainerID: id})
	case lifecycle.Resume:
		_, err = rt.tasks.Resume(ctx, &tasksapi.ResumeTaskRequest{ContainerID: id})
	case lifecycle.Exec:
		_, err = rt.tasks.Exec(ctx, &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: "probe"})
	case lifecycle.Update:
		_, err = rt.tasks.Update(ctx, &tasksapi.UpdateTaskRequest{ContainerID: id})
	case lifecycle.Checkpoint:
		_, err = rt.tasks.Checkpoint(ctx, &tasksapi.CheckpointTaskRequest{ContainerID: id})
	default:
		panic(fmt.Sprintf("daemonRuntime: %s", op))
	}
	if err != nil {
		st := status.Convert(err)
		return lifecycle.Answer{Code: st.Code(), Says: st.Message()}, lifecycle.Report{}
	}
	return a, rep
}

func processAnswer(p *tasktypes.Process) (lifecycle.Answer, lifecycle.Report) {
	a := lifecycle.Answer{Phase: lifecycle.PhaseOf(p.Status)}
	rep := lifecycle.Report{Pid: p.Pid}
	if a.Phase == lifecycle.Stopped {
		a.ExitStatus, rep.ExitedAt = int(p.ExitStatus), timeOf(p.ExitedAt)
	}
	return a, rep
}

// List is `ctr tasks ls`.
func (rt *daemonRuntime) List(ctx context.Context) (map[int]lifecycle.Listed, error) {
	r, err := rt.tasks.List(rt.ctx(ctx), &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, err
	}
	out := map[int]lifecycle.Listed{}
	for _, p := range r.Tasks {
		if i, ok := rt.index[p.ID]; ok {
			a, rep := processAnswer(p)
			out[i] = lifecycle.Listed{Answer: a, Report: rep}
		}
	}
	return out, nil
}

// noneLeft checks that the shims and Keeps of the runtime's containers are
// gone, and removes the containers.
func (rt *daemonRuntime) noneLeft(t *testing.T) {
	t.Helper()
	for _, id := range rt.ids {
		assertNoLeftovers(t, id)
		rt.d.mustCtr(t, rt.ns, "containers", "rm", id)
	}
}

// TestLifecycleRandom drives containerd's task API through random sequences
// of requests over four containers (a sleeper, an exiter, a broken one and
// one more) on both daemons. LIFECYCLE_SEED (the first sequence's seed),
// LIFECYCLE_SEQS (default 3) and LIFECYCLE_OPS (default 30) choose the
// sequences; a failure says how to replay it.
func TestLifecycleRandom(t *testing.T) {
	seed, seqs, ops := lifecycle.Settings(t, 3, 30)
	t.Logf("%s=%d, %d sequences of %d requests per daemon", lifecycle.EnvSeed, seed, seqs, ops)
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		images := importLifecycleImages(t, d, ns)
		for k := 0; k < seqs; k++ {
			s := seed + int64(k)
			t.Run(fmt.Sprintf("seed-%d", s), func(t *testing.T) {
				rng := rand.New(rand.NewSource(s))
				fixtures := lifecycle.Fixtures(rng, 4)
				m := lifecycle.New(fixtures...)
				seq := lifecycle.Generate(rng, m, ops, lifecycle.Requests)
				t.Logf("tasks %v", fixtures)
				rt := newDaemonRuntime(t, d, ns, images, fixtures)
				lifecycle.Run(t, rt, m, seq, lifecycle.Options{
					Replay: fmt.Sprintf("%s=%d %s=1 %s=%d go test ./test -run 'TestLifecycleRandom/%s/seed-%d$'",
						lifecycle.EnvSeed, s, lifecycle.EnvSeqs, lifecycle.EnvOps, ops, d.Name, s),
					Settle:  20 * time.Millisecond,
					Timeout: 60 * time.Second,
				})
				rt.noneLeft(t)
			})
		}
	})
}

// TestLifecycleWalk performs every request of the lifecycle table in every
// phase (lifecycle.Walk) through containerd, on both daemons.
func TestLifecycleWalk(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		m, ops := lifecycle.Walk()
		var fixtures []lifecycle.Fixture
		for _, task := range m.Tasks {
			fixtures = append(fixtures, task.Fixture)
		}
		rt := newDaemonRuntime(t, d, ns, importLifecycleImages(t, d, ns), fixtures)
		lifecycle.Run(t, rt, m, ops, lifecycle.Options{
			Replay:  "go test ./test -run 'TestLifecycleWalk/" + d.Name + "$'",
			Settle:  20 * time.Millisecond,
			Timeout: 60 * time.Second,
		})
		rt.noneLeft(t)
	})
}
