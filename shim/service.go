package shim

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/version"
)

// TopicAttestation is the topic of the event a Keep's attestation is
// published on; its payload is a containerd.events.ContainerUpdate carrying
// the enarx.dev/* labels.
const TopicAttestation = "/enarx/attestation"

// maxLabelSize is containerd's limit on a label's key and value together.
const maxLabelSize = 4096

// service is the task API: the one place where containerd's requests are
// translated into operations on tasks and their Keeps.
type service struct {
	ns     string
	events *publisher
	// daemon labels containers and reads their images (*daemon when
	// serving containerd).
	daemon containerdAPI
	// exe runs Keeps (empty: this executable).
	exe string
	// onEmpty is called by Shutdown when no task is left, before Shutdown
	// answers: it must return at once and stop the server a little later.
	onEmpty func()

	mu    sync.Mutex
	tasks map[string]*task
	// creating holds IDs whose Create is in progress.
	creating map[string]bool
	// created is set by the first successful Create.
	created bool
	// ahead is the Keep started as the server started, until a Create
	// takes it (see startAhead).
	ahead *aheadKeep
	// shape is the options of the last Keep started ahead, which a spare
	// server's spare Keep is started with (startSpareKeep); spare is that
	// Keep until a claim adopts or discards it.
	shape *host.StartOptions
	spare *spareKeep
	// lastModule is the module the spare Keep preloads (preloadHint.next).
	// lastSteward is the Steward of the last Keep ready (servedOne: there
	// was one): a Keep started ahead guesses the next one's is the same
	// (startAhead).
	lastModule  preloadHint
	lastSteward *nodepolicy.Steward
	servedOne   bool
	// lastProfile is what the last Keep that ended reported of its run's
	// pages, which the next Keep's config carries (keep.Config.Populate):
	// a Keep of the same module then makes them present before its run.
	lastProfile *keep.PageProfile
	// discards are spare Keeps being discarded beside a claim's start.
	discards sync.WaitGroup
}

var _ taskapi.TTRPCTaskService = (*service)(nil)

func newService(ns string, events *publisher, d containerdAPI, onEmpty func()) *service {
	return &service{
		ns:       ns,
		events:   events,
		daemon:   d,
		onEmpty:  onEmpty,
		tasks:    map[string]*task{},
		creating: map[string]bool{},
	}
}

// toGRPC gives an error the status code of the errdefs class it wraps.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(err)
}

// unsupported answers a request the enarx runtime refuses for every task:
// NotImplemented, or NotFound when there is no task id, as every request
// naming a task answers then (a deleted task never answers as if it were
// there).
func (s *service) unsupported(id, what, hint string) error {
	if _, err := s.get(id, ""); err != nil {
		return err
	}
	return errgrpc.ToGRPC(fmt.Errorf("%s is not supported by the enarx runtime: %s: %w", what, hint, errdefs.ErrNotImplemented))
}

// maxIDLength is containerd's bound on the length of a container ID
// (pkg/identifiers): a longer one did not come from containerd.
const maxIDLength = 76

// shortID quotes a task ID from a request for a message, cut to a length
// no real ID exceeds.
func shortID(id string) string {
	switch {
	case id == "":
		return `""`
	case len(id) > maxIDLength:
		return fmt.Sprintf("%q... (%d bytes)", id[:maxIDLength], len(id))
	}
	return id
}

func (s *service) get(id, execID string) (*task, error) {
	if execID != "" && execID != id {
		return nil, errgrpc.ToGRPC(fmt.Errorf("exec process %q of task %s: exec is not supported by the enarx runtime: %w", execID, id, errdefs.ErrNotFound))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, errgrpc.ToGRPC(fmt.Errorf("task %s: %w", shortID(id), errdefs.ErrNotFound))
	}
	return t, nil
}

func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	// Never answer NotImplemented here: containerd 2.x takes it as a reason
	// to retry with an older task API.
	if r.Terminal {
		return nil, toGRPC(fmt.Errorf("task %s: a terminal (ctr run -t, docker run -t) is not supported by the enarx runtime: run without -t; stdin, stdout and stderr work as pipes: %w", r.ID, errdefs.ErrInvalidArgument))
	}
	if r.Checkpoint != "" {
		return nil, toGRPC(fmt.Errorf("task %s: restoring a checkpoint is not supported by the enarx runtime: %w", r.ID, errdefs.ErrInvalidArgument))
	}
	// containerd sends an ID and the absolute path of the bundle it made;
	// anything else did not come from containerd.
	if r.ID == "" || len(r.ID) > maxIDLength || !filepath.IsAbs(r.Bundle) {
		return nil, toGRPC(fmt.Errorf("task %s: bundle %q: a task needs an ID of at most %d characters and the absolute path of its bundle, as containerd gives them: %w", shortID(r.ID), r.Bundle, maxIDLength, errdefs.ErrInvalidArgument))
	}
	s.mu.Lock()
	if _, ok := s.tasks[r.ID]; ok || s.creating[r.ID] {
		s.mu.Unlock()
		return nil, toGRPC(fmt.Errorf("task %s: %w", r.ID, errdefs.ErrAlreadyExists))
	}
	s.creating[r.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.creating, r.ID)
		s.mu.Unlock()
	}()

	t, err := s.create(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", r.ID).Error("create task")
		return nil, toGRPC(err)
	}
	t.announce = sync.OnceValue(func() error { return s.announceAttestation(t) })
	s.mu.Lock()
	s.tasks[r.ID] = t
	s.created = true
	s.mu.Unlock()

	pid := uint32(t.proc.Pid())
	s.events.Publish(ctx, s.ns, TopicTaskCreate, &eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint:  r.Checkpoint,
		Pid:         pid,
	})
	// The labels may still be on their way to containerd: published
	// beside Create's answer and Start's request (Start waits for them).
	go func() { _ = t.announce() }()
	// Only now: a Keep that has already died must not be reported exited
	// before it is reported created.
	go s.watch(t)
	return &taskapi.CreateTaskResponse{Pid: pid}, nil
}

// create builds a task the way containerd's runc shim builds a container
// (runc.NewContainer): the root filesystem mounted, the workload resolved,
// the Keep planned (planKeep) and started, its attestation published. One
// deferred rollback undoes whatever was done when a step fails.
func (s *service) create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *task, err error) {
	began := time.Now()
	s.daemon.Warm() // the labels need the connection once the Keep is ready
	bundle := oci.Bundle{Dir: r.Bundle}
	t := newTask(r.ID, bundle, r.Stdin, r.Stdout, r.Stderr)
	spec, err := bundle.Spec()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	if isSandbox(spec) {
		// A pod's sandbox runs no Keep, and needs no rootfs: a process
		// that holds the pod's namespaces for its Keeps to join.
		sandbox, err := host.StartSandbox(ctx, host.SandboxOptions{Executable: s.exe, ID: r.ID, Spec: spec})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
		}
		t.proc = sandbox
		if err := recordPID(bundle, sandbox.Pid()); err != nil {
			_ = sandbox.Signal(syscall.SIGKILL)
			<-sandbox.Done()
			return nil, err
		}
		log.G(ctx).WithField("id", r.ID).WithField("pod", spec.Annotations[annotationSandboxID]).WithField("pid", sandbox.Pid()).Info("pod sandbox ready")
		return t, nil
	}
	defer func() {
		if err != nil {
			if t.keep != nil {
				_ = t.proc.Signal(syscall.SIGKILL)
				<-t.proc.Done()
			}
			t.cleanup(ctx)
		}
	}()
	// The Keep started ahead, when it was started for this container, is
	// the one Create hands its config (host.Start checks that it is): it
	// goes on starting while the root filesystem is mounted, the workload
	// resolved and the stdio opened. Whatever fails before discards it.
	ahead := s.aheadFor(ctx, r.ID)
	defer func() { s.takeAhead(ahead).Discard(ctx) }()
	// The Keep's cgroup is made meanwhile, unless the Keep started ahead
	// from the same spec makes it (host.Start makes it when that Keep is
	// not the one).
	var pending *host.PendingCgroup
	if path, res := keepCgroup(spec); path != "" && ahead == nil {
		pending = host.MakeCgroup(path, res)
		defer func() {
			if pending != nil {
				pending.Discard() // Create failed before host.Start took it
			}
		}()
	}
	if err := t.mountRootfs(r.Rootfs, bundle.Rootfs(spec)); err != nil {
		return nil, err
	}
	wl, err := oci.Resolve(ctx, bundle.Dir, spec, s.daemon.Image(s.ns, r.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	policy, err := policyFromOptions(r.Options)
	if err != nil {
		return nil, fmt.Errorf("task %s: %w: %w", r.ID, err, errdefs.ErrInvalidArgument)
	}
	opts, err := planKeep(keepPlan{id: r.ID, bundle: bundle, spec: spec, policy: policy, workload: wl, available: keep.Available})
	if err != nil {
		return nil, err
	}
	if dir := opts.Config.StateDir; dir != "" {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("task %s: keep state directory: %w", r.ID, err)
		}
	}
	if t.io, err = openStdio(ctx, s.ns, r.ID, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return nil, fmt.Errorf("task %s: %w", r.ID, err)
	}
	opts.Executable, opts.Stdio = s.exe, t.io.keep
	s.mu.Lock()
	opts.Config.Populate = s.lastProfile
	s.mu.Unlock()
	steward := ""
	if opts.Config.Steward != nil {
		steward = opts.Config.Steward.URL
	}
	// The attestation is published while the Keep confines itself, from
	// what it prepared before: neither waits for the other. A Create that
	// fails after takes the labels back.
	published := make(chan publishedAttestation, 1)
	var prepared atomic.Bool
	opts.Prepared = func(ready keep.Ready) {
		prepared.Store(true)
		go func() {
			began := time.Now()
			update, err := s.publishAttestation(context.WithoutCancel(ctx), r.ID, bundle, steward, ready)
			published <- publishedAttestation{update, err, time.Since(began)}
		}()
	}
	defer func() {
		if err == nil || t.attestation == nil {
			return
		}
		if p := <-t.attestation; p.update != nil {
			s.unpublishAttestation(ctx, r.ID, p.update)
		}
	}()
	opts.PendingCgroup, pending = pending, nil // host.Start's now
	opts.Ahead, ahead = s.takeAhead(ahead), nil
	keepBegan := time.Now()
	proc, err := host.Start(ctx, opts)
	t.io.closeKeepSide()
	if proc != nil {
		// From here on, a failure kills and reaps the Keep (the rollback).
		t.keep, t.proc, t.cgroup = proc, proc, proc.Cgroup()
	}
	if prepared.Load() {
		t.attestation = published
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	if spec.Hooks != nil {
		t.hooks = *spec.Hooks
	}
	t.annotations = spec.Annotations
	// The hooks of the runtime's namespaces at create (prestart is
	// createRuntime's deprecated twin); the Keep ran createContainer.
	if err := t.runHooks(ctx, "prestart", t.hooks.Prestart, specs.StateCreated); err != nil {
		return nil, fmt.Errorf("task %s: %w: %w", r.ID, err, errdefs.ErrFailedPrecondition)
	}
	if err := t.runHooks(ctx, "createRuntime", t.hooks.CreateRuntime, specs.StateCreated); err != nil {
		return nil, fmt.Errorf("task %s: %w: %w", r.ID, err, errdefs.ErrFailedPrecondition)
	}
	if err := recordPID(bundle, t.proc.Pid()); err != nil {
		return nil, err
	}
	ready := t.keep.Ready()
	keepTook := time.Since(keepBegan)
	s.mu.Lock()
	s.lastModule = s.lastModule.next(ready, opts.Config.ModuleCache)
	s.lastSteward, s.servedOne = opts.Config.Steward, true
	s.mu.Unlock()
	if !prepared.Load() {
		// A Keep that did not confine itself published nothing before.
		labelsBegan := time.Now()
		update, err := s.publishAttestation(ctx, r.ID, bundle, steward, ready)
		if err != nil {
			return nil, err
		}
		published <- publishedAttestation{update: update, took: time.Since(labelsBegan)}
		t.attestation = published
	}
	log.G(ctx).WithField("id", r.ID).WithField("pid", t.proc.Pid()).WithField("workload", ready.WorkloadDigest).
		WithField("tee", ready.TEE).WithField("attest", ready.AttestTime.Round(time.Microsecond)).WithField("compile", ready.CompileTime.Round(time.Microsecond)).WithField("cache", ready.ModuleCache).
		WithField("confine", ready.ConfineTime.Round(time.Microsecond)).
		WithField("keep", keepTook.Round(time.Microsecond)).
		WithField("create", time.Since(began).Round(time.Microsecond)).Info("keep ready")
	return t, nil
}

// recordPID records the PID of the task's process in its bundle, for
// `shim delete` to kill it by if the shim is gone.
func recordPID(bundle oci.Bundle, pid int) error {
	if err := os.WriteFile(bundle.KeepPID(), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", bundle.KeepPID(), err)
	}
	return nil
}

// mountRootfs mounts the task's root filesystem at rootfs when containerd
// gave mounts for it. It records the mount, in the task (t.rootfs) and in
// the bundle for `shim delete`, before mounting: cleanup unmounts only what
// the shim mounted, never a root filesystem that was there before (Docker
// mounts its own and gives no mounts; so does `ctr run --rootfs DIR`).
func (t *task) mountRootfs(mounts []*types.Mount, rootfs string) error {
	if len(mounts) == 0 {
		return nil
	}
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return fmt.Errorf("create rootfs mount point: %w", err)
	}
	if err := os.WriteFile(t.bundle.RootfsMount(), []byte(rootfs), 0o600); err != nil {
		return fmt.Errorf("record the rootfs mount of %s: %w", t.id, err)
	}
	// From here on the rollback unmounts whatever of it was mounted.
	t.rootfs = rootfs
	if err := mount.All(mount.FromProto(mounts), rootfs); err != nil {
		return fmt.Errorf("mount rootfs of %s: %w", t.id, err)
	}
	return nil
}

// mountedRootfs is where the bundle records that the shim mounted the root
// filesystem, "" when it mounted none.
func mountedRootfs(bundle oci.Bundle) string {
	b, err := os.ReadFile(bundle.RootfsMount())
	if err != nil {
		return ""
	}
	return string(b)
}

// publishAttestation makes a ready Keep's attestation visible: the evidence
// as a file in the bundle and the enarx.dev/* labels on the container
// (`ctr containers info`). It returns the /enarx/attestation event that
// Create publishes after the task's create event (`ctr events`).
func (s *service) publishAttestation(ctx context.Context, id string, bundle oci.Bundle, steward string, ready keep.Ready) (*eventstypes.ContainerUpdate, error) {
	evidencePath := bundle.Evidence()
	if err := os.WriteFile(evidencePath, ready.Evidence, 0o644); err != nil {
		return nil, fmt.Errorf("write evidence: %w", err)
	}
	labels := map[string]string{
		enarxdev.LabelTEE:            ready.TEE,
		enarxdev.LabelBackend:        ready.Backend,
		enarxdev.LabelAttestation:    attestationLabel(ready),
		enarxdev.LabelRuntimeVersion: ready.RuntimeVersion,
		enarxdev.LabelRuntimeDigest:  ready.RuntimeDigest,
		enarxdev.LabelWorkloadDigest: ready.WorkloadDigest,
		enarxdev.LabelEvidenceDigest: ready.EvidenceDigest,
		enarxdev.LabelEvidencePath:   evidencePath,
		enarxdev.LabelEngine:         ready.Engine,
	}
	if ready.TEEVersion != "" {
		labels[enarxdev.LabelTEEVersion] = ready.TEEVersion
	}
	if ready.Certificate != "" {
		if err := certificateLabels(labels, ready.Certificate); err != nil {
			return nil, err
		}
		labels[enarxdev.LabelCertificatePath] = filepath.Join(bundle.KeepStateDir(), keep.CertificateFile)
		labels[enarxdev.LabelSteward] = steward
	}
	if len(ready.Sockets) > 0 {
		labels[enarxdev.LabelSockets] = strings.Join(ready.Sockets, ", ")
	}
	if ready.TLSIdentity != "" {
		labels[enarxdev.LabelTLSIdentity] = ready.TLSIdentity
	}
	for k, v := range labels {
		// containerd refuses a label over 4096 bytes; ours are short, but a
		// TEE version comes from the hardware report.
		if len(k)+len(v) > maxLabelSize {
			return nil, fmt.Errorf("label %s is %d bytes, over containerd's %d", k, len(k)+len(v), maxLabelSize)
		}
	}
	if err := s.daemon.SetLabels(ctx, s.ns, id, labels); err != nil {
		return nil, fmt.Errorf("publish attestation labels: %w", err)
	}
	// A containerd event type, so that every containerd and ctr decodes it:
	// the attestation is exactly the labels just set on the container.
	return &eventstypes.ContainerUpdate{ID: id, Labels: labels}, nil
}

// announceAttestation waits until the labels of t's Keep are published
// (Create started it as the Keep confined itself) and sends
// the /enarx/attestation event. Its error, the labels', fails Start.
func (s *service) announceAttestation(t *task) error {
	if t.attestation == nil {
		return nil
	}
	began := time.Now()
	p := <-t.attestation
	log.L.WithField("id", t.id).WithField("labels", p.took.Round(time.Microsecond)).WithField("waited", time.Since(began).Round(time.Microsecond)).Debug("attestation published")
	if p.err != nil {
		return p.err
	}
	if p.update != nil {
		s.events.Publish(context.Background(), s.ns, TopicAttestation, p.update)
	}
	return nil
}

// publishedAttestation is what publishing a Keep's attestation gave.
type publishedAttestation struct {
	update *eventstypes.ContainerUpdate
	err    error
	took   time.Duration
}

// unpublishAttestation takes back the labels of a Keep whose task was not
// created: they would describe a Keep that does not run.
func (s *service) unpublishAttestation(ctx context.Context, id string, update *eventstypes.ContainerUpdate) {
	removed := make(map[string]string, len(update.Labels))
	for k := range update.Labels {
		removed[k] = "" // containerd removes a label set to ""
	}
	if err := s.daemon.SetLabels(context.WithoutCancel(ctx), s.ns, id, removed); err != nil {
		log.G(ctx).WithError(err).WithField("id", id).Warn("remove the attestation labels of a task that was not created")
	}
}

// certificateLabels adds the labels of the Keep's certificate, the first in
// the PEM chain the Keep reported.
func certificateLabels(labels map[string]string, chain string) error {
	block, _ := pem.Decode([]byte(chain))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("the Keep reported a certificate chain that is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("the Keep's certificate: %w", err)
	}
	labels[enarxdev.LabelCertificateSerial] = hex.EncodeToString(cert.SerialNumber.Bytes())
	labels[enarxdev.LabelCertificateNotAfter] = cert.NotAfter.UTC().Format(time.RFC3339)
	labels[enarxdev.LabelCertificateIssuer] = cert.Issuer.String()
	return nil
}

// attestationLabel is "none" for a Keep without a TEE.
func attestationLabel(r keep.Ready) string {
	if r.TEE == attestation.TEENone {
		return "none"
	}
	return "ok"
}

// cleanup removes what Create made: the mounted root filesystem, the
// files Create added to the bundle, and the Keep's cgroup. It reports
// whether all of it is gone; what is not is logged.
func (t *task) cleanup(ctx context.Context) bool {
	if t.io != nil {
		t.io.closeKeepSide()
		t.io.closeStdin()
		t.io.closeHeld()
		t.io.closeLogger()
	}
	clean := true
	if err := t.unmountRootfs(); err != nil {
		log.G(ctx).WithError(err).WithField("rootfs", t.rootfs).Warn("unmount rootfs")
		clean = false
	}
	if err := t.bundle.Clean(); err != nil {
		log.G(ctx).WithError(err).Warn("clean bundle")
		clean = false
	}
	return t.removeCgroup(ctx) && clean
}

// unmountRootfs unmounts the root filesystem the shim mounted, if any, once:
// a second call, or one while the first runs, waits for the first and
// returns its error.
func (t *task) unmountRootfs() error {
	t.mu.Lock()
	if t.unmount == nil {
		rootfs := t.rootfs
		t.unmount = sync.OnceValue(func() error {
			if rootfs == "" {
				return nil
			}
			return mount.UnmountAll(rootfs, 0)
		})
	}
	unmount := t.unmount
	t.mu.Unlock()
	return unmount()
}

// keepProfile keeps what the Keep k, which has ended, reported of its
// run's pages, for the next Keep's config.
func (s *service) keepProfile(k *host.Process) {
	if p := k.Profile(); p != nil {
		s.mu.Lock()
		s.lastProfile = p
		s.mu.Unlock()
	}
}

// watch records the Keep's exit once and publishes it, after an OOM event
// when the kernel killed the Keep for want of memory in its cgroup, or the
// Keep ended because its workload needed more than the container's limit
// (the CRI plugin then reports the container OOMKilled, Docker OOMKilled).
func (s *service) watch(t *task) {
	<-t.proc.Done()
	status, at := t.proc.Status()
	if t.keep != nil {
		// Kept for the next Keep once the Keep's last message is read,
		// beside what follows.
		go s.keepProfile(t.keep)
		// For `shim delete`, should the shim die before the task is deleted.
		if err := writeExitRecord(t.bundle, status, at); err != nil {
			log.G(context.Background()).WithError(err).WithField("id", t.id).Warn("record the exit status of a Keep")
		}
	}
	if status == 128+int(syscall.SIGKILL) {
		switch {
		case t.keep != nil && t.keep.OutOfMemory():
			// The workload needed more memory than its limit: reported as
			// the kernel's OOM kill is, so that Docker and Kubernetes say
			// OOMKilled.
			log.L.WithField("id", t.id).Warn("keep ended: its workload needed more memory than the container's limit")
			s.events.Publish(context.Background(), s.ns, TopicTaskOOM, &eventstypes.TaskOOM{ContainerID: t.id})
		case t.cgroup != nil:
			if killed, err := t.cgroup.OOMKilled(); err == nil && killed {
				log.L.WithField("id", t.id).WithField("cgroup", t.cgroup.Path()).Warn("keep killed by the kernel for want of memory within its cgroup's limit")
				s.events.Publish(context.Background(), s.ns, TopicTaskOOM, &eventstypes.TaskOOM{ContainerID: t.id})
			}
		}
	}
	if t.exited() {
		s.events.Publish(context.Background(), s.ns, TopicTaskExit, &eventstypes.TaskExit{
			ContainerID: t.id,
			ID:          t.id,
			Pid:         uint32(t.proc.Pid()),
			ExitStatus:  uint32(status),
			ExitedAt:    timestamppb.New(at),
		})
		if t.keep != nil {
			// Nothing uses the root filesystem of a stopped task: its
			// Keep is gone, and a task never runs again. Its unmount,
			// which syncs the overlay's upper layer (3-4 ms on the CI
			// machine class), is done while containerd and its client
			// answer the exit, rather than in Delete, which waits for it.
			go func() { _ = t.unmountRootfs() }()
		}
	}
	close(t.reaped)
}

func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if t.announce != nil {
		// A task starts with its attestation published: its labels set,
		// its /enarx/attestation event sent.
		if err := t.announce(); err != nil {
			return nil, toGRPC(fmt.Errorf("task %s: %w: %w", t.id, err, errdefs.ErrFailedPrecondition))
		}
	}
	pid := uint32(t.proc.Pid())
	err = t.start(func() {
		s.events.Publish(ctx, s.ns, TopicTaskStart, &eventstypes.TaskStart{ContainerID: t.id, Pid: pid})
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	if err := t.runHooks(ctx, "poststart", t.hooks.Poststart, specs.StateRunning); err != nil {
		log.G(ctx).WithError(err).WithField("id", t.id).Warn("poststart hook failed")
	}
	return &taskapi.StartResponse{Pid: pid}, nil
}

func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st := t.current()
	resp := &taskapi.StateResponse{
		ID:     t.id,
		Bundle: t.bundle.Dir,
		Pid:    uint32(t.proc.Pid()),
		Status: st.status(),
		Stdin:  t.stdin,
		Stdout: t.stdout,
		Stderr: t.stderr,
		ExecID: r.ExecID,
	}
	if st == stateStopped {
		status, at := t.proc.Status()
		resp.ExitStatus, resp.ExitedAt = uint32(status), timestamppb.New(at)
	}
	return resp, nil
}

func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.reaped:
	case <-ctx.Done():
		return nil, toGRPC(ctx.Err())
	}
	status, at := t.proc.Status()
	return &taskapi.WaitResponse{ExitStatus: uint32(status), ExitedAt: timestamppb.New(at)}, nil
}

func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := t.kill(syscall.Signal(r.Signal)); err != nil {
		return nil, toGRPC(err)
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := t.markDeleted(); err != nil {
		return nil, toGRPC(err)
	}
	began := time.Now()
	if t.cleanup(ctx) {
		// `shim delete`, which containerd runs once this server is
		// gone, has nothing left to do (launcher.Delete).
		if err := t.bundle.MarkCleaned(); err != nil {
			log.G(ctx).WithError(err).WithField("id", t.id).Warn("record the task's bundle cleaned")
		}
	}
	log.G(ctx).WithField("id", t.id).WithField("cleanup", time.Since(began).Round(time.Microsecond)).Debug("task deleted")
	if err := t.runHooks(ctx, "poststop", t.hooks.Poststop, specs.StateStopped); err != nil {
		log.G(ctx).WithError(err).WithField("id", t.id).Warn("poststop hook failed")
	}
	s.mu.Lock()
	delete(s.tasks, t.id)
	s.mu.Unlock()

	status, at := t.proc.Status()
	pid := uint32(t.proc.Pid())
	s.events.Publish(ctx, s.ns, TopicTaskDelete, &eventstypes.TaskDelete{
		ContainerID: t.id,
		ID:          t.id,
		Pid:         pid,
		ExitStatus:  uint32(status),
		ExitedAt:    timestamppb.New(at),
	})
	return &taskapi.DeleteResponse{Pid: pid, ExitStatus: uint32(status), ExitedAt: timestamppb.New(at)}, nil
}

func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	// A stopped task has no process, but it is no empty shell either:
	// containerd 2.x, when it restarts, reaps (deletes) every task whose
	// shim lists no process, taking it for a shim whose task was never
	// created, and a task that exited while containerd was down would lose
	// its exit status (runc's shim loses it so). So a stopped task's
	// processes are an error, which containerd leaves alone, and the
	// status stays for Delete.
	if st := t.current(); st == stateStopped || st == stateDeleted {
		return nil, toGRPC(fmt.Errorf("task %s has stopped: it has no processes: %w", t.id, errdefs.ErrFailedPrecondition))
	}
	return &taskapi.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: uint32(t.proc.Pid())}}}, nil
}

func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: version.Version}
	s.mu.Lock()
	t, ok := s.tasks[r.ID]
	s.mu.Unlock()
	if ok {
		resp.TaskPid = uint32(t.proc.Pid())
	}
	return resp, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		t.io.closeIO()
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	if s.empty() && s.onEmpty != nil {
		s.onEmpty()
	}
	return &emptypb.Empty{}, nil
}

func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "pause", "a Keep cannot be frozen; stop it with kill")
}

func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "resume", "a Keep cannot be frozen, so there is nothing to resume")
}

func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "checkpoint", "a Keep's memory is not exported from its TEE")
}

func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "exec", "a Keep runs one WebAssembly workload and has no shell to exec into")
}

func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "resizing a terminal", "Keeps have no terminal")
}

func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, s.unsupported(r.ID, "updating resources of a running task", "set limits in the container spec before it starts")
}

// empty reports whether the service has no task and none being created.
func (s *service) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks) == 0 && len(s.creating) == 0
}

// retired forgets the group the server served, which has no task left:
// the server is the spare (see lifecycle), and a claim starts its count of
// tasks created again.
func (s *service) retired(ctx context.Context) {
	s.discardAhead(ctx)
	s.mu.Lock()
	s.created = false
	s.mu.Unlock()
	s.startSpareKeep(ctx)
}

// everCreated reports whether a task was ever created or is being created
// since the server started or was claimed.
func (s *service) everCreated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created || len(s.creating) > 0
}
