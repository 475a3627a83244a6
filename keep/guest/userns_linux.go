package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/confine/seccomp"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/proc"
	"github.com/enarx/containerd-shim-enarx/keep/sockets"
)

// A Keep whose container has a user namespace runs its workload in a second
// process, the inner Keep. A process with threads (any Go program) can
// neither make nor join a user namespace, and what a Keep does on the host
// (its root-only module cache, the TEE's device, the Steward) needs the
// host's root; so the Keep does that, then starts the inner Keep in a new
// user namespace with the container's mappings and in the container's
// other namespaces, made with it (confine.Spec.StartInner), and hands it
// the compiled module. The inner Keep confines itself (confine.Enter) and
// runs the workload when told; the Keep serves the shim (ready, run,
// evidence), passes on the signals it gets, and ends with the inner
// Keep's status. The inner Keep dies with it (Pdeathsig).

// innerFlag makes the runtime binary an inner Keep ("keep -id ID -inner").
const innerFlag = "inner"

// Descriptors of an inner Keep besides stdio.
const (
	innerControlFD = 3 // its end of the control socket
	// 4 is ReasonFD, the Keep's own, passed on
	innerModuleFD  = 5 // the module: native code, or WebAssembly to compile
	innerSourcesFD = 6 // the first bind mount source (confine.Sources)
)

// innerKeep is the Keep's side of its inner Keep.
type innerKeep struct {
	*proc.Child
	ctl net.Conn
	enc *json.Encoder
}

// startInner starts the inner Keep of cfg with the module k compiled, and
// returns once it is confined.
func startInner(ctx context.Context, cfg keep.Config, k *prepared, socks *sockets.Set) (_ *innerKeep, err error) {
	if socks != nil {
		return nil, errors.New("confinement: declared sockets are not supported with a user namespace yet: run the container without a user namespace, or without sockets")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("confinement: find runtime executable: %w", err)
	}
	module, native, err := moduleFile(cfg, k)
	if err != nil {
		return nil, err
	}
	defer module.Close()
	ctl, remote, err := keep.ControlSocket()
	if err != nil {
		return nil, fmt.Errorf("confinement: control socket of the inner Keep: %w", err)
	}
	defer remote.Close()
	in := &innerKeep{Child: proc.New(exec.Command(exe, keep.Subcommand, "-id", cfg.ID, "-"+innerFlag)), ctl: ctl, enc: json.NewEncoder(ctl)}
	sources, err := cfg.Container.OpenSources(cfg.StateDir)
	if err != nil {
		ctl.Close()
		return nil, err
	}
	defer sources.Close()
	in.Cmd.Stdin, in.Cmd.Stdout, in.Cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	in.Cmd.ExtraFiles = append([]*os.File{remote, os.NewFile(keep.ReasonFD, "keep-reason"), module}, sources.Files()...)
	var network *specs.LinuxNamespace
	switch ns := netNS(cfg); ns {
	case "":
	case sockets.NewNetNS:
		network = &specs.LinuxNamespace{Type: specs.NetworkNamespace}
	default:
		network = &specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: ns}
	}
	if err := cfg.Container.StartInner(in.Cmd, network); err != nil {
		ctl.Close()
		return nil, err
	}
	go in.Reap(nil)
	defer func() {
		if err != nil {
			_ = in.Signal(syscall.SIGKILL)
			<-in.Done()
			ctl.Close()
		}
	}()
	if err := cfg.Container.ApplyLimits(in.Pid()); err != nil {
		return nil, err
	}
	if err := in.enc.Encode(keep.Request{Config: &cfg, Native: native, Sources: len(sources.Files())}); err != nil {
		return nil, fmt.Errorf("confinement: send the inner Keep its config: %w", err)
	}
	var resp keep.Response
	if err := json.NewDecoder(ctl).Decode(&resp); err != nil {
		status, _ := in.Status()
		select {
		case <-in.Done():
			return nil, fmt.Errorf("confinement: the inner Keep exited with status %d before it was confined (its reason is in the container's log)", status)
		case <-time.After(time.Second):
		}
		return nil, fmt.Errorf("confinement: the inner Keep's answer: %w", err)
	}
	if !resp.Confined {
		return nil, errors.New(resp.Error)
	}
	return in, nil
}

// moduleFile is the module for the inner Keep, in a memory file: the native
// code of k's module when its engine is a Precompiler (native), else the
// WebAssembly, which the inner Keep compiles.
func moduleFile(cfg keep.Config, k *prepared) (*os.File, bool, error) {
	var b []byte
	var err error
	p, native := k.engine.(engine.Precompiler)
	if native {
		b, err = p.Serialize(k.module)
	} else {
		b, err = os.ReadFile(cfg.Module)
	}
	if err != nil {
		return nil, false, fmt.Errorf("confinement: the module for the inner Keep: %w", err)
	}
	fd, err := unix.MemfdCreate("enarx-module", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, false, fmt.Errorf("confinement: the module for the inner Keep: %w", err)
	}
	f := os.NewFile(uintptr(fd), "enarx-module")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("confinement: the module for the inner Keep: %w", err)
	}
	// The inner Keep reads it from the start, through the same offset.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("confinement: the module for the inner Keep: %w", err)
	}
	return f, native, nil
}

// run lets the inner Keep run its workload, passes signals on to it, and
// returns its status.
func (in *innerKeep) run(signals <-chan os.Signal) int {
	defer in.ctl.Close()
	if err := in.enc.Encode(keep.Request{Run: true}); err != nil {
		_ = in.Signal(syscall.SIGKILL)
	}
	for {
		select {
		case sig := <-signals:
			_ = in.Signal(sig.(syscall.Signal))
		case <-in.Done():
			status, _ := in.Status()
			return status
		}
	}
}

// innerMain is the inner Keep: it reads its config, loads its module,
// confines itself, and runs the workload when told.
func innerMain(id string, newEngine EngineFactory, signals <-chan os.Signal) int {
	ctl, err := net.FileConn(os.NewFile(innerControlFD, "inner-control"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "enarx keep: %s: no control socket on fd %d: %v (an inner Keep is started by a Keep)\n", id, innerControlFD, err)
		return keep.StatusFailed
	}
	dec, enc, req, fail := acceptConfig(ctl)
	if req.Config == nil {
		return keep.StatusFailed
	}
	cfg := *req.Config
	if cfg.Container == nil || !cfg.Container.UserNS() {
		return fail(errors.New("an inner Keep runs a container with a user namespace"))
	}
	if cfg.NewNetNS {
		// Made with the user namespace, so that it is the container's own.
		if err := sockets.LoopbackUp(); err != nil {
			return fail(err)
		}
	}
	ctx := context.Background()
	module, err := loadModule(ctx, newEngine, req.Native, os.NewFile(innerModuleFD, "enarx-module"))
	if err != nil {
		return fail(fmt.Errorf("module %s: %w", cfg.Module, err))
	}
	// The module and the mount trees are the inner Keep's: not its hooks'.
	for fd := innerModuleFD; fd < innerSourcesFD+req.Sources; fd++ {
		syscall.CloseOnExec(fd)
	}
	var sources []*os.File
	for i := range req.Sources {
		sources = append(sources, os.NewFile(uintptr(innerSourcesFD+i), "bind-source"))
	}
	if err := cfg.Container.AdoptSources(sources, cfg.StateDir); err != nil {
		return fail(err)
	}
	confined, err := confine.Enter(cfg.Container, cfg.StateDir, confine.Network{}, seccomp.Load)
	if err != nil {
		return fail(err)
	}
	if err := enc.Encode(keep.Response{Confined: true}); err != nil {
		return keep.StatusFailed
	}
	next := prepareRun(cfg, module, nil, true, runProfile{})
	runc := make(chan error, 1)
	go func() {
		var req keep.Request
		err := dec.Decode(&req)
		if err == nil && !req.Run {
			err = errors.New("not run")
		}
		runc <- err
	}()
	if status, ok := awaitRun(signals, runc); !ok {
		return status
	}
	if err := startContainer(ctx, confined, next); err != nil {
		fmt.Fprintf(os.Stderr, "enarx keep: %s: %v\n", cfg.ID, err)
		return keep.StatusFailed
	}
	return run(ctx, cfg, signals, next)
}

// loadModule loads the module of an inner Keep from f: native code its
// engine made (native), or WebAssembly to compile.
func loadModule(ctx context.Context, newEngine EngineFactory, native bool, f *os.File) (engine.Module, error) {
	defer f.Close()
	eng, err := newEngine()
	if err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	if native {
		p, ok := eng.(engine.Precompiler)
		if !ok {
			return nil, fmt.Errorf("engine %s cannot load native code", eng.Name())
		}
		return p.Load(ctx, fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	}
	wasm, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return eng.Compile(ctx, wasm)
}
