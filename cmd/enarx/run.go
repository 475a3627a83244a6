package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// runtimeBinary is the runtime that runs Keeps when given keep.Subcommand,
// the one the shim starts too.
const runtimeBinary = keep.Binary

// killAfter is how long `enarx run` waits for a Keep to end after it
// forwarded a signal, before it kills the Keep. A Keep ends within its own
// short grace (guest.Main); this only bounds a Keep that hangs.
const killAfter = 10 * time.Second

func runRun(ctx context.Context, s stdio, args []string) error {
	fs := newFlagSet(s, "run", "[OPTIONS] MODULE.wasm[#FUNCTION] [ARGS...]",
		"Runs a WebAssembly module in a Keep on this machine, without containerd: the developer's\n"+
			"inner loop. The workload gets enarx's standard streams, the arguments after the module\n"+
			"(argv[0] is the module's file name), the --env variables and the --dir directories;\n"+
			"#FUNCTION calls that export instead of _start. enarx exits with the workload's status:\n"+
			"n for proc_exit(n), 134 for a trap, 128+n when signal n ended it (SIGINT and SIGTERM\n"+
			"are passed on to the Keep). The Keep is the runtime binary, "+runtimeBinary+",\n"+
			"found beside enarx or on PATH.")
	backend := fs.String("backend", nodepolicy.BackendAuto, "Keep backend `NAME`: auto (the first TEE this node offers, else nil), nil, sev-snp or tdx")
	var env, dirs listFlag
	fs.Var(&env, "env", "set `K=V` in the workload's environment (repeatable); K alone passes on enarx's own K")
	fs.Var(&dirs, "dir", "`HOST:GUEST[:ro]`: give the workload the host directory HOST at the guest path GUEST, read-only with :ro (repeatable)")
	var listen, connect listFlag
	fs.Var(&listen, "listen", "`NAME=PROT://ADDR:PORT`: a listening socket named NAME in FD_NAMES, PROT tls (terminated by the Keep, self-signed) or tcp, e.g. web=tls://127.0.0.1:8443 (repeatable)")
	fs.Var(&connect, "connect", "`NAME=PROT://HOST:PORT`: a socket connected at start, PROT tls (server verified with the system roots) or tcp (repeatable)")
	memory := fs.String("memory", "", "cap the workload's linear memory at `BYTES` (suffix k, m or g for KiB, MiB, GiB)")
	instances := fs.String("instances", "", "run `N` instances of the module at once, each on a thread of its own, sharing the --listen sockets (as the enarx.dev/instances annotation does)")
	moduleCache := fs.String("module-cache", "", "precompiled-module cache `DIR`, or off; default "+nodepolicy.DefaultModuleCache+" as root, else off")
	runtimePath := fs.String("runtime", "", "runtime binary `PATH`; default "+runtimeBinary+" beside enarx, else on PATH")
	verbose := fs.Bool("v", false, "print the Keep's attestation summary (TEE, workload and runtime digests) to stderr")
	if err := parseFlags(s, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("run takes a module, MODULE.wasm[#FUNCTION], and its arguments")
	}
	cfg, err := runConfig(fs.Arg(0), fs.Args()[1:], env, dirs, *memory, *moduleCache)
	if err != nil {
		return err
	}
	for _, l := range []struct {
		flag, kind string
		values     []string
	}{{"--listen", socketspec.Listen, listen}, {"--connect", socketspec.Connect, connect}} {
		for _, v := range l.values {
			name, value, ok := strings.Cut(v, "=")
			if !ok {
				return usagef("%s %q: give NAME=PROT://HOST:PORT, e.g. web=tls://127.0.0.1:8443", l.flag, v)
			}
			sock, err := oci.ParseSocket(l.kind, name, value)
			if err != nil {
				return usagef("%s %q: %v", l.flag, v, err)
			}
			cfg.Sockets = append(cfg.Sockets, sock)
		}
	}
	if *instances != "" {
		if cfg.Instances, err = oci.ParseInstances(*instances); err != nil {
			return usagef("--instances %q: %v", *instances, err)
		}
	}
	if cfg.Backend, err = chooseBackend(*backend); err != nil {
		return err
	}
	exe, err := findRuntime(*runtimePath)
	if err != nil {
		return err
	}
	return runKeep(ctx, s, exe, cfg, *verbose)
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runConfig is the configuration of the Keep that runs module (the command
// line's MODULE.wasm[#FUNCTION]) with args, built as the shim builds it from
// a container: an absolute module path, argv[0] the program name, the
// environment, and preopened directories.
func runConfig(module string, args, env, dirs []string, memory, moduleCache string) (keep.Config, error) {
	name, function, _ := strings.Cut(module, "#")
	if name == "" {
		return keep.Config{}, usagef("module %q names no file", module)
	}
	path, err := filepath.Abs(name)
	if err != nil {
		return keep.Config{}, fmt.Errorf("module %s: %w", name, err)
	}
	if err := checkModule(path); err != nil {
		return keep.Config{}, err
	}
	cfg := keep.Config{
		ID:       filepath.Base(path),
		Workload: workload.Workload{Module: path, Entrypoint: function, Args: append([]string{filepath.Base(path)}, args...)},
	}
	for _, kv := range env {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" {
			return keep.Config{}, usagef("--env %q: give K=V, or K to pass on enarx's own variable", kv)
		}
		if !hasValue {
			v, ok := os.LookupEnv(k)
			if !ok {
				continue
			}
			kv = k + "=" + v
		}
		cfg.Env = append(cfg.Env, kv)
	}
	for _, d := range dirs {
		p, err := parseDir(d)
		if err != nil {
			return keep.Config{}, err
		}
		cfg.Preopens = append(cfg.Preopens, p)
	}
	if memory != "" {
		if cfg.MemoryLimit, err = parseBytes(memory); err != nil {
			return keep.Config{}, usagef("--memory %q: %v", memory, err)
		}
	}
	switch moduleCache {
	case "":
		// The default cache is root's: others could not write it, and
		// must not share what root's Keeps load.
		if os.Geteuid() == 0 {
			cfg.ModuleCache = nodepolicy.DefaultModuleCache
		}
	case "off":
	default:
		if cfg.ModuleCache, err = filepath.Abs(moduleCache); err != nil {
			return keep.Config{}, fmt.Errorf("--module-cache %s: %w", moduleCache, err)
		}
	}
	return cfg, nil
}

// checkModule checks that path is a WebAssembly core module, for an error
// that says what the file is before a Keep starts.
func checkModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module: %w: give the path of a .wasm file", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("module %s is a directory: give the path of a .wasm file", path)
	}
	header := make([]byte, oci.ModuleHeaderSize)
	n, err := io.ReadFull(f, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("module %s: %w", path, err)
	}
	return oci.CheckModuleHeader(fmt.Sprintf("module %s", path), header[:n])
}

// parseDir parses --dir HOST:GUEST[:ro|:rw] into a preopen of an existing
// host directory.
func parseDir(d string) (engine.Preopen, error) {
	parts := strings.Split(d, ":")
	readOnly := false
	if n := len(parts); n == 3 {
		switch parts[2] {
		case "ro":
			readOnly = true
		case "rw":
		default:
			return engine.Preopen{}, usagef("--dir %q: the third part is %q; give ro or rw", d, parts[2])
		}
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return engine.Preopen{}, usagef("--dir %q: give HOST:GUEST or HOST:GUEST:ro, e.g. --dir ./data:/data:ro", d)
	}
	if !strings.HasPrefix(parts[1], "/") {
		return engine.Preopen{}, usagef("--dir %q: the guest path %q is not absolute", d, parts[1])
	}
	host, err := filepath.Abs(parts[0])
	if err != nil {
		return engine.Preopen{}, fmt.Errorf("--dir %s: %w", d, err)
	}
	fi, err := os.Stat(host)
	if err != nil {
		return engine.Preopen{}, fmt.Errorf("--dir %s: %w", d, err)
	}
	if !fi.IsDir() {
		return engine.Preopen{}, fmt.Errorf("--dir %s: %s is not a directory: WASI gives a workload directories only", d, host)
	}
	return engine.Preopen{HostPath: host, GuestPath: filepath.Clean(parts[1]), ReadOnly: readOnly}, nil
}

// parseBytes parses a positive byte count with an optional binary suffix
// (k, m, g; case-insensitive, a trailing "b" or "ib" allowed).
func parseBytes(s string) (int64, error) {
	num := strings.ToLower(s)
	num = strings.TrimSuffix(strings.TrimSuffix(num, "b"), "i")
	shift := 0
	switch {
	case strings.HasSuffix(num, "k"):
		shift = 10
	case strings.HasSuffix(num, "m"):
		shift = 20
	case strings.HasSuffix(num, "g"):
		shift = 30
	}
	if shift > 0 {
		num = num[:len(num)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, errors.New("give a positive number of bytes, e.g. 67108864 or 64m")
	}
	return n << shift, nil
}

// chooseBackend returns the backend a Keep gets when asked for requested,
// under the node policy of a node without one (keep.DefaultPolicy): the
// first TEE available for auto, else nil.
func chooseBackend(requested string) (string, error) {
	switch requested {
	case nodepolicy.BackendAuto, nodepolicy.BackendNil, nodepolicy.BackendSEVSNP, nodepolicy.BackendTDX:
	default:
		return "", usagef("--backend %q: give auto, nil, sev-snp or tdx", requested)
	}
	b, err := nodepolicy.Default().Choose(requested, keep.Available)
	if err != nil {
		// Choose speaks of a container's annotation; say it for the flag.
		if reason := keep.Available(requested); reason != nil {
			return "", fmt.Errorf("--backend %s: this machine cannot run a %s Keep: %v; `enarx platform` shows what it offers, --backend nil runs without a TEE", requested, requested, reason)
		}
		return "", fmt.Errorf("--backend %s: %w", requested, err)
	}
	return b, nil
}

// findRuntime returns the runtime binary: path if given, else
// runtimeBinary beside the enarx binary, else on PATH.
func findRuntime(path string) (string, error) {
	if path != "" {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("--runtime: %w", err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("--runtime %s is not an executable file: give the path of %s", path, runtimeBinary)
		}
		return filepath.Abs(path)
	}
	beside := "beside enarx"
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		p := filepath.Join(dir, runtimeBinary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
		beside = "in " + dir + " (beside enarx)"
	}
	if p, err := exec.LookPath(runtimeBinary); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("no runtime: %s is neither %s nor on PATH: install it (`make install`) or give --runtime PATH", runtimeBinary, beside)
}

// interrupted is the cause with which main cancels the context of a command
// when a signal arrives, so that `enarx run` can pass that signal on.
type interrupted struct{ sig syscall.Signal }

func (e interrupted) Error() string { return e.sig.String() + " signal received" }

// signalOf is the signal that cancelled ctx: the one main received, or
// SIGTERM when ctx was cancelled otherwise.
func signalOf(ctx context.Context) syscall.Signal {
	var in interrupted
	if errors.As(context.Cause(ctx), &in) {
		return in.sig
	}
	return syscall.SIGTERM
}

// exitError ends enarx with a status and no message: the status of the
// workload `enarx run` ran, which spoke for itself.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitStatus returns nil for status 0, else an exitError.
func exitStatus(code int) error {
	if code == 0 {
		return nil
	}
	return exitError{code}
}

// runKeep starts a Keep with cfg on the runtime exe, runs it with s as its
// standard streams, passes on the signal that cancels ctx, and returns its
// exit status as an exitError.
func runKeep(ctx context.Context, s stdio, exe string, cfg keep.Config, verbose bool) error {
	files, err := newKeepStdio(s)
	if err != nil {
		return err
	}
	defer files.close()
	p, err := host.Start(ctx, host.StartOptions{Executable: exe, Config: cfg, Stdio: files.stdio})
	files.started()
	if err != nil {
		files.wait()
		if ctx.Err() != nil {
			return exitStatus(128 + int(signalOf(ctx)))
		}
		return fmt.Errorf("%w (runtime %s)", err, exe)
	}
	if verbose {
		printReady(files.stderr, p.Ready())
	}
	if err := p.Run(); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
		files.wait()
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Signal(signalOf(ctx))
		select {
		case <-p.Done():
		case <-time.After(killAfter):
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
	}
	files.wait()
	status, _ := p.Status()
	return exitStatus(status)
}

// printReady writes the attestation summary of a ready Keep.
func printReady(w io.Writer, r keep.Ready) {
	tee := r.TEE
	if r.TEEVersion != "" {
		tee += " (" + r.TEEVersion + ")"
	}
	if r.Backend == nodepolicy.BackendNil {
		tee += ": NOT confidential"
	}
	fmt.Fprintf(w, "enarx run: Keep ready on backend %s\n", r.Backend)
	fmt.Fprintf(w, "  TEE:          %s\n", tee)
	fmt.Fprintf(w, "  workload:     %s\n", r.WorkloadDigest)
	fmt.Fprintf(w, "  runtime:      %s, %s\n", r.RuntimeVersion, r.RuntimeDigest)
	fmt.Fprintf(w, "  engine:       %s\n", r.Engine)
	fmt.Fprintf(w, "  evidence:     %s\n", r.EvidenceDigest)
	if r.ModuleCache != "" {
		fmt.Fprintf(w, "  module cache: %s (compile %s)\n", r.ModuleCache, r.CompileTime.Round(time.Millisecond))
	}
}

// keepStdio gives a Keep the standard streams of enarx: its files as they
// are, other readers and writers (a test's buffers) through pipes.
type keepStdio struct {
	stdio host.Stdio
	// stderr is where enarx writes beside the Keep's stderr: the
	// writes of both go in whole.
	stderr io.Writer
	// theirs are the Keep's ends of the pipes, closed once it has started.
	theirs []*os.File
	// ours are our ends, closed when the copies are done.
	ours   []*os.File
	copies sync.WaitGroup
}

// lockedWriter serialises writes to w, and hides any ReadFrom of w (a
// bytes.Buffer's would let a copy overwrite what others write meanwhile).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func newKeepStdio(s stdio) (*keepStdio, error) {
	k := &keepStdio{}
	var err error
	if k.stdio.Stdin, err = k.input(s.Stdin); err == nil {
		if k.stdio.Stdout, _, err = k.output(s.Stdout); err == nil {
			k.stdio.Stderr, k.stderr, err = k.output(s.Stderr)
		}
	}
	if err != nil {
		k.started()
		k.close()
		return nil, fmt.Errorf("standard streams of the Keep: %w", err)
	}
	return k, nil
}

func (k *keepStdio) input(r io.Reader) (*os.File, error) {
	if r == nil {
		return nil, nil
	}
	if f, ok := r.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	k.theirs = append(k.theirs, pr)
	// Not waited for: the workload may never read all of it.
	go func() {
		_, _ = io.Copy(pw, r)
		pw.Close()
	}()
	return pr, nil
}

// output returns the Keep's file for w, and the writer through which
// others write to w beside it.
func (k *keepStdio) output(w io.Writer) (*os.File, io.Writer, error) {
	if w == nil {
		return nil, io.Discard, nil
	}
	if f, ok := w.(*os.File); ok {
		return f, f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	k.theirs = append(k.theirs, pw)
	k.ours = append(k.ours, pr)
	lw := &lockedWriter{w: w}
	k.copies.Add(1)
	go func() {
		defer k.copies.Done()
		_, _ = io.Copy(lw, pr)
	}()
	return pw, lw, nil
}

// started closes the Keep's ends of the pipes: once the Keep has them (or
// did not start), ours see EOF when it exits.
func (k *keepStdio) started() {
	for _, f := range k.theirs {
		f.Close()
	}
	k.theirs = nil
}

// wait waits until the Keep's output has been copied.
func (k *keepStdio) wait() { k.copies.Wait() }

func (k *keepStdio) close() {
	k.started()
	for _, f := range k.ours {
		f.Close()
	}
}
