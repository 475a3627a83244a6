// Package test holds the end-to-end tests: they start real containerd daemons
// (Debian's 1.6 and a 2.4.2 built from its Go module), import locally built
// OCI images and drive them with `ctr`.
//
// Environment:
//
//	ENARX_CONTAINERD16, ENARX_CTR16  containerd 1.6 and its ctr (default /usr/bin/containerd, /usr/bin/ctr)
//	ENARX_CONTAINERD2, ENARX_CTR2    containerd 2.4.2 and its ctr (default
//	                                 ${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}/containerd-v2.4.2/{containerd,ctr})
//	ENARX_BIN_DIR                    prebuilt containerd-shim-enarx-v1, enarx-shim, enarx-keep and enarx (default: built once per run)
//	ENARX_CNI_BIN                    the CNI plugins loopback, ptp and host-local, for pods on a pod network
//	ENARX_E2E_OPTIONAL=1             skip, rather than fail, when not root or a daemon is missing
//	ENARX_E2E_DEBUG=1                run the daemons with log level debug
//
// `scripts/containerd.sh install` installs both daemons; `scripts/containerd.sh env`
// prints the variables above.
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/internal/starter"
	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// Environment variables the harness reads.
const (
	envContainerd16 = "ENARX_CONTAINERD16"
	envCtr16        = "ENARX_CTR16"
	envContainerd2  = "ENARX_CONTAINERD2"
	envCtr2         = "ENARX_CTR2"
	envCache        = "ENARX_CACHE"
	envBinDir       = "ENARX_BIN_DIR"
	envOptional     = "ENARX_E2E_OPTIONAL"
	envDebug        = "ENARX_E2E_DEBUG"
)

// Runtime names for `ctr run --runtime`.
const (
	runtimeEnarx = "io.containerd.enarx.v1"
	runtimeRunc  = "io.containerd.runc.v2"
)

// Names of the binaries we build, as the daemons look them up on their PATH.
const (
	shimBinary   = "containerd-shim-enarx-v1"
	serverBinary = "enarx-shim" // the shim's server, which its start runs from beside it
	keepBinary   = "enarx-keep" // the runtime binary the shim runs Keeps from, beside it
	enarxBinary  = "enarx"
)

// daemonKind names a containerd release line under test.
type daemonKind string

const (
	containerd16 daemonKind = "containerd-1.6"
	containerd24 daemonKind = "containerd-2.4"
)

// daemonKinds lists every kind, in the order forEachDaemon runs them.
var daemonKinds = []daemonKind{containerd16, containerd24}

const (
	containerd2Version  = "v2.4.2"
	defaultCtrTimeout   = 60 * time.Second
	daemonReadyTimeout  = 30 * time.Second
	daemonStopTimeout   = 10 * time.Second
	leftoverGracePeriod = 5 * time.Second

	// Prefixes of the directories the harness makes under /tmp; each holds an
	// ownerFile naming the test process, so that a later run can sweep what a
	// killed run left behind.
	workDirPrefix   = "enarx-e2e-"
	daemonDirPrefix = "ectr-"
	ownerFile       = ".enarx-e2e-owner"
)

// harness is the state shared by all tests of the package run.
var harness struct {
	moduleRoot string // the module's root directory
	workDir    string // temp dir for built binaries, fixtures and images
	rootErr    error  // non-nil when not running as root

	binDir   string        // where containerd-shim-enarx-v1 and enarx are
	binDone  chan struct{} // closed when the build has finished
	binErr   error         // the build's error, valid after binDone
	binStop  context.CancelFunc
	prebuilt bool // binDir comes from ENARX_BIN_DIR

	mu      sync.Mutex
	daemons map[daemonKind]*sharedEntry
}

type sharedEntry struct {
	once sync.Once
	d    *Daemon
	err  error
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if err := setupHarness(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e harness: %v\n", err)
		return 1
	}
	code := m.Run()
	if err := teardownHarness(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e harness teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func setupHarness() error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("module root %s: %w", root, err)
	}
	harness.moduleRoot = root
	harness.daemons = map[daemonKind]*sharedEntry{}
	if os.Geteuid() != 0 {
		harness.rootErr = fmt.Errorf("the end-to-end tests must run as root (euid %d)", os.Geteuid())
	}
	sweepStaleDirs()
	harness.workDir, err = os.MkdirTemp("", workDirPrefix)
	if err != nil {
		return err
	}
	if err := writeOwner(harness.workDir); err != nil {
		return err
	}
	fixtures.Dir = filepath.Join(harness.workDir, "fixtures")

	harness.binDone = make(chan struct{})
	if dir := os.Getenv(envBinDir); dir != "" {
		harness.prebuilt = true
		harness.binDir, err = filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", envBinDir, dir, err)
		}
		close(harness.binDone)
		return nil
	}
	harness.binDir = filepath.Join(harness.workDir, "bin")
	if err := os.MkdirAll(harness.binDir, 0o755); err != nil {
		return err
	}
	// Build in the background: the daemons can start meanwhile, and tests
	// that never run our shim (TestHarness) do not wait for it.
	ctx, cancel := context.WithCancel(context.Background())
	harness.binStop = cancel
	go func() {
		defer close(harness.binDone)
		harness.binErr = buildOurBinaries(ctx, harness.binDir)
	}()
	return nil
}

func teardownHarness() error {
	var errs []error
	harness.mu.Lock()
	for _, kind := range daemonKinds {
		if e := harness.daemons[kind]; e != nil && e.d != nil {
			if err := e.d.stop(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			}
		}
	}
	harness.mu.Unlock()
	if harness.binStop != nil {
		harness.binStop()
	}
	<-harness.binDone
	if err := os.RemoveAll(harness.workDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// buildOurBinaries builds the shim and its server (static, without cgo, as
// make build does), the Keep's runtime binary and the enarx CLI into dir.
func buildOurBinaries(ctx context.Context, dir string) error {
	for _, b := range []struct {
		out, pkg string
		env      []string
	}{
		{shimBinary, "./cmd/containerd-shim-enarx-v1", []string{"CGO_ENABLED=0"}},
		{serverBinary, "./cmd/enarx-shim", []string{"CGO_ENABLED=0"}},
		{keepBinary, "./cmd/enarx-keep", nil},
		{enarxBinary, "./cmd/enarx", nil},
	} {
		if err := wasmfixture.GoBuild(ctx, harness.moduleRoot, b.env, "-o", filepath.Join(dir, b.out), b.pkg); err != nil {
			return err
		}
	}
	return nil
}

// requireBinaries waits for our binaries (containerd-shim-enarx-v1, enarx-shim, enarx-keep, enarx) and
// returns the directory holding them; it fails the test when they did not build.
func requireBinaries(t testing.TB) string {
	t.Helper()
	<-harness.binDone
	if harness.binErr != nil {
		t.Fatalf("building our binaries failed: %v", harness.binErr)
	}
	for _, name := range []string{shimBinary, serverBinary, keepBinary, enarxBinary} {
		p := filepath.Join(harness.binDir, name)
		if _, err := os.Stat(p); err != nil {
			if harness.prebuilt {
				t.Fatalf("%s=%s: %v", envBinDir, harness.binDir, err)
			}
			t.Fatalf("%s: %v", p, err)
		}
	}
	return harness.binDir
}

// skipOrFail ends the test when the environment cannot run it: a skip under
// ENARX_E2E_OPTIONAL=1, a failure otherwise.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(envOptional) == "1" {
		t.Skipf(format, args...)
	}
	t.Fatalf(format, args...)
}

// errMissingDaemon reports a daemon binary that is not installed.
var errMissingDaemon = errors.New("not installed (run scripts/containerd.sh install)")

// daemonBinaries returns the containerd and ctr paths for kind, from the
// environment or the defaults.
func daemonBinaries(kind daemonKind) (containerd, ctr string, err error) {
	switch kind {
	case containerd16:
		containerd = envOr(envContainerd16, "/usr/bin/containerd")
		ctr = envOr(envCtr16, "/usr/bin/ctr")
	case containerd24:
		dir := filepath.Join(cacheDir(), "containerd-"+containerd2Version)
		containerd = envOr(envContainerd2, filepath.Join(dir, "containerd"))
		ctr = envOr(envCtr2, filepath.Join(dir, "ctr"))
	default:
		return "", "", fmt.Errorf("unknown daemon kind %q", kind)
	}
	for _, p := range []string{containerd, ctr} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("%s: %s %w", kind, p, errMissingDaemon)
		}
	}
	return containerd, ctr, nil
}

// cacheDir is ${ENARX_CACHE:-$HOME/.cache/containerd-shim-enarx}, as in scripts/containerd.sh.
func cacheDir() string {
	if d := os.Getenv(envCache); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "containerd-shim-enarx")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Daemon is a containerd daemon started by the harness, with its root,
// state and sockets in a private directory under /tmp.
type Daemon struct {
	Name         string // "containerd-1.6" or "containerd-2.4"
	Kind         daemonKind
	Version      string // the server version `ctr version` reports, e.g. "1.6.20~ds1"
	Binary       string // the containerd executable
	Ctr          string // the matching ctr executable
	Dir          string // private directory holding everything below
	Root         string // containerd root
	State        string // containerd state
	Address      string // grpc socket
	TTRPCAddress string // ttrpc socket
	Config       string // config file
	Log          string // stdout+stderr of the daemon
	PID          int
	StartTime    time.Duration // from exec to the first answer of `ctr version`
	BinDir       string        // our binaries' directory, first on the daemon's PATH
	Env          []string      // extra environment of the daemon (and so of its shims)
	Path         string        // the daemon's PATH
	RuncShim     string        // the containerd-shim-runc-v2 the daemon finds ("" if none)

	// CRI, when set, enables containerd's CRI plugin (startDaemonCRI).
	CRI *criOptions

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been waited for
	waitErr error

	mu         sync.Mutex
	namespaces map[string]bool // namespaces handed out by newNamespace
}

// sharedDaemon returns the daemon of kind shared by all tests of the run,
// starting it on first use; TestMain stops it after all tests.
func sharedDaemon(t testing.TB, kind daemonKind) *Daemon {
	t.Helper()
	requireDaemonEnv(t, kind)
	harness.mu.Lock()
	e := harness.daemons[kind]
	if e == nil {
		e = &sharedEntry{}
		harness.daemons[kind] = e
	}
	harness.mu.Unlock()
	e.once.Do(func() { e.d, e.err = launchDaemon(kind, "", nil, nil) })
	if e.err != nil {
		t.Fatalf("starting %s: %v", kind, e.err)
	}
	select {
	case <-e.d.exited:
		t.Fatalf("%s (pid %d) has exited: %v\n%s", kind, e.d.PID, e.d.waitErr, e.d.LogTail(40))
	default:
	}
	return e.d
}

// startDaemon starts a private daemon of kind for this test only (for tests
// that restart or break it) and stops it in t.Cleanup.
func startDaemon(t testing.TB, kind daemonKind) *Daemon {
	t.Helper()
	return startDaemonWith(t, kind, "", nil)
}

// startDaemonWith is startDaemon with our binaries from binDir (empty: the
// harness's) and env added to the daemon's environment.
func startDaemonWith(t testing.TB, kind daemonKind, binDir string, env []string) *Daemon {
	t.Helper()
	requireDaemonEnv(t, kind)
	d, err := launchDaemon(kind, binDir, env, nil)
	if err != nil {
		t.Fatalf("starting %s: %v", kind, err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("stopping %s: %v", kind, err)
		}
	})
	return d
}

// requireDaemonEnv skips or fails the test when kind cannot run here.
func requireDaemonEnv(t testing.TB, kind daemonKind) {
	t.Helper()
	if harness.rootErr != nil {
		skipOrFail(t, "%v", harness.rootErr)
	}
	if _, _, err := daemonBinaries(kind); err != nil {
		skipOrFail(t, "%v", err)
	}
}

// forEachDaemon runs f as a subtest named after each daemon kind, with that
// kind's shared daemon.
func forEachDaemon(t *testing.T, f func(t *testing.T, d *Daemon)) {
	t.Helper()
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			f(t, sharedDaemon(t, kind))
		})
	}
}

// launchDaemon writes a config for kind and starts containerd with it, with
// our binaries from binDir (empty: the harness's) and env added, and the CRI
// plugin enabled when cri is not nil.
func launchDaemon(kind daemonKind, binDir string, env []string, cri *criOptions) (*Daemon, error) {
	if binDir == "" {
		binDir = harness.binDir
	}
	containerd, ctr, err := daemonBinaries(kind)
	if err != nil {
		return nil, err
	}
	// Unix socket paths must stay under 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("/tmp", daemonDirPrefix)
	if err != nil {
		return nil, err
	}
	// Traversable, as containerd makes its state directory (0711): the
	// root of a container's user namespace reaches its bundle through it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	if err := writeOwner(dir); err != nil {
		return nil, err
	}
	d := &Daemon{
		Name:         string(kind),
		Kind:         kind,
		Binary:       containerd,
		Ctr:          ctr,
		Dir:          dir,
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Address:      filepath.Join(dir, "c.sock"),
		TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		Config:       filepath.Join(dir, "config.toml"),
		Log:          filepath.Join(dir, "containerd.log"),
		BinDir:       binDir,
		Env:          env,
		CRI:          cri,
		namespaces:   map[string]bool{},
	}
	// containerd 2.4 needs the runc shim of its own release (Debian's 1.6
	// shim misreads 2.4's bootstrap parameters): put the directory holding
	// containerd 2.4 (scripts/containerd.sh builds the shim there) after ours.
	dirs := []string{d.BinDir}
	if kind != containerd16 {
		dirs = append(dirs, filepath.Dir(containerd))
	}
	d.Path = daemonPath(dirs...)
	d.RuncShim = lookPathIn("containerd-shim-runc-v2", d.Path)
	if err := os.WriteFile(d.Config, []byte(d.configTOML()), 0o644); err != nil {
		return nil, err
	}
	if err := d.start(); err != nil {
		d.removeDir()
		return nil, err
	}
	return d, nil
}

// configTOML renders the daemon's config file.
func (d *Daemon) configTOML() string {
	level := "info"
	if os.Getenv(envDebug) == "1" {
		level = "debug"
	}
	opt := filepath.Join(d.Dir, "opt")
	if d.CRI != nil {
		return d.criConfigTOML(level, opt)
	}
	switch d.Kind {
	case containerd16:
		return fmt.Sprintf(`version = 2
root = %q
state = %q
imports = []
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = %q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, d.Root, d.State, d.Address, d.TTRPCAddress, level, opt)
	default:
		// containerd 2.x ignores top-level [grpc]/[ttrpc] in a version 3
		// config; the server plugins hold the addresses. CRI is split into
		// several plugins; NRI would listen on /var/run/nri/nri.sock.
		return fmt.Sprintf(`version = 3
root = %q
state = %q
imports = []
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri",
]

[debug]
  level = %q

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = %q

  [plugins."io.containerd.server.v1.ttrpc"]
    address = %q

  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, d.Root, d.State, level, d.Address, d.TTRPCAddress, opt)
	}
}

// start runs the daemon and waits until it answers `ctr version`.
func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.Binary, "--config", d.Config)
	cmd.Env = append(append(withoutPath(cleanEnv()), "PATH="+d.Path), d.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = d.Dir
	// Own process group (a terminal's ^C goes to the test only), and a
	// SIGTERM if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	var namespaces []specs.LinuxNamespace
	if d.CRI != nil && d.CRI.NetNS != "" {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: d.CRI.NetNS})
		cmd.SysProcAttr.Pdeathsig = 0 // see confine.Start; the test's cleanup stops it
	}
	if err := starter.Run(func() error { return confine.Start(cmd, namespaces, nil) }); err != nil {
		return fmt.Errorf("%s --config %s: %w", d.Binary, d.Config, err)
	}
	d.cmd = cmd
	d.PID = cmd.Process.Pid
	d.exited = make(chan struct{})
	d.waitErr = nil
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(daemonReadyTimeout)
	for {
		stdout, _, exit, err := d.exec(context.Background(), "", "", 5*time.Second, "version")
		if err == nil && exit == 0 {
			d.StartTime = time.Since(began)
			d.Version = parseServerVersion(stdout)
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited during startup: %v\n%s", d.Name, d.waitErr, d.LogTail(40))
		default:
		}
		if time.Now().After(deadline) {
			d.kill()
			return fmt.Errorf("%s did not answer `ctr version` within %v\n%s", d.Name, daemonReadyTimeout, d.LogTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseServerVersion picks "Version:" from the Server section of `ctr version`.
func parseServerVersion(out string) string {
	_, server, ok := strings.Cut(out, "Server:")
	if !ok {
		return ""
	}
	for _, line := range strings.Split(server, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// restart stops the daemon with SIGTERM (its shims keep running) and starts
// it again with the same config and directories.
func (d *Daemon) restart(t testing.TB) {
	t.Helper()
	if err := d.terminate(); err != nil {
		t.Fatalf("stopping %s for a restart: %v", d.Name, err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("restarting %s: %v", d.Name, err)
	}
}

// terminate sends SIGTERM, then SIGKILL after daemonStopTimeout, and waits.
func (d *Daemon) terminate() error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	_ = syscall.Kill(d.PID, syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(daemonStopTimeout):
	}
	d.kill()
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v; killed", d.Name, d.PID, daemonStopTimeout)
}

func (d *Daemon) kill() {
	_ = syscall.Kill(d.PID, syscall.SIGKILL)
	<-d.exited
}

// shimExitGrace is how long a shim may take to exit once the daemon is
// stopped: the shim's own shutdown timeout and some slack.
const shimExitGrace = 8 * time.Second

// stop cleans up whatever namespaces are left, stops the daemon, kills shims
// it left behind, unmounts anything under its directory and removes it.
func (d *Daemon) stop() error {
	var errs []error
	alive := true
	select {
	case <-d.exited:
		alive = false
	default:
	}
	if alive {
		stdout, _, _, err := d.exec(context.Background(), "", "", 30*time.Second, "namespaces", "ls", "-q")
		if err == nil {
			for _, ns := range strings.Fields(stdout) {
				if err := d.cleanNamespace(ns); err != nil {
					errs = append(errs, fmt.Errorf("namespace %s left behind: %w", ns, err))
				}
			}
		}
	}
	if err := d.terminate(); err != nil {
		errs = append(errs, err)
	}
	// Shims carry "-address <our socket>" in their command line. A shim
	// whose last task was just deleted may still be flushing its events
	// (to a daemon now gone: bounded by its shutdown timeout of 5 s), so
	// it gets that long to exit before it counts as left behind.
	for deadline := time.Now().Add(shimExitGrace); len(findProcesses(d.Address)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range findProcesses(d.Address) {
		errs = append(errs, fmt.Errorf("killed leftover process %d and its children: %s", p.PID, p.Cmdline))
		reapShim(p)
	}
	if err := d.removeDir(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeDir unmounts what is left mounted under the daemon's directory and removes it.
func (d *Daemon) removeDir() error {
	return removeTree(d.Dir)
}

// LogTail returns the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	data, err := os.ReadFile(d.Log)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", d.Log, err)
	}
	return tailLines(string(data), n)
}

// logSize is the current length of the daemon's log, for logSince.
func (d *Daemon) logSize() int64 {
	fi, err := os.Stat(d.Log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what the daemon logged after offset (at most the last n lines).
func (d *Daemon) logSince(offset int64, n int) string {
	f, err := os.Open(d.Log)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", d.Log, err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err.Error()
	}
	data, _ := io.ReadAll(f)
	return tailLines(string(data), n)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ctrOptions tunes one ctr invocation.
type ctrOptions struct {
	Stdin   string        // what ctr reads on stdin (empty: nothing)
	Timeout time.Duration // 0 means defaultCtrTimeout
}

// ctr runs `ctr --address A --namespace ns args...` and returns its output
// and exit status. It never inherits the test's stdin. A ctr that runs past
// the timeout (60 s) is killed and fails the test (exit -1). An argument
// naming our runtime makes it wait for our binaries first.
func (d *Daemon) ctr(t testing.TB, ns string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	return d.ctrWith(t, ctrOptions{}, ns, args...)
}

// ctrWith is ctr with options (stdin, timeout).
func (d *Daemon) ctrWith(t testing.TB, o ctrOptions, ns string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	for _, a := range args {
		if strings.Contains(a, runtimeEnarx) || strings.Contains(a, shimBinary) {
			requireBinaries(t)
			break
		}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = defaultCtrTimeout
	}
	began := time.Now()
	stdout, stderr, exit, err := d.exec(context.Background(), o.Stdin, ns, timeout, args...)
	t.Logf("%s: ctr -n %s %s: exit %d in %v", d.Name, ns, strings.Join(args, " "), exit, time.Since(began).Round(time.Millisecond))
	if err != nil {
		t.Errorf("%s: ctr %s: %v\nstdout: %s\nstderr: %s", d.Name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout, stderr, exit
}

// mustCtr is ctr that fails the test unless ctr exits 0; it returns stdout.
func (d *Daemon) mustCtr(t testing.TB, ns string, args ...string) string {
	t.Helper()
	stdout, stderr, exit := d.ctr(t, ns, args...)
	if exit != 0 {
		t.Fatalf("%s: ctr -n %s %s: exit %d\nstderr: %s\nstdout: %s", d.Name, ns, strings.Join(args, " "), exit, stderr, stdout)
	}
	return stdout
}

// exec runs ctr without a test. err is set when ctr could not run or timed
// out; a non-zero exit alone is not an error.
func (d *Daemon) exec(ctx context.Context, stdin, ns string, timeout time.Duration, args ...string) (stdout, stderr string, exit int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := []string{"--address", d.Address}
	if ns != "" {
		full = append(full, "--namespace", ns)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, d.Ctr, full...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var outb, errb bytes.Buffer
	cmd.Stdout = &outb
	cmd.Stderr = &errb
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	stdout, stderr = outb.String(), errb.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return stdout, stderr, -1, fmt.Errorf("timed out after %v", timeout)
	case errors.As(runErr, &ee):
		return stdout, stderr, ee.ExitCode(), nil
	case runErr != nil:
		return stdout, stderr, -1, runErr
	}
	return stdout, stderr, 0, nil
}

// cleanEnv is the test's environment without variables that would steer ctr
// or containerd elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONTAINERD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// withoutPath returns env without PATH.
func withoutPath(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

// daemonPath is the test's PATH (or a default) with dirs prepended.
func daemonPath(dirs ...string) string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	var parts []string
	for _, d := range dirs {
		if d != "" {
			parts = append(parts, d)
		}
	}
	return strings.Join(append(parts, path), string(os.PathListSeparator))
}

// lookPathIn finds an executable named name in path ("" if none).
func lookPathIn(name, path string) string {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// requireRuncShim skips or fails a test that runs containers with runc when
// the daemon has no runc shim of its own release.
func requireRuncShim(t testing.TB, d *Daemon) {
	t.Helper()
	want := filepath.Join(filepath.Dir(d.Binary), "containerd-shim-runc-v2")
	if d.RuncShim == "" || (d.Kind != containerd16 && d.RuncShim != want) {
		skipOrFail(t, "%s: no containerd-shim-runc-v2 of its release at %s (found %q on its PATH); run scripts/containerd.sh install", d.Name, want, d.RuncShim)
	}
}

// nsInvalid matches what a containerd namespace may not contain.
var nsInvalid = regexp.MustCompile(`[^A-Za-z0-9]+`)

// newNamespace returns a containerd namespace unique to this test and
// registers its cleanup: tasks killed and deleted, containers, images and
// the namespace removed, and what the daemon logged meanwhile shown if the
// test failed.
func newNamespace(t testing.TB, d *Daemon) string {
	t.Helper()
	base := strings.Trim(nsInvalid.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 50 {
		base = strings.Trim(base[len(base)-50:], "-")
	}
	ns := "e2e-" + base + "-" + randomHex(3)
	d.mu.Lock()
	d.namespaces[ns] = true
	d.mu.Unlock()
	logStart := d.logSize()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log since %s began:\n%s", d.Name, ns, d.logSince(logStart, 200))
		}
		if err := d.cleanNamespace(ns); err != nil {
			if t.Failed() {
				t.Logf("cleaning namespace %s on %s: %v", ns, d.Name, err)
			} else {
				t.Errorf("cleaning namespace %s on %s: %v", ns, d.Name, err)
			}
		}
	})
	return ns
}

// cleanNamespace force-deletes the tasks, containers and images of ns, then
// ns itself, and removes the host-side traces containerd and runc leave per
// namespace (shim sockets in /run/containerd/s, empty runc and cgroup dirs).
func (d *Daemon) cleanNamespace(ns string) error {
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		stdout, stderr, exit, err := d.exec(ctx, "", ns, defaultCtrTimeout, args...)
		if err == nil && exit != 0 {
			err = fmt.Errorf("exit %d: %s", exit, strings.TrimSpace(stderr))
		}
		if err != nil {
			return stdout, fmt.Errorf("ctr %s: %w", strings.Join(args, " "), err)
		}
		return stdout, nil
	}
	out, err := run("namespaces", "ls", "-q")
	if err != nil {
		return err
	}
	if !contains(strings.Fields(out), ns) {
		d.removeHostTraces(ns, nil)
		return nil
	}
	var errs []error
	tasks, err := run("tasks", "ls", "-q")
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range strings.Fields(tasks) {
		if _, err := run("tasks", "delete", "--force", id); err != nil {
			errs = append(errs, err)
		}
	}
	containers, err := run("containers", "ls", "-q")
	if err != nil {
		errs = append(errs, err)
	}
	ids := strings.Fields(containers)
	for _, id := range ids {
		if _, err := run("containers", "delete", id); err != nil {
			errs = append(errs, err)
		}
	}
	images, err := run("images", "ls", "-q")
	if err != nil {
		errs = append(errs, err)
	}
	if refs := strings.Fields(images); len(refs) > 0 {
		if _, err := run(append([]string{"images", "rm", "--sync"}, refs...)...); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := run("namespaces", "rm", ns); err != nil {
		// Say what keeps it from being empty.
		for _, what := range [][]string{{"content", "ls", "-q"}, {"snapshots", "ls"}, {"leases", "ls"}} {
			if out, lerr := run(what...); lerr == nil && strings.TrimSpace(out) != "" {
				err = fmt.Errorf("%w\n%s:\n%s", err, strings.Join(what[:2], " "), out)
			}
		}
		errs = append(errs, err)
	}
	d.removeHostTraces(ns, ids)
	return errors.Join(errs...)
}

// removeHostTraces removes, for namespace ns of this daemon, the shim
// sockets of the given container ids in /run/containerd/s (named
// sha256(address/ns/id) by both the runc shim and ours), and the runc root
// and cgroup directories of ns if they are empty. Nothing else of
// /run/containerd is touched.
func (d *Daemon) removeHostTraces(ns string, ids []string) {
	for _, id := range ids {
		sum := sha256.Sum256([]byte(filepath.Join(d.Address, ns, id)))
		sock := filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
		for _, p := range []string{sock, sock + ".debug"} {
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				_ = os.Remove(p)
			}
		}
	}
	// os.Remove is rmdir here: it fails, harmlessly, on a non-empty directory.
	_ = os.Remove(filepath.Join("/run/containerd/runc", ns))
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	cgroups = append(cgroups, filepath.Join("/sys/fs/cgroup", ns))
	for _, dir := range cgroups {
		_ = os.Remove(dir)
	}
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// uniqueID returns prefix plus a random suffix, for container ids and refs.
func uniqueID(prefix string) string {
	return prefix + "-" + randomHex(4)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// readLines splits s into non-empty lines.
func readLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
			out = append(out, line)
		}
	}
	return out
}
