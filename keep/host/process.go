// Package host is the shim's end of a Keep (package keep has the protocol):
// Start executes the Keep process in its cgroup and namespaces, hands it its
// Config and drives it through ready → run → exit (Process); StartAhead
// starts one before its container's Create; StartSandbox starts what holds
// a pod's namespaces. It links no engine, no TEE report and no seccomp
// assembler: the shim, which containerd executes for every container, is
// all that links it.
package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/proc"
)

// IsProcessOf reports whether pid is the Keep process of container id, as
// Start executes it ("<exe> keep -id ID"), so that a recycled PID is never
// taken for a Keep.
func IsProcessOf(pid int, id string) bool {
	if id == "" {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return len(args) >= 4 && args[1] == keep.Subcommand && args[2] == "-id" && args[3] == id
}

// child is the process of a Keep or a pod's sandbox, which the shim reaps.
// Process and Sandbox offer its Pid, Signal, Done and Status, and not
// its command, which only its reaper may wait for.
type child struct{ proc *proc.Child }

// Pid is the process's PID.
func (c *child) Pid() int { return c.proc.Pid() }

// Signal sends sig to the process. It returns os.ErrProcessDone once the
// process has exited.
func (c *child) Signal(sig syscall.Signal) error { return c.proc.Signal(sig) }

// Done is closed when the process has exited and been reaped.
func (c *child) Done() <-chan struct{} { return c.proc.Done() }

// Status returns the exit status and time; valid once Done is closed.
func (c *child) Status() (int, time.Time) { return c.proc.Status() }

// Stdio are the files a workload gets as stdin, stdout and stderr. Nil
// means /dev/null.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// StartOptions say how to start a Keep process.
type StartOptions struct {
	// Prepared, when not nil, is called with what a Keep that confines
	// itself reports before it does (all of Ready but ConfineTime), on the
	// goroutine that reads the Keep's answers: it must not block. Start
	// still returns only once the Keep is ready, or has failed.
	Prepared func(keep.Ready)
	// Executable is the binary that runs Keeps when given Subcommand as its
	// first argument (the shim passes Binary beside itself). Empty means the
	// running executable.
	Executable string
	// Dir is the Keep's working directory (the bundle).
	Dir string
	// Config is the workload.
	Config keep.Config
	// Stdio is the workload's standard I/O.
	Stdio Stdio
	// Cgroup is the control group the Keep is placed in as soon as it
	// starts, before it compiles its module: the OCI spec's
	// linux.cgroupsPath. Empty means the Keep stays in the caller's.
	Cgroup string
	// PendingCgroup, when not nil, is Cgroup with Resources, being made
	// already (MakeCgroup); Start takes it over, or removes it when it
	// fails before.
	PendingCgroup *PendingCgroup
	// Resources are the OCI spec's linux.resources, applied to Cgroup
	// (see NewCgroup for what is applied when). Nil means none.
	Resources *specs.LinuxResources
	// CompileMemory is the kernel's memory limit of Cgroup, in bytes,
	// until the workload runs (the node policy's compile_memory_limit,
	// Policy.CompileMemory): compiling a module is the Keep's work, not
	// the workload's, and a module can be made to take GBs of the
	// compiler. Run replaces it with the container's limit, or lifts it.
	// 0 means none.
	CompileMemory int64
	// Ahead, when not nil, is the Keep StartAhead started for this
	// container: Start takes it when it was started for these options, and
	// stops it otherwise.
	Ahead *Ahead
	// NewNetNS makes the Keep in its container's new network namespace
	// (keep.NewNetNSFlag), for a config that allows it
	// (keep.Config.MadeInNewNetNS): Start does for a Keep it executes; a
	// Keep started ahead or spare, whose Steward is not known yet, only
	// when its caller guesses so. A Keep not made so makes the namespace
	// itself, for any config.
	NewNetNS bool
	// Preload, for a spare Keep (StartSpare), is the digest of the module
	// its container will likely run, whose precompiled code it loads from
	// Config.ModuleCache while it waits (keep.PreloadFlag).
	Preload string
}

// MemoryHeadroom is what the kernel's memory limit of a Keep's cgroup adds
// to the container's limit and to what the Keep itself used until its
// workload starts (see Process.Run). The Keep's Go runtime, WASI buffers
// and a trap's report need it while the workload's linear memory is at its
// cap.
const MemoryHeadroom = 32 << 20

// Process is a Keep process seen from the shim.
type Process struct {
	ctl   net.Conn
	dec   *json.Decoder
	ready keep.Ready
	// ctlMu serialises requests after ready (Run, Attest).
	ctlMu sync.Mutex
	// cgroup is the Keep's control group, nil when it has none; memory
	// is the container's memory limits, applied to it by Run.
	cgroup *cgroup.Cgroup
	memory *specs.LinuxMemory
	// compileMemory is the limit Start set on cgroup, 0 for none.
	compileMemory int64

	child
	// reason is the read end of the Keep's reason pipe (see ReasonFD),
	// read once it has exited: oom is what it said (OutOfMemory).
	reason *os.File
	oom    bool
	// readyRead is closed once Start has read the Keep's first answer (or
	// will not): wait closes the control socket only then, so that a Keep
	// that answers and exits at once never loses its answer.
	readyRead chan struct{}
	readOnce  sync.Once
	// profile is what the Keep reported of its run's pages
	// (keep.Response.Touched), read under ctlMu; profileRead is closed
	// once the Keep has exited and all it sent is read.
	profile     *keep.PageProfile
	profileRead chan struct{}
}

// Start executes a Keep process and waits until it reports ready: the module
// is compiled and attested, and the workload waits for Run. A Keep that cannot
// get ready is stopped, its cgroup removed, and its reason returned.
//
// With opts.Ahead, a Keep started for the same container before its Create
// (StartAhead), Start hands that one its stdio, root filesystem and config
// instead of executing another; one started for other options is stopped
// first.
func Start(ctx context.Context, opts StartOptions) (_ *Process, err error) {
	// Start owns a pending cgroup from here: it takes it (and then removes
	// it with the rest when it fails), or removes it.
	if pending := opts.PendingCgroup; pending != nil {
		defer func() {
			if !pending.taken {
				pending.Discard()
			}
		}()
	}
	id := opts.Config.ID
	if err := opts.Config.Validate(); err != nil {
		opts.Ahead.Discard(ctx)
		return nil, err
	}
	began := time.Now()
	var p *Process
	ahead := opts.Ahead.take(ctx, opts)
	if ahead != nil {
		p = ahead
	} else {
		opts.NewNetNS = opts.Config.MadeInNewNetNS()
		if p, err = spawn(ctx, opts, false); err != nil {
			return nil, err
		}
	}
	// One rollback for every failure below: the Keep killed and reaped,
	// the control socket closed, the cgroup removed.
	defer func() {
		if err != nil {
			p.abandon(ctx, id)
		}
	}()
	if ahead != nil {
		if err := p.handOver(opts); err != nil {
			return nil, fmt.Errorf("keep %s: %w", id, err)
		}
	}
	started := time.Now()
	if err := p.sendConfig(opts.Config); err != nil {
		if exitedEarly(err) {
			status, _ := p.Status()
			return nil, fmt.Errorf("keep %s exited with status %d before it read its config: is %s the enarx runtime?", id, status, p.proc.Cmd.Path)
		}
		return nil, fmt.Errorf("keep %s: send config: %w", id, err)
	}
	if err := p.awaitReady(ctx, opts.Prepared); err != nil {
		return nil, p.notReady(id, opts.Config.Module, err)
	}
	log.G(ctx).WithField("id", id).WithField("ahead", ahead != nil).WithField("exec", started.Sub(began)).
		WithField("ready", time.Since(started)).Debug("keep started")
	return p, nil
}

// spawn executes a Keep process for opts in its cgroup and namespaces. A
// Keep started ahead (StartAhead) gets no stdio (/dev/null until Start
// hands it the container's) and waits for them first; it must start in its
// cgroup, not be moved there, and takes no compile memory limit yet.
func spawn(ctx context.Context, opts StartOptions, ahead bool) (_ *Process, err error) {
	id := opts.Config.ID
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("keep %s: find runtime executable: %w", id, err)
		}
	}
	ctl, remote, err := keep.ControlSocket()
	if err != nil {
		return nil, fmt.Errorf("keep %s: control socket: %w", id, err)
	}
	defer remote.Close()
	reason, reasonW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("keep %s: reason pipe: %w", id, err)
	}
	defer reasonW.Close()
	p := &Process{ctl: ctl, dec: json.NewDecoder(ctl), child: child{proc.New(nil)}, readyRead: make(chan struct{}), reason: reason, profileRead: make(chan struct{})}
	if opts.Resources != nil {
		p.memory = opts.Resources.Memory
	}
	defer func() {
		if err != nil {
			p.abandon(ctx, id)
		}
	}()
	if opts.Cgroup != "" {
		// Made before the Keep starts, so that a cgroup that cannot be made
		// starts nothing.
		if ahead {
			opts.CompileMemory = 0 // set when Start hands it over
		}
		if err := p.makeCgroup(opts); err != nil {
			return nil, fmt.Errorf("keep %s: %w", id, err)
		}
	}

	args := []string{keep.Subcommand, "-id", id}
	if ahead {
		args = append(args, "-"+keep.AheadFlag)
	}
	if opts.NewNetNS {
		args = append(args, "-"+keep.NewNetNSFlag)
	}
	if id == keep.SpareID && opts.Preload != "" && opts.Config.ModuleCache != "" {
		args = append(args, "-"+keep.PreloadFlag, opts.Preload, "-"+keep.ModuleCacheFlag, opts.Config.ModuleCache)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = opts.Dir
	cmd.Env = keepEnv(os.Environ())
	if !ahead {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdio.Stdin, opts.Stdio.Stdout, opts.Stdio.Stderr
	}
	cmd.ExtraFiles = []*os.File{remote, reasonW}
	// The Keep must not take the shim's signals (a process group of its
	// own), and must not outlive the decision of containerd to delete it:
	// the shim kills it on Delete and shim cleanup kills it by PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if opts.NewNetNS {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	placement, prepare := cgroup.MoveAfterStart, confine.Prepare(nil)
	if p.cgroup != nil {
		// The Keep starts in its cgroup, limited and accounted from its
		// first instruction, without the move of a running process that
		// costs a kernel-wide lock (see cgroup.Placement).
		switch placement = p.cgroup.Placement(); placement {
		case cgroup.JoinThread:
			prepare = p.cgroup.JoinThread
		case cgroup.CloneInto:
			dir, err := p.cgroup.CloneInto(cmd.SysProcAttr)
			if err != nil {
				return nil, fmt.Errorf("keep %s: %w", id, err)
			}
			defer dir.Close()
		}
	}
	if ahead && placement == cgroup.MoveAfterStart && p.cgroup != nil {
		return nil, fmt.Errorf("keep %s: its cgroup %s cannot be joined at start (a systemd driver's): it is not started ahead", id, opts.Cgroup)
	}
	start := func() error { return confine.Start(cmd, nil, prepare) }
	if c := opts.Config.Container; c != nil {
		if mask, ok := c.StartBounding(); ok {
			cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%#x", confine.BoundingEnv, mask))
		}
		// A confined Keep starts in the container's namespaces, new or
		// joined, and mounts its view of the container in them
		// (confine.Enter).
		start = func() error { return c.Start(cmd, prepare) }
	}
	if err := start(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keep %s: start %s: %w (the runtime binary %s is installed beside the shim: make install, or the installer, puts both there)", id, exe, err, keep.Binary)
		}
		return nil, fmt.Errorf("keep %s: start %s: %w", id, exe, err)
	}
	// Only the Keep holds the other ends now: when it exits, reads see EOF
	// after whatever it sent.
	remote.Close()
	reasonW.Close()
	p.proc.Cmd = cmd
	go p.wait()

	// A Keep that could not start in its cgroup (a systemd driver's, made
	// by systemd with the Keep in it) waits for its config before it does
	// anything: in its cgroup by then, it is limited and accounted from its
	// first real work.
	if placement == cgroup.MoveAfterStart && p.cgroup != nil {
		if err := p.cgroup.Add(p.Pid()); err != nil {
			return nil, fmt.Errorf("keep %s: %w", id, err)
		}
	}
	return p, nil
}

// keepEnv is the environment of a Keep process, of the shim's env: only
// the runtime's own variables (ENARX_*) and the Go runtime's settings. A
// Keep's environment is not its workload's (that is in its config), and a
// workload that may read the Keep's /proc/PID/environ (a root one, as
// under runc it may read its own process's) must not find containerd's
// there.
func keepEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "ENARX_"),
			name == "GODEBUG", name == "GOGC", name == "GOMAXPROCS", name == "GOMEMLIMIT", name == "GOTRACEBACK", name == "GOCOVERDIR":
			out = append(out, kv)
		}
	}
	return append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// makeCgroup makes the Keep's cgroup, with the compile memory limit until
// the workload runs.
func (p *Process) makeCgroup(opts StartOptions) error {
	var cg *cgroup.Cgroup
	if pending := opts.PendingCgroup; pending != nil && pending.path == opts.Cgroup {
		<-pending.done
		if pending.err != nil {
			return pending.err
		}
		cg, pending.taken = pending.cg, true
	} else {
		var err error
		if cg, err = cgroup.New(opts.Cgroup, withKeepDevices(opts.Resources)); err != nil {
			return err
		}
	}
	p.cgroup = cg
	return p.limitCompileMemory(opts.CompileMemory)
}

// limitCompileMemory sets the kernel's memory limit of the Keep's cgroup
// until its workload runs (StartOptions.CompileMemory), when limit and the
// cgroup are not 0 and nil.
func (p *Process) limitCompileMemory(limit int64) error {
	if limit <= 0 || p.cgroup == nil {
		return nil
	}
	if err := p.cgroup.SetMemoryLimit(limit, 0); err != nil {
		return err
	}
	p.compileMemory = limit
	return nil
}

// PendingCgroup is a Keep's cgroup that MakeCgroup is making while the
// rest of its container's Create goes on (the root filesystem's mount, the
// workload's resolution, its stdio): making a cgroup in every v1 hierarchy
// takes 1-2 ms here. Start takes it over (StartOptions.PendingCgroup).
type PendingCgroup struct {
	path  string
	done  chan struct{}
	cg    *cgroup.Cgroup
	err   error
	taken bool
}

// MakeCgroup starts making the cgroup at path (an OCI linux.cgroupsPath)
// with res, as Start makes it (with the devices of the Keep itself), and
// returns at once. The caller gives it to Start, or Discards it.
func MakeCgroup(path string, res *specs.LinuxResources) *PendingCgroup {
	pc := &PendingCgroup{path: path, done: make(chan struct{})}
	go func() {
		defer close(pc.done)
		pc.cg, pc.err = cgroup.New(path, withKeepDevices(res))
	}()
	return pc
}

// Discard removes the cgroup once it is made: its container's Create
// failed before Start took it.
func (pc *PendingCgroup) Discard() {
	<-pc.done
	if pc.cg != nil {
		_ = pc.cg.Delete()
	}
}

// sendConfig hands the Keep its config. When it fails, nobody will read the
// Keep's answer; a Keep that has gone already is waited for a moment, so
// that its own status says why.
func (p *Process) sendConfig(cfg keep.Config) error {
	err := json.NewEncoder(p.ctl).Encode(keep.Request{Config: &cfg})
	if err != nil {
		p.doneReading()
		if exitedEarly(err) {
			select {
			case <-p.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return err
}

// awaitReady reads the Keep's first answer: ready, or why it cannot be,
// after what it prepared (given to prepared, when not nil).
func (p *Process) awaitReady(ctx context.Context, prepared func(keep.Ready)) error {
	answer := make(chan error, 1)
	go func() {
		defer p.doneReading()
		var resp keep.Response
		if err := p.dec.Decode(&resp); err != nil {
			answer <- err
			return
		}
		if resp.Prepared != nil {
			if prepared != nil {
				prepared(*resp.Prepared)
			}
			resp = keep.Response{}
			if err := p.dec.Decode(&resp); err != nil {
				answer <- err
				return
			}
		}
		if resp.Error != "" {
			answer <- errors.New(resp.Error)
			return
		}
		if resp.Ready == nil {
			answer <- errors.New("keep sent neither ready nor an error")
			return
		}
		p.ready = *resp.Ready
		answer <- nil
	}()
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for ready: %w", ctx.Err())
	}
}

// notReady is the error of a Keep that did not get ready because of err:
// the Keep's own reason, or how it ended. It kills the Keep first, to read
// its status and its cgroup's record of an OOM kill.
func (p *Process) notReady(id, module string, err error) error {
	p.kill()
	if !exitedEarly(err) {
		return fmt.Errorf("keep %s: %w", id, err)
	}
	status, _ := p.Status()
	if p.outOfCompileMemory() {
		return fmt.Errorf("keep %s was killed (status %d) for want of memory before it was ready: compiling module %s needed more than the %d bytes a Keep may use until its workload runs (node policy compile_memory_limit)",
			id, status, module, p.compileMemory)
	}
	return fmt.Errorf("keep %s exited with status %d before it was ready", id, status)
}

// doneReading says that nobody will read the Keep's first answer any more
// (see readyRead).
func (p *Process) doneReading() { p.readOnce.Do(func() { close(p.readyRead) }) }

// abandon undoes a Start that failed: the Keep, if it started, is killed
// and reaped (wait then closes the control socket), else the control socket
// is closed; the cgroup is removed.
func (p *Process) abandon(ctx context.Context, id string) {
	if p.proc.Cmd != nil {
		p.kill()
		p.doneReading()
	} else {
		p.ctl.Close()
		p.reason.Close()
		close(p.profileRead)
	}
	if p.cgroup != nil {
		if err := p.cgroup.Delete(); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("remove the cgroup of a Keep that did not start")
		}
	}
}

// exitedEarly reports whether err, from the control socket, means that the
// Keep closed it: it exited, or it is no Keep and never read its config.
func exitedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// wait reaps the process and records its status the way a shell does:
// exit(n) → n, killed by signal n → 128+n.
func (p *Process) wait() {
	p.proc.Reap(p.readReason)
	// The Keep's end is closed now, so reads see EOF after what it sent;
	// close ours once Start has read its answer, and the rest.
	go func() {
		<-p.readyRead
		p.readRest()
		p.ctl.Close()
		close(p.profileRead)
	}()
}

// restWait bounds how long readRest reads: the Keep has exited, so its end
// of the control socket is closed unless a process it started holds it.
const restWait = 100 * time.Millisecond

// readRest reads what an exited Keep sent after the answers that were read:
// the report of its run's pages (keep.Response.Touched).
func (p *Process) readRest() {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	_ = p.ctl.SetReadDeadline(time.Now().Add(restWait))
	for {
		var resp keep.Response
		if err := p.dec.Decode(&resp); err != nil {
			return
		}
		p.keepProfile(resp)
	}
}

// keepProfile keeps the report of the run's pages in resp, if it is one
// and a usable one (at most keep.MaxProfileRanges ranges), and says
// whether resp was such a report. The caller holds ctlMu.
func (p *Process) keepProfile(resp keep.Response) bool {
	if resp.Touched == nil {
		return false
	}
	if len(resp.Touched.Ranges) <= keep.MaxProfileRanges {
		p.profile = resp.Touched
	}
	return true
}

// Profile is what the Keep reported of its run's pages, for the next Keep
// of its module (keep.Config.Populate): nil when it sent nothing. It waits
// until the Keep has exited and its messages are read.
func (p *Process) Profile() *keep.PageProfile {
	<-p.profileRead
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	return p.profile
}

func (p *Process) kill() {
	_ = p.proc.Cmd.Process.Kill()
	<-p.Done()
}

// outOfCompileMemory reports whether the Keep, which has exited, was
// killed by the kernel at its compile memory limit: SIGKILL, and the
// cgroup records an OOM kill.
func (p *Process) outOfCompileMemory() bool {
	if p.compileMemory <= 0 {
		return false
	}
	if status, _ := p.Status(); status != 128+int(syscall.SIGKILL) {
		return false
	}
	killed, err := p.cgroup.OOMKilled()
	return err == nil && killed
}

// Pid is the Keep's process ID.

// Ready is what the Keep reported when it got ready.
func (p *Process) Ready() keep.Ready { return p.ready }

// Attest asks the Keep for fresh evidence with nonce bound into it (at most
// attestation.MaxNonceSize bytes) and returns its canonical encoding.
func (p *Process) Attest(ctx context.Context, nonce []byte) ([]byte, error) {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	select {
	case <-p.Done():
		return nil, fmt.Errorf("keep pid %d has exited", p.Pid())
	default:
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = p.ctl.SetDeadline(deadline)
		defer p.ctl.SetDeadline(time.Time{})
	}
	if err := json.NewEncoder(p.ctl).Encode(keep.Request{Attest: &keep.AttestRequest{Nonce: nonce}}); err != nil {
		return nil, fmt.Errorf("keep pid %d: ask for evidence: %w", p.Pid(), err)
	}
	var resp keep.Response
	for {
		if err := p.dec.Decode(&resp); err != nil {
			return nil, fmt.Errorf("keep pid %d: read evidence: %w", p.Pid(), err)
		}
		// The report of a run that ended meanwhile is no answer.
		if !p.keepProfile(resp) {
			break
		}
		resp = keep.Response{}
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("keep pid %d: %s", p.Pid(), resp.Error)
	}
	return resp.Evidence, nil
}

// Cgroup is the Keep's control group, nil when it was started without one.
// It outlives the Keep: whoever deletes the task deletes it.
func (p *Process) Cgroup() *cgroup.Cgroup { return p.cgroup }

// Run tells a ready Keep to start its workload. The container's memory
// limit is applied to the Keep's cgroup first (see limitMemory).
func (p *Process) Run() error {
	p.ctlMu.Lock()
	defer p.ctlMu.Unlock()
	if err := p.limitMemory(); err != nil {
		return err
	}
	if err := json.NewEncoder(p.ctl).Encode(keep.Request{Run: true}); err != nil {
		select {
		case <-p.Done():
			return fmt.Errorf("keep pid %d has already exited", p.Pid())
		default:
		}
		return fmt.Errorf("keep pid %d: send run: %w", p.Pid(), err)
	}
	return nil
}

// limitMemory sets the kernel's memory limit of the Keep's cgroup, once the
// Keep has compiled its module and before its workload runs: the
// container's limit, plus what the Keep uses now (its engine and the
// compiled code), plus MemoryHeadroom; or, when the container has none,
// lifts the compile memory limit (StartOptions.CompileMemory).
//
// The container's limit is the cap of the workload's linear memory
// (Config.MemoryLimit), so the engine refuses a growth past it and the Keep
// reports "memory limit N bytes exceeded" before the kernel's OOM killer
// would end it without a word. The kernel's limit still bounds the whole
// Keep. Compiling is left out of it because compiling a Go module takes
// about 90 MB, more than many containers give their workload.
func (p *Process) limitMemory() error {
	if p.cgroup == nil {
		return nil
	}
	if p.memory == nil || p.memory.Limit == nil || *p.memory.Limit <= 0 {
		if p.compileMemory <= 0 {
			return nil
		}
		// The container has no limit: lift the compile limit.
		if err := p.cgroup.SetMemoryLimit(cgroup.NoMemoryLimit, 0); err != nil {
			return fmt.Errorf("keep pid %d: %w", p.Pid(), err)
		}
		return nil
	}
	used, err := p.cgroup.MemoryUsage()
	if err != nil {
		return fmt.Errorf("keep pid %d: %w", p.Pid(), err)
	}
	extra := int64(used) + MemoryHeadroom
	var swap int64
	if p.memory.Swap != nil && *p.memory.Swap > 0 {
		swap = *p.memory.Swap + extra
	}
	if err := p.cgroup.SetMemoryLimit(*p.memory.Limit+extra, swap); err != nil {
		return fmt.Errorf("keep pid %d: %w", p.Pid(), err)
	}
	return nil
}

// readReason reads what the Keep, which has exited, said on its reason
// pipe. Its words are in the pipe by now: the read waits no longer for a
// writer that outlives it.
func (p *Process) readReason() {
	_ = p.reason.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(p.reason, b, len(keep.ReasonOOM))
	p.reason.Close()
	p.oom = string(b[:n]) == keep.ReasonOOM
}

// OutOfMemory reports whether the Keep, which has exited (Done), ended
// because its workload needed more memory than its limit allows: the
// shim reports that as the kernel's OOM kills are reported.
func (p *Process) OutOfMemory() bool {
	<-p.Done()
	return p.oom
}

// keepDevices are the devices a Keep itself opens, whatever its container
// may: the TEE's report devices.
var keepDevices = []string{attestation.SEVGuestDevice, attestation.TDXGuestDevice, attestation.TDXGuestDeviceLegacy}

// withKeepDevices is res with rules that let the Keep open those of
// keepDevices this node has, when res restricts devices at all.
func withKeepDevices(res *specs.LinuxResources) *specs.LinuxResources {
	if res == nil || len(res.Devices) == 0 {
		return res
	}
	r := *res
	r.Devices = append([]specs.LinuxDeviceCgroup(nil), res.Devices...)
	for _, path := range keepDevices {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			continue
		}
		major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "rw"})
	}
	return &r
}
