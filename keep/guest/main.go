// Package guest is the Keep's end of a Keep (package keep has the
// protocol): Main, in the Keep process, reads its Config from the shim,
// compiles the module or loads it from the node's cache, makes the Keep's
// identity — its key, its evidence and its certificate (the Steward) —,
// opens its sockets, confines itself and runs the workload. Only the
// runtime binary (enarx-keep) links it: it does not link the cgroups
// library, which the shim's end uses to place it.
package guest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/confine/seccomp"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/proc"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
	"github.com/enarx/containerd-shim-enarx/version"
)

// settleDelay is how long a workload runs before its Keep returns the
// memory it no longer uses to the kernel.
const settleDelay = time.Second

// interruptGrace bounds how long an interrupted workload may take to stop:
// after it the Keep exits regardless. Its engine stops a workload waiting
// for a socket at once, but neither a blocking host call of wasmtime's WASI
// (a sleep, a read) nor, since a Keep's engine goes without epoch
// interruption for speed (keep/wasmtime's KeepOptions), WebAssembly code
// spinning without calling the host: the Keep's exit ends those.
const interruptGrace = 50 * time.Millisecond

// endSignals are the signals that end a workload, whose default action is
// to terminate (crash signals aside, see dieOfCrashSignals): the Keep
// interrupts the workload and exits 128+n, as the process would under
// runc. It takes them itself because, as the first process of its PID
// namespace, it would otherwise get none the kernel does not see handled.
var endSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGALRM, syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGPWR, syscall.SIGSTKFLT}

// EngineFactory creates the engine a Keep runs its workload with.
type EngineFactory func() (engine.Engine, error)

// Main is the Keep process. args are the arguments after Subcommand. It
// returns the process exit status: the workload's, or 128+n when signal n
// interrupted it, StatusTrap for a trap, StatusFailed when the Keep could not
// run it. A crash signal (SIGSEGV, SIGABRT...) ends the Keep by that signal.
func Main(args []string, newEngine EngineFactory) int {
	fs := flag.NewFlagSet(keep.Subcommand, flag.ContinueOnError)
	id := fs.String("id", "", "container ID (for ps and logs)")
	pause := fs.Bool("pause", false, "hold a pod's namespaces (see StartSandbox)")
	hostname := fs.String("hostname", "", "the pod's hostname, with -pause")
	innerProc := fs.Bool(innerFlag, false, "run the workload of a Keep with a user namespace (see startInner)")
	startedAhead := fs.Bool(keep.AheadFlag, false, "started before its container's Create: read the hand-over first (see StartAhead)")
	preloadDigest := fs.String(keep.PreloadFlag, "", "with -id "+keep.SpareID+": the digest of the module to load from -module-cache while the Keep waits (see preloadModule)")
	moduleCache := fs.String(keep.ModuleCacheFlag, "", "with -"+keep.PreloadFlag+": the module cache")
	newNetNS := fs.Bool(keep.NewNetNSFlag, false, "made in its container's new network namespace (see keep.Config.MadeInNewNetNS)")
	sysctls := sysctlFlag{}
	fs.Var(sysctls, "sysctl", "a sysctl of the pod, key=value, with -pause (repeated)")
	if err := fs.Parse(args); err != nil {
		return keep.StatusFailed
	}
	// What the shim passed beyond stdio is the Keep's own: not its hooks'.
	for fd := keep.ControlFD; fd <= keep.ReasonFD; fd++ {
		syscall.CloseOnExec(fd)
	}
	if *innerProc {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, endSignals...)
		return innerMain(*id, newEngine, signals)
	}
	if *pause {
		// The shim waits for "ready", or the reason it will not be, on
		// the first ExtraFile.
		report := os.NewFile(keep.ControlFD, "sandbox-ready")
		if err := confine.Hold(*hostname, sysctls, func() { fmt.Fprintln(report, keep.SandboxReady); report.Close() }); err != nil {
			fmt.Fprintln(report, err)
			return keep.StatusFailed
		}
		return 0
	}
	dieOfCrashSignals(*id)
	ctl, err := net.FileConn(os.NewFile(keep.ControlFD, "keep-control"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "enarx keep: no control socket on fd %d: %v (a Keep is started by the shim, not by hand; use `enarx run` instead)\n", keep.ControlFD, err)
		return keep.StatusFailed
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, endSignals...)

	// The engine depends on nothing the shim sends: it is made while the
	// config is read and the module measured. Its first calls into
	// wasmtime, which fault in its code, are most of a Keep's wait for it.
	var preload func(engine.Engine) *preloadedModule
	// preloaded is never freed, taken or not: see preloadedModule.
	var preloaded *preloadedModule
	defer runtime.KeepAlive(&preloaded)
	if *id == keep.SpareID && *startedAhead && *preloadDigest != "" {
		preload = func(e engine.Engine) *preloadedModule {
			preloaded = preloadModule(e, *moduleCache, *preloadDigest)
			return preloaded
		}
	}
	enginec := startEngine(newEngine, preload)
	var net *madeNetNS
	if *newNetNS {
		net = upLoopback()
	}
	if *id == keep.SpareID {
		go warmJSON()
	}
	var rootTree *os.File
	if *startedAhead {
		// Until the hand-over, stdio is /dev/null: a shim that went away
		// before its container's Create ends the Keep without a word.
		if rootTree, err = receiveHandOver(ctl); err != nil {
			fmt.Fprintf(os.Stderr, "enarx keep: %s: %v\n", *id, err)
			return keep.StatusFailed
		}
	}
	dec, enc, req, fail := acceptConfig(ctl)
	if req.Config == nil {
		return keep.StatusFailed
	}
	cfg := *req.Config
	if *id == keep.SpareID {
		// A spare Keep now serves cfg.ID: `shim delete` finds it by its
		// command line.
		if err := proc.SetCmdline([]string{os.Args[0], keep.Subcommand, "-id", cfg.ID, "-" + keep.AheadFlag}); err != nil {
			return fail(fmt.Errorf("keep %s: a spare Keep names its container: %w", cfg.ID, err))
		}
	} else if *id != cfg.ID {
		return fail(fmt.Errorf("keep config: the config is container %q's, not %q's, which the Keep was started for", cfg.ID, *id))
	}
	if net != nil && !cfg.MadeInNewNetNS() {
		return fail(fmt.Errorf("keep config: container %s's Keep was made in a new network namespace (-%s), which serves only a container with one, and neither a Steward nor a user namespace", cfg.ID, keep.NewNetNSFlag))
	}
	if rootTree != nil {
		// Before the module is opened: it is in the root filesystem.
		if cfg.Container == nil || cfg.Container.UserNS() {
			rootTree.Close()
			return fail(errors.New("keep config: a Keep started ahead runs a container without a user namespace"))
		}
		if err := cfg.Container.AttachRootTree(rootTree); err != nil {
			return fail(err)
		}
	}
	if err := keep.CheckNullStdio(cfg.NullStdio); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	// The module is open before the container is built beside prepare
	// (buildAhead): a mount of the container's over the module's directory
	// must not change which file the Keep measures.
	module, err := openModuleFile(cfg.Module)
	if err != nil {
		return fail(err)
	}
	ahead := buildAhead(cfg, net)
	k, err := prepare(ctx, cfg, module, enginec)
	if err != nil {
		return fail(err)
	}
	// The sockets are open before the Keep reports ready, so that a port
	// in use fails the container's creation with the reason.
	if net != nil && len(cfg.Sockets) > 0 {
		if err := net.wait(); err != nil {
			return fail(err)
		}
	}
	socks, err := openSockets(ctx, cfg, k.identity, net != nil)
	if err != nil {
		return fail(err)
	}
	if socks != nil {
		defer socks.Close()
		k.ready.Sockets = describeSockets(cfg.Sockets, socks)
		if hasTLS(cfg.Sockets) {
			k.ready.TLSIdentity = k.identity.tlsIdentityName()
		}
	}
	if err := nullStdio(cfg.NullStdio); err != nil {
		return fail(err)
	}
	// What needed the host is done: the Keep becomes the container.
	var confined *confine.Confined
	var inner *innerKeep
	if cfg.Container != nil {
		if err := enc.Encode(keep.Response{Prepared: &k.ready}); err != nil {
			return keep.StatusFailed
		}
		began := time.Now()
		if cfg.Container.UserNS() {
			inner, err = startInner(ctx, cfg, k, socks)
		} else {
			confined, err = enter(cfg, socks, net, ahead)
		}
		if err != nil {
			return fail(err)
		}
		k.ready.ConfineTime = time.Since(began)
	}
	if err := enc.Encode(keep.Response{Ready: &k.ready}); err != nil {
		return keep.StatusFailed
	}
	ctlw := &ctlWriter{enc: enc}
	var next *runAhead
	if inner == nil {
		next = prepareRun(cfg, k.module, socks, confined != nil, pageProfile(cfg, k.ready.WorkloadDigest, ctlw.send))
	}

	// Serve the shim: run once, and fresh evidence whenever asked. A
	// signal or the shim going away ends a created Keep; a running one
	// goes on without its shim.
	runc := make(chan error, 1)
	go serveControl(ctx, dec, ctlw, k.identity, runc)
	if status, ok := awaitRun(signals, runc); !ok {
		return status
	}
	if inner != nil {
		return inner.run(signals)
	}
	if confined != nil {
		if err := startContainer(ctx, confined, next); err != nil {
			fmt.Fprintf(os.Stderr, "enarx keep: %s: %v\n", cfg.ID, err)
			return keep.StatusFailed
		}
	}
	// What only getting ready needed (the module's bytes, the compiler's
	// or the cache's buffers) is garbage now; a workload that runs on gives
	// its pages back to the kernel after settleDelay, which the Go runtime
	// would do only slowly. The collection runs beside the workload, whose
	// code (in the engine) it does not stop.
	settle := time.AfterFunc(settleDelay, debug.FreeOSMemory)
	defer settle.Stop()
	return run(ctx, cfg, signals, next)
}

// startContainer runs the startContainer hooks of a confined Keep and puts
// up the last wall before the workload: the Keep's own seccomp filter,
// which next assembled.
func startContainer(ctx context.Context, confined *confine.Confined, next *runAhead) error {
	if err := confined.StartContainer(ctx); err != nil {
		return err
	}
	<-next.done
	if next.filterErr != nil {
		return next.filterErr
	}
	return next.filter.LockDown()
}

// runAhead is what a ready Keep makes for its run while the shim answers
// Create and containerd sends Start, which takes milliseconds of round
// trips: its seccomp filter, assembled (seccomp.AssembleLockDown), and the
// engine's store, WASI and imports (engine.RunPreparer), unless the
// container has startContainer hooks, which run before the workload and
// may change what its root directory, a preopen, shows, or the Keep has
// sockets, which the workload's WASI takes over when it is made; the run
// is made then at Start.
type runAhead struct {
	done      chan struct{}
	filter    *seccomp.KeepFilter
	filterErr error
	opts      engine.RunOptions
	module    engine.Module
	// instances is how many instances of module run at once
	// (workload.Workload.Instances, at least 1).
	instances int
	// prepared is the run made ready, or the reason it could not be
	// (prepareErr); both nil when it is made at Start. It is the first
	// instance's.
	prepared   engine.PreparedRun
	prepareErr error
}

// prepareRun starts making a Keep's run ready (runAhead); confined says
// whether the Keep is a container, which needs the filter; profile is
// what the run populates and reports of its memory's pages (pageProfile).
func prepareRun(cfg keep.Config, module engine.Module, socks *sockets.Set, confined bool, profile runProfile) *runAhead {
	next := &runAhead{done: make(chan struct{}), module: module, opts: runOptions(cfg, socks), instances: cfg.InstanceCount()}
	next.opts.Populate, next.opts.Touched = profile.populate, profile.touched
	hooks := cfg.Container != nil && cfg.Container.Hooks != nil && len(cfg.Container.Hooks.StartContainer) > 0
	go func() {
		defer close(next.done)
		if confined {
			next.filter, next.filterErr = seccomp.AssembleLockDown()
		}
		if p, ok := module.(engine.RunPreparer); ok && !hooks && len(next.opts.Sockets) == 0 {
			next.prepared, next.prepareErr = p.PrepareRun(next.opts)
		}
	}()
	return next
}

// run is the run's engine.Module.Run: the prepared one's, when there is
// one; with several instances, theirs (runInstances).
func (next *runAhead) run(ctx context.Context) (int, error) {
	<-next.done
	switch {
	case next.prepareErr != nil:
		return 0, next.prepareErr
	case next.instances > 1:
		return next.runInstances(ctx)
	}
	return next.runFirst(ctx)
}

// runFirst runs the first (or only) instance: the prepared run, when
// there is one.
func (next *runAhead) runFirst(ctx context.Context) (int, error) {
	if next.prepared != nil {
		return next.prepared.Run(ctx)
	}
	return next.module.Run(ctx, next.opts)
}

// runOptions are what the engine gives the workload of cfg.
func runOptions(cfg keep.Config, socks *sockets.Set) engine.RunOptions {
	// The instances share the workload's memory limit.
	limit := cfg.MemoryLimit
	if n := int64(cfg.InstanceCount()); limit > 0 && n > 1 {
		limit = max(limit/n, 1)
	}
	opts := engine.RunOptions{Entrypoint: cfg.Entrypoint, Args: cfg.Args, Env: cfg.Env, MemoryLimit: limit}
	if socks != nil {
		opts.Sockets = socks.Sockets()
	}
	opts.Env = withPWD(opts.Env, cfg.Cwd)
	opts.Preopens = preopens(cfg)
	return opts
}

// awaitRun waits for run, or the reason not to: a signal (128+n) or the
// control socket's error (StatusFailed).
func awaitRun(signals <-chan os.Signal, runc <-chan error) (int, bool) {
	select {
	case sig := <-signals:
		return 128 + int(sig.(syscall.Signal)), false
	case err := <-runc:
		if err != nil {
			return keep.StatusFailed, false
		}
	}
	return 0, true
}

// enter confines the Keep in the container's namespaces, the network one
// its sockets are in, if any (containerNetNS), or the one it was made in
// (net, when not nil): with the container that buildAhead built, when it
// did.
func enter(cfg keep.Config, socks *sockets.Set, net *madeNetNS, ahead <-chan builtContainer) (*confine.Confined, error) {
	var b builtContainer
	if ahead != nil {
		b = <-ahead
	} else {
		b = build(cfg, socks, net)
	}
	if b.err != nil {
		return nil, b.err
	}
	return b.built.Enter(seccomp.Load)
}

// builtContainer is what confine.Build made of a Keep's container.
type builtContainer struct {
	built *confine.Built
	err   error
}

// build builds the Keep's container (confine.Build) in its network
// namespace: the one it was made in (net, when not nil), or containerNetNS.
func build(cfg keep.Config, socks *sockets.Set, net *madeNetNS) builtContainer {
	if net != nil {
		if err := net.wait(); err != nil {
			return builtContainer{err: err}
		}
		b, err := confine.Build(cfg.Container, cfg.StateDir, confine.Network{Made: true})
		return builtContainer{b, err}
	}
	netns, err := containerNetNS(cfg, socks)
	if err != nil {
		return builtContainer{err: err}
	}
	if netns != nil && (socks == nil || netns != socks.NetNS()) {
		defer netns.Close()
	}
	b, err := confine.Build(cfg.Container, cfg.StateDir, confine.Network{Join: netns})
	return builtContainer{b, err}
}

// buildAhead starts building the container beside prepare, which would
// otherwise wait for the module's digest, the cache and the evidence: the
// mounts, the namespaces and the devices are about half the Keep's start
// on a small machine. Nothing prepare does may need what Build changes,
// which holds unless the Keep has sockets (opened in the container's
// network namespace with the Keep's certificate, once prepare made it), a
// Steward (reached over the host's network) or a user namespace (whose
// inner Keep builds its own container), or is no container at all; then
// it returns nil, and enter builds after prepare, as before. The module is
// open already (Main).
func buildAhead(cfg keep.Config, net *madeNetNS) <-chan builtContainer {
	if cfg.Container == nil || cfg.Container.UserNS() || len(cfg.Sockets) > 0 || cfg.Steward != nil {
		return nil
	}
	c := make(chan builtContainer, 1)
	go func() { c <- build(cfg, nil, net) }()
	return c
}

// madeNetNS is the new network namespace of its container's a Keep was
// made in (keep.NewNetNSFlag): wait waits until its loopback is up, which
// the Keep does while it reads its config and measures its module, as
// sockets.OpenNetNS does for a namespace the Keep makes.
type madeNetNS struct{ wait func() error }

// upLoopback brings up the loopback of the network namespace the Keep was
// made in, beside the rest of its start.
func upLoopback() *madeNetNS {
	up := make(chan error, 1)
	go func() { up <- sockets.LoopbackUp() }()
	return &madeNetNS{wait: sync.OnceValue(func() error { return <-up })}
}

// sysctlFlag collects -sysctl key=value flags.
type sysctlFlag map[string]string

func (f sysctlFlag) String() string { return fmt.Sprint(map[string]string(f)) }

func (f sysctlFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%q is not key=value", kv)
	}
	f[k] = v
	return nil
}

// serveControl answers the shim's requests after ready. The first error
// or run is sent on runc.
func serveControl(ctx context.Context, dec *json.Decoder, enc *ctlWriter, id *identity, runc chan<- error) {
	started := false
	for {
		var req keep.Request
		if err := dec.Decode(&req); err != nil {
			if !started {
				runc <- err
			}
			return
		}
		switch {
		case req.Run && !started:
			started = true
			runc <- nil
		case req.Attest != nil:
			var resp keep.Response
			if evidence, err := id.evidenceWith(ctx, req.Attest.Nonce); err != nil {
				resp.Error = err.Error()
			} else if resp.Evidence, err = evidence.Marshal(); err != nil {
				resp.Error = err.Error()
			}
			if err := enc.send(resp); err != nil {
				return
			}
		default:
			_ = enc.send(keep.Response{Error: "unexpected control message"})
		}
	}
}

// ctlWriter sends a ready Keep's messages to the shim: the answers
// serveControl makes, and the report of the run's pages (pageProfile),
// which the run sends as it ends.
type ctlWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *ctlWriter) send(resp keep.Response) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(resp)
}

// runProfile is what a run is given of its memory's pages, and told to
// report of them (engine.RunOptions.Populate, Touched).
type runProfile struct {
	populate []engine.MemoryRange
	touched  func([]engine.MemoryRange)
}

// pageProfile is the runProfile of a Keep whose module measured as digest:
// the pages the last Keep of its shim reported (cfg.Populate), when that
// was this module; and a report of its own run's, sent with send once the
// run has ended, for the next. A Keep whose module runs as several
// instances neither takes nor sends one.
func pageProfile(cfg keep.Config, digest string, send func(keep.Response) error) runProfile {
	if cfg.InstanceCount() > 1 {
		return runProfile{}
	}
	var p runProfile
	if last := cfg.Populate; last != nil && last.WorkloadDigest == digest && len(last.Ranges) <= keep.MaxProfileRanges {
		p.populate = last.Ranges
	}
	p.touched = func(ranges []engine.MemoryRange) {
		if len(ranges) == 0 || len(ranges) > keep.MaxProfileRanges {
			return
		}
		_ = send(keep.Response{Touched: &keep.PageProfile{WorkloadDigest: digest, Ranges: ranges}})
	}
	return p
}

// prepared is a Keep ready to run its workload: the compiled module, the
// Keep's identity and what the Keep reports to the shim.
type prepared struct {
	engine   engine.Engine
	module   engine.Module
	identity *identity
	ready    keep.Ready
}

// engineMade is the engine a Keep runs its workload with, made (or not),
// and what a spare Keep preloaded with it.
type engineMade struct {
	eng       engine.Engine
	err       error
	preloaded *preloadedModule
}

// startEngine makes the Keep's engine beside whatever the Keep does next;
// preload, when not nil, runs with the engine once it is made.
func startEngine(newEngine EngineFactory, preload func(engine.Engine) *preloadedModule) <-chan engineMade {
	c := make(chan engineMade, 1)
	go func() {
		eng, err := newEngine()
		made := engineMade{eng: eng, err: err}
		if err == nil && preload != nil {
			made.preloaded = preload(eng)
		}
		c <- made
	}()
	return c
}

// preloadedModule is the precompiled code of the module that a spare
// Keep's container will likely run, the last container's (-preload),
// loaded from the module cache while the Keep waits for a container: its
// checksum, its mapping and the engine's registration of its code are then
// off the path of the container's start. The Keep takes it (take) only
// when its own module measures as that digest and its config names that
// cache, so it always runs what it measured.
//
// A preloaded module the Keep does not take is never freed: its code is
// mapped from a cache entry that was written, truncated or replaced since
// (take refused it for that), and the engine would read that mapping to
// free it (its unwind information), which past a truncated file's end is
// SIGBUS.
type preloadedModule struct {
	digest, cache string
	module        engine.Module
	// entry is the cache entry it was loaded from, verified then.
	entry loadedEntry
	once  sync.Once
}

// preloadModule loads the code of digest from the module cache at cache,
// or returns nil: a digest or cache that is not one, or code not cached.
func preloadModule(e engine.Engine, cache, digest string) *preloadedModule {
	if !isSHA256Digest(digest) || !filepath.IsAbs(cache) {
		return nil
	}
	m, entry, err := loadCachedEntry(context.Background(), e, cache, digest)
	if err != nil {
		return nil
	}
	return &preloadedModule{digest: digest, cache: cache, module: m, entry: entry}
}

// take is the preloaded module, once, when it is the code of digest from
// cache, and its cache entry is still the file that was verified when it
// was loaded (unchanged: the module cache checks an entry at each start,
// and one damaged since is found and replaced by the start's own load);
// otherwise nil.
func (p *preloadedModule) take(cache, digest string) engine.Module {
	if p == nil || p.digest != digest || p.cache != cache || !p.entry.unchanged() {
		return nil
	}
	var m engine.Module
	p.once.Do(func() { m = p.module })
	return m
}

// prepare loads, measures and compiles the module, and makes the Keep's
// identity on its backend: a fresh key pair, the workload, the runtime and
// the config bound into the TEE's report, and a certificate when a Steward
// is configured. moduleFile is the module, cfg.Module, open; prepare
// closes it. enginec gives the engine (startEngine).
//
// The module is measured on every start. When the module cache recalls
// what a file with moduleFile's stamps measured as (recallDigest), the
// cached code and the identity are made for that digest while the file is
// measured (prepareRecalled), and kept only if the measurement agrees;
// not with a Steward.
func prepare(ctx context.Context, cfg keep.Config, moduleFile *os.File, enginec <-chan engineMade) (*prepared, error) {
	waitEngine := sync.OnceValues(func() (engineMade, error) {
		e := <-enginec
		if e.err != nil {
			return e, fmt.Errorf("start engine: %w", e.err)
		}
		return e, nil
	})
	recalled := recallDigest(cfg.ModuleCache, moduleFile)
	// A Steward is sent the evidence while it is made: it gets none of a
	// digest not yet measured.
	if recalled.digest != "" && cfg.Steward == nil {
		return prepareRecalled(ctx, cfg, moduleFile, recalled, waitEngine)
	}
	mod, err := measureModule(moduleFile)
	if err != nil {
		return nil, err
	}
	defer mod.Close()
	defer recalled.record(moduleFile, mod.digest)()
	return prepareDigest(ctx, cfg, mod.digest, mod.read, waitEngine)
}

// prepareRecalled is prepare when the module cache recalled a digest for
// moduleFile: the Keep is prepared with the cached code of that digest
// while the file is measured, which takes milliseconds on the path of
// every start, and the two are joined before the Keep reports anything.
// Should the measurement differ (the file changed without its stamps
// changing), or the code not be cached, the Keep is prepared again from
// the measured module: what the Keep runs and attests is always what it
// measured.
func prepareRecalled(ctx context.Context, cfg keep.Config, moduleFile *os.File, recalled recalledDigest, waitEngine func() (engineMade, error)) (*prepared, error) {
	type measured struct {
		mod *measuredModule
		err error
	}
	measuredc := make(chan measured, 1)
	go func() {
		mod, err := measureModule(moduleFile)
		measuredc <- measured{mod, err}
	}()
	k, err := prepareDigest(ctx, cfg, recalled.digest, nil, waitEngine)
	m := <-measuredc
	if m.err != nil {
		return nil, m.err
	}
	defer m.mod.Close()
	switch {
	case m.mod.digest != recalled.digest:
		defer recalled.record(moduleFile, m.mod.digest)()
	case err == nil:
		return k, nil
	case !errors.Is(err, errNotCached):
		return nil, err
	}
	return prepareDigest(ctx, cfg, m.mod.digest, m.mod.read, waitEngine)
}

// prepareDigest is prepare for the module measured as workloadDigest, whose
// bytes read gives (nil: only its cached code may be loaded, see compile).
func prepareDigest(ctx context.Context, cfg keep.Config, workloadDigest string, read func() ([]byte, error), waitEngine func() (engineMade, error)) (*prepared, error) {
	name := cfg.Backend
	if name == "" {
		name = nodepolicy.BackendNil
	}
	backend, err := keep.LookupBackend(name)
	if err != nil {
		return nil, err
	}
	provider, err := backend.Provider()
	if err != nil {
		return nil, fmt.Errorf("%s backend: %w", name, err)
	}
	// Attesting (hashing the runtime binary, the TEE's report, the
	// Steward) and compiling are independent: the identity is made while
	// the module compiles, so it adds nothing to start-up but its own CPU
	// time.
	type made struct {
		id  *identity
		err error
	}
	identityc := make(chan made, 1)
	go func() {
		id, err := newIdentity(ctx, cfg, workloadDigest, name, provider)
		identityc <- made{id, err}
	}()
	// On a failure before the identity is taken (prepareRecalled's code
	// not cached goes on to prepare again), it is still waited for: its
	// cache I/O (the runtime's digest record) must not outlive the call.
	identityTaken := false
	defer func() {
		if !identityTaken {
			<-identityc
		}
	}()
	withEngine, err := waitEngine()
	if err != nil {
		return nil, err
	}
	eng := withEngine.eng
	compileBegan := time.Now()
	// A spare Keep's preloaded code, when it is this module's.
	module, cacheStatus := withEngine.preloaded.take(cfg.ModuleCache, workloadDigest), keep.CacheHit
	if module == nil {
		module, cacheStatus, err = compile(ctx, eng, cfg.ModuleCache, read, workloadDigest)
	}
	compileTook := time.Since(compileBegan)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", cfg.Module, err)
	}
	if err := checkComponent(cfg, module); err != nil {
		return nil, err
	}
	m := <-identityc
	identityTaken = true
	if m.err != nil {
		return nil, m.err
	}
	id := m.id
	encoded, err := id.evidence.Marshal()
	if err != nil {
		return nil, err
	}
	return &prepared{engine: eng, module: module, identity: id, ready: keep.Ready{
		Backend:        backend.Name(),
		TEE:            backend.TEE(),
		WorkloadDigest: workloadDigest,
		RuntimeVersion: version.Version,
		Engine:         eng.Name(),
		TEEVersion:     id.evidence.TEEVersion,
		RuntimeDigest:  id.evidence.Inputs.RuntimeDigest,
		Evidence:       encoded,
		EvidenceDigest: id.evidence.Digest(),
		AttestTime:     id.attestTime,
		Certificate:    string(id.chain),
		CertifyTime:    id.certifyTime,
		ModuleCache:    cacheStatus,
		CompileTime:    compileTook,
	}}, nil
}

// checkComponent refuses, before the Keep reports ready, what a component
// cannot be given: declared sockets (wasmtime's C API v39 has no network
// configuration for WASI preview 2) and an entrypoint (a command runs
// wasi:cli/run).
func checkComponent(cfg keep.Config, module engine.Module) error {
	c, ok := module.(engine.Component)
	if !ok {
		return nil
	}
	if len(cfg.Sockets) > 0 {
		return fmt.Errorf("module %s is a WebAssembly component (%s): declared sockets are not available to components "+
			"(the engine's WASI preview 2 has no network configuration); remove the sockets, or build the workload as a "+
			"WASI preview 1 core module to use them (docs/networking.md)", cfg.Module, c.World())
	}
	if cfg.Entrypoint != "" && cfg.Entrypoint != engine.DefaultEntrypoint {
		return fmt.Errorf("module %s is a WebAssembly component (%s): it runs wasi:cli/run and has no entrypoint %q; remove the entrypoint setting",
			cfg.Module, c.World(), cfg.Entrypoint)
	}
	return nil
}

// run runs the workload (next) and turns its end into an exit status.
func run(ctx context.Context, cfg keep.Config, signals <-chan os.Signal, next *runAhead) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interrupted := make(chan int, 1)
	go func() {
		sig, ok := <-signals
		if !ok {
			return
		}
		status := 128 + int(sig.(syscall.Signal))
		interrupted <- status
		cancel()
		time.AfterFunc(interruptGrace, func() { os.Exit(status) })
	}()

	status, err := next.run(ctx)
	var trap *engine.TrapError
	switch {
	case err == nil:
		return status
	case errors.Is(err, engine.ErrInterrupted):
		select {
		case status := <-interrupted:
			return status
		default:
			return 128 + int(syscall.SIGTERM)
		}
	case errors.As(err, &trap) && trap.OutOfMemory:
		fmt.Fprintf(os.Stderr, "enarx keep: %s: out of memory: %s\n", cfg.ID, trap.Message)
		// The shim reports it as an OOM kill (its /tasks/oom event).
		if f := os.NewFile(keep.ReasonFD, "keep-reason"); f != nil {
			_, _ = f.WriteString(keep.ReasonOOM)
			f.Close()
		}
		return keep.StatusOOM
	case errors.As(err, &trap):
		fmt.Fprintf(os.Stderr, "enarx keep: %s: %v\n", cfg.ID, trap)
		return keep.StatusTrap
	default:
		// Not the workload's doing (a trap, an exit): the module could not
		// run (a table or memory it declares is too large, an import of
		// the wrong type, an entrypoint it lacks).
		fmt.Fprintf(os.Stderr, "enarx keep: %s: module %s: %v\n", cfg.ID, cfg.Module, err)
		return keep.StatusFailed
	}
}

// withPWD returns env with PWD=cwd added, unless cwd is empty or env sets
// PWD already.
//
// WASI preview 1 has no working directory. Go's wasip1 runtime takes $PWD
// as its own and resolves relative paths against it, which is how
// process.cwd reaches a Go workload. WASI libc (C, C++, Rust) starts in "/"
// whatever the environment says; such a workload must chdir($PWD) itself.
func withPWD(env []string, cwd string) []string {
	if cwd == "" {
		return env
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PWD=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "PWD="+cwd)
}

// preopens are the directories the workload sees: "/" of the container's
// view for a confined Keep, else its Preopens and its state directory.
func preopens(cfg keep.Config) []engine.Preopen {
	if cfg.Container != nil {
		return []engine.Preopen{{HostPath: "/", GuestPath: "/"}}
	}
	var ps []engine.Preopen
	for _, p := range cfg.Preopens {
		// The Keep's own state directory is never hidden by a mount.
		if cfg.StateDir == "" || p.GuestPath != confine.GuestStateDir {
			ps = append(ps, p)
		}
	}
	if cfg.StateDir != "" {
		ps = append(ps, engine.Preopen{HostPath: cfg.StateDir, GuestPath: confine.GuestStateDir, ReadOnly: true})
	}
	return ps
}

// acceptConfig reads the first request of the control socket ctl, which
// carries the config, and validates it. fail answers an error on ctl and
// returns StatusFailed; a request without a valid config has been answered
// so, and has a nil Config.
func acceptConfig(ctl net.Conn) (*json.Decoder, *json.Encoder, keep.Request, func(error) int) {
	dec, enc := json.NewDecoder(ctl), json.NewEncoder(ctl)
	fail := func(err error) int {
		_ = enc.Encode(keep.Response{Error: err.Error()})
		return keep.StatusFailed
	}
	var req keep.Request
	err := dec.Decode(&req)
	switch {
	case err != nil || req.Config == nil:
		err = fmt.Errorf("read keep config: %v", err)
	default:
		err = req.Config.Validate()
	}
	if err != nil {
		fail(err)
		req.Config = nil
	}
	return dec, enc, req, fail
}
