package host_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/guest"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/version"
)

// TestMain makes the test binary a Keep when the shim side starts it with
// keep.Subcommand, as the shim binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == keep.Subcommand {
		os.Exit(guest.Main(os.Args[2:], keeptest.Factory))
	}
	os.Exit(m.Run())
}

// writeModule writes a fake module running cmd and returns its path and bytes.
func writeModule(t *testing.T, cmd string) (string, []byte) {
	t.Helper()
	b := keeptest.Module(cmd)
	p := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// startOptions are the options of a Keep that runs cmd with the test binary.
func startOptions(t *testing.T, cmd string) host.StartOptions {
	module, _ := writeModule(t, cmd)
	return host.StartOptions{
		Executable: os.Args[0],
		Dir:        t.TempDir(),
		Config:     keep.Config{ID: keeptest.ID(t), Workload: workload.Workload{Module: module, Args: []string{"app.wasm"}}},
	}
}

// startKeep starts a Keep and makes sure it is gone when the test ends.
func startKeep(t *testing.T, opts host.StartOptions) *host.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := host.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
	})
	return p
}

// exitStatus waits for the Keep to exit and returns its status.
func exitStatus(t *testing.T, p *host.Process, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(timeout):
		t.Fatalf("keep pid %d still running after %v", p.Pid(), timeout)
	}
	status, at := p.Status()
	if at.IsZero() {
		t.Errorf("exit time not recorded")
	}
	return status
}

// outputFile is a file for a Keep's stdout or stderr.
func outputFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readFile(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartReportsReady(t *testing.T) {
	opts := startOptions(t, "exit 0")
	wasm, err := os.ReadFile(opts.Config.Module)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	p := startKeep(t, opts)

	want := keep.Ready{
		Backend:        nodepolicy.BackendNil,
		TEE:            "none",
		WorkloadDigest: "sha256:" + hex.EncodeToString(sum[:]),
		RuntimeVersion: version.Version,
		Engine:         keeptest.EngineName,
	}
	got := p.Ready()
	evidence, err := attestation.ParseEvidence(got.Evidence)
	if err != nil {
		t.Fatalf("Ready().Evidence: %v", err)
	}
	if err := evidence.CheckBinding(); err != nil {
		t.Errorf("evidence binding: %v", err)
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exeSum := sha256.Sum256(exe)
	if want := "sha256:" + hex.EncodeToString(exeSum[:]); got.RuntimeDigest != want || evidence.Inputs.RuntimeDigest != want {
		t.Errorf("runtime digest %q (evidence %q), want %q", got.RuntimeDigest, evidence.Inputs.RuntimeDigest, want)
	}
	if evidence.TEE != "none" || evidence.Inputs.WorkloadDigest != want.WorkloadDigest || len(evidence.Report) != 0 {
		t.Errorf("evidence: tee %q, workload %q, report %d bytes", evidence.TEE, evidence.Inputs.WorkloadDigest, len(evidence.Report))
	}
	if got.EvidenceDigest != evidence.Digest() {
		t.Errorf("evidence digest %q, want %q", got.EvidenceDigest, evidence.Digest())
	}
	if got.AttestTime <= 0 {
		t.Errorf("attest time %v", got.AttestTime)
	}
	if got.ModuleCache != keep.CacheOff || got.CompileTime <= 0 {
		t.Errorf("module cache %q, compile time %v; want %q without a cache directory", got.ModuleCache, got.CompileTime, keep.CacheOff)
	}
	got.Evidence, got.RuntimeDigest, got.EvidenceDigest, got.AttestTime = nil, "", "", 0
	got.ModuleCache, got.CompileTime = "", 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ready() = %+v, want %+v", got, want)
	}
	if want.RuntimeVersion == "" {
		t.Error("runtime version is empty")
	}
	if p.Pid() <= 0 {
		t.Errorf("Pid() = %d", p.Pid())
	}
	if got := keeptest.Processes(opts.Config.ID); len(got) != 1 || got[0] != p.Pid() {
		t.Errorf("keep processes of %s = %v, want [%d] (cmdline \"<exe> keep -id <id>\")", opts.Config.ID, got, p.Pid())
	}
	// A ready Keep waits for Run.
	select {
	case <-p.Done():
		t.Fatal("keep exited before Run")
	case <-time.After(200 * time.Millisecond):
	}
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if status := exitStatus(t, p, 10*time.Second); status != 0 {
		t.Errorf("status = %d, want 0", status)
	}
}

func TestRunExitStatus(t *testing.T) {
	p := startKeep(t, startOptions(t, "exit 42"))
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if status := exitStatus(t, p, 10*time.Second); status != 42 {
		t.Errorf("status = %d, want 42", status)
	}
	// After the exit.
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	if err := p.Run(); err == nil {
		t.Error("Run after exit succeeded")
	}
}

// runToEnd runs a started Keep's workload and returns its exit status.
func runToEnd(t *testing.T, p *host.Process) int {
	t.Helper()
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return exitStatus(t, p, 10*time.Second)
}

func TestRunTrap(t *testing.T) {
	opts := startOptions(t, "trap")
	stderr := outputFile(t, "stderr")
	opts.Stdio.Stderr = stderr
	p := startKeep(t, opts)
	if status := runToEnd(t, p); status != 134 {
		t.Errorf("status = %d, want 134", status)
	}
	out := readFile(t, stderr)
	if !strings.Contains(out, "unreachable instruction executed at fake+0x2a") || !strings.Contains(out, opts.Config.ID) {
		t.Errorf("stderr = %q, want the trap message and the container ID", out)
	}
}

func TestRunFailure(t *testing.T) {
	opts := startOptions(t, "fail wasi: out of file descriptors")
	stderr := outputFile(t, "stderr")
	opts.Stdio.Stderr = stderr
	p := startKeep(t, opts)
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if status := exitStatus(t, p, 10*time.Second); status != keep.StatusFailed {
		t.Errorf("status = %d, want %d", status, keep.StatusFailed)
	}
	if out := readFile(t, stderr); !strings.Contains(out, "wasi: out of file descriptors") {
		t.Errorf("stderr = %q, want the engine's error", out)
	}
}

func TestSignals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cmd    string
		run    bool
		sig    syscall.Signal
		status int
		within time.Duration
	}{
		{"SIGTERM while spinning", "spin", true, syscall.SIGTERM, 143, 5 * time.Second},
		{"SIGINT while spinning", "spin", true, syscall.SIGINT, 130, 5 * time.Second},
		// Signals a WebAssembly workload cannot handle end it, 128+n.
		{"SIGHUP while spinning", "spin", true, syscall.SIGHUP, 129, 5 * time.Second},
		{"SIGUSR1 while blocked", "block", true, syscall.SIGUSR1, 138, time.Second},
		// A blocking host call ignores the interruption: the grace ends it.
		{"SIGTERM while blocked", "block", true, syscall.SIGTERM, 143, time.Second},
		{"SIGKILL while spinning", "spin", true, syscall.SIGKILL, 137, 5 * time.Second},
		{"SIGKILL while blocked", "block", true, syscall.SIGKILL, 137, 5 * time.Second},
		{"SIGTERM before Run", "exit 0", false, syscall.SIGTERM, 143, 5 * time.Second},
		{"SIGKILL before Run", "exit 0", false, syscall.SIGKILL, 137, 5 * time.Second},
		// Crash signals end the Keep by the signal, not by the Go
		// runtime's exit status 2.
		{"SIGSEGV while spinning", "spin", true, syscall.SIGSEGV, 139, 5 * time.Second},
		{"SIGSEGV while blocked", "block", true, syscall.SIGSEGV, 139, 5 * time.Second},
		{"SIGABRT while spinning", "spin", true, syscall.SIGABRT, 134, 5 * time.Second},
		{"SIGBUS while blocked", "block", true, syscall.SIGBUS, 135, 5 * time.Second},
		{"SIGQUIT while blocked", "block", true, syscall.SIGQUIT, 131, 5 * time.Second},
		{"SIGSEGV before Run", "exit 0", false, syscall.SIGSEGV, 139, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := startOptions(t, tc.cmd)
			stderr := outputFile(t, "stderr")
			opts.Stdio.Stderr = stderr
			p := startKeep(t, opts)
			if tc.run {
				if err := p.Run(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				// Let the workload get going.
				select {
				case <-p.Done():
					t.Fatalf("keep exited before the signal; stderr: %s", readFile(t, stderr))
				case <-time.After(100 * time.Millisecond):
				}
			}
			sent := time.Now()
			if err := p.Signal(tc.sig); err != nil {
				t.Fatalf("Signal: %v", err)
			}
			status := exitStatus(t, p, 10*time.Second)
			if status != tc.status {
				t.Errorf("status = %d, want %d (stderr: %q)", status, tc.status, readFile(t, stderr))
			}
			if !slices.Contains([]syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL, syscall.SIGHUP, syscall.SIGUSR1}, tc.sig) {
				if want := "killed by signal " + unix.SignalName(tc.sig); !strings.Contains(readFile(t, stderr), want) {
					t.Errorf("stderr %q does not say %q", readFile(t, stderr), want)
				}
			}
			if took := time.Since(sent); took > tc.within {
				t.Errorf("keep took %v to exit after %v, want at most %v", took, tc.sig, tc.within)
			}
		})
	}
}

func TestStartCompileError(t *testing.T) {
	opts := startOptions(t, "compile-error")
	p, err := host.Start(context.Background(), opts)
	if err == nil {
		p.Signal(syscall.SIGKILL)
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"fake engine: invalid opcode 0xff at offset 42", opts.Config.Module, opts.Config.ID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if pids := keeptest.Processes(opts.Config.ID); len(pids) != 0 {
		t.Errorf("keep processes left: %v", pids)
	}
}

func TestStartMissingModule(t *testing.T) {
	opts := startOptions(t, "exit 0")
	opts.Config.Module = filepath.Join(t.TempDir(), "missing.wasm")
	p, err := host.Start(context.Background(), opts)
	if err == nil {
		p.Signal(syscall.SIGKILL)
		t.Fatal("Start succeeded")
	}
	if !strings.Contains(err.Error(), opts.Config.Module) {
		t.Errorf("error %q does not name %s", err, opts.Config.Module)
	}
	if pids := keeptest.Processes(opts.Config.ID); len(pids) != 0 {
		t.Errorf("keep processes left: %v", pids)
	}
}

func TestStartContextDone(t *testing.T) {
	opts := startOptions(t, "compile-hang")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p, err := host.Start(ctx, opts)
	if err == nil {
		p.Signal(syscall.SIGKILL)
		t.Fatal("Start succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
	if pids := keeptest.Processes(opts.Config.ID); len(pids) != 0 {
		t.Errorf("keep processes left: %v", pids)
	}
}

func TestStartInvalidConfig(t *testing.T) {
	// The executable records that it ran: it must not.
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	exe := filepath.Join(dir, "keep.sh")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	module, _ := writeModule(t, "exit 0")
	for _, tc := range []struct {
		name string
		cfg  keep.Config
		want string
	}{
		{"relative module path", keep.Config{ID: "a", Workload: workload.Workload{Module: "rootfs/app.wasm"}}, "not absolute"},
		{"unknown backend", keep.Config{ID: "a", Backend: "sgx", Workload: workload.Workload{Module: module}}, `unknown keep backend "sgx"`},
		{"empty module path", keep.Config{ID: "a"}, "module path is empty"},
		{"empty id", keep.Config{Workload: workload.Workload{Module: module}}, "id is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := host.Start(context.Background(), host.StartOptions{Executable: exe, Dir: dir, Config: tc.cfg})
			if err == nil {
				p.Signal(syscall.SIGKILL)
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if verr := tc.cfg.Validate(); verr == nil || verr.Error() != err.Error() {
				t.Errorf("Start error %q, Validate error %v: want the same", err, verr)
			}
			if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the Keep executable ran (stat marker: %v)", err)
			}
		})
	}
	// The marker script works: a valid config runs it.
	p, err := host.Start(context.Background(), host.StartOptions{Executable: exe, Dir: dir, Config: keep.Config{ID: "a", Workload: workload.Workload{Module: module}}})
	if err == nil {
		p.Signal(syscall.SIGKILL)
		t.Fatal("Start succeeded with an executable that is no Keep")
	}
	if _, serr := os.Stat(marker); serr != nil {
		t.Errorf("valid config: the executable did not run (%v); Start: %v", serr, err)
	}
	if !strings.Contains(err.Error(), "exited with status 0 before it") {
		t.Errorf("Start of an executable that is no Keep: %v; want its exit status", err)
	}
}

// TestStartNotAKeep: an executable that exits without reading its config
// (a wrong runtime binary) is reported with its exit status, whether the
// config was still being sent or its answer awaited.
func TestStartNotAKeep(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "notakeep.sh")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	module, _ := writeModule(t, "exit 0")
	for i := 0; i < 5; i++ {
		p, err := host.Start(context.Background(), host.StartOptions{Executable: exe, Dir: dir, Config: keep.Config{ID: "a", Workload: workload.Workload{Module: module}}})
		if err == nil {
			p.Signal(syscall.SIGKILL)
			t.Fatal("Start succeeded with an executable that is no Keep")
		}
		if !strings.Contains(err.Error(), "keep a exited with status 3 before it") {
			t.Fatalf("Start: %v; want the exit status 3", err)
		}
	}
}

func TestValidBackends(t *testing.T) {
	for _, b := range []string{"", nodepolicy.BackendNil} {
		c := keep.Config{ID: "a", Backend: b, Workload: workload.Workload{Module: "/app.wasm"}}
		if err := c.Validate(); err != nil {
			t.Errorf("backend %q: %v", b, err)
		}
	}
}

func TestWorkloadStdout(t *testing.T) {
	opts := startOptions(t, "print hello")
	stdout := outputFile(t, "stdout")
	opts.Stdio.Stdout = stdout
	p := startKeep(t, opts)
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if status := exitStatus(t, p, 10*time.Second); status != 0 {
		t.Errorf("status = %d, want 0", status)
	}
	if out := readFile(t, stdout); out != "hello\n" {
		t.Errorf("stdout = %q, want %q", out, "hello\n")
	}
}

func TestWorkloadStdoutPipe(t *testing.T) {
	opts := startOptions(t, "print hello")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts.Stdio.Stdout = w
	p := startKeep(t, opts)
	w.Close() // the Keep has its copy
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	select {
	case got := <-out:
		if got != "hello\n" {
			t.Errorf("stdout = %q, want %q", got, "hello\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stdout pipe not closed: the Keep's stdout leaked to another process")
	}
	if status := exitStatus(t, p, 10*time.Second); status != 0 {
		t.Errorf("status = %d, want 0", status)
	}
}

func TestArgsAndEnv(t *testing.T) {
	opts := startOptions(t, "print-args")
	opts.Config.Args = []string{"app.wasm", "--flag", "a b"}
	opts.Config.Env = []string{"GREETING=hello", "EMPTY="}
	opts.Config.Entrypoint = "serve"
	stdout := outputFile(t, "stdout")
	opts.Stdio.Stdout = stdout
	p := startKeep(t, opts)
	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if status := exitStatus(t, p, 10*time.Second); status != 0 {
		t.Errorf("status = %d, want 0", status)
	}
	var got keeptest.PrintedArgs
	if err := json.Unmarshal([]byte(readFile(t, stdout)), &got); err != nil {
		t.Fatalf("stdout: %v", err)
	}
	want := keeptest.PrintedArgs{Entrypoint: "serve", Args: opts.Config.Args, Env: opts.Config.Env}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("module saw %+v, want %+v", got, want)
	}
}

func TestMainWithoutControlSocket(t *testing.T) {
	cmd := exec.Command(os.Args[0], keep.Subcommand, "-id", keeptest.ID(t))
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != keep.StatusFailed {
		t.Fatalf("keep run by hand: %v, want exit status %d; output %q", err, keep.StatusFailed, out)
	}
	if !strings.Contains(string(out), "no control socket") {
		t.Errorf("output %q does not explain the missing control socket", out)
	}
}

// TestAttestOnDemand asks a Keep for fresh evidence before and while it runs:
// each binds the nonce, with the Keep's one key.
func TestAttestOnDemand(t *testing.T) {
	opts := startOptions(t, "block")
	p := startKeep(t, opts)
	start, err := attestation.ParseEvidence(p.Ready().Evidence)
	if err != nil {
		t.Fatal(err)
	}
	check := func(nonce []byte) {
		t.Helper()
		b, err := p.Attest(context.Background(), nonce)
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		ev, err := attestation.ParseEvidence(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.CheckBinding(); err != nil {
			t.Errorf("binding: %v", err)
		}
		if string(ev.Inputs.Nonce) != string(nonce) || string(ev.Inputs.KeepPublicKey) != string(start.Inputs.KeepPublicKey) {
			t.Errorf("nonce %x (want %x), same key %v", ev.Inputs.Nonce, nonce, string(ev.Inputs.KeepPublicKey) == string(start.Inputs.KeepPublicKey))
		}
	}
	check([]byte("before run"))
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	check([]byte("while running"))
	if _, err := p.Attest(context.Background(), make([]byte, attestation.MaxNonceSize+1)); err == nil {
		t.Error("Attest with an oversized nonce succeeded")
	}
	check(nil)
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
	if _, err := p.Attest(context.Background(), nil); err == nil {
		t.Error("Attest after exit succeeded")
	}
}

// TestPageProfile: what a Keep's run reports of the pages it wrote reaches
// the shim once the Keep has exited (Profile), and a later Keep of the same
// module is given it to populate; a Keep of another module is not.
func TestPageProfile(t *testing.T) {
	run := func(populate *keep.PageProfile) (*host.Process, string) {
		t.Helper()
		opts := startOptions(t, "touch")
		opts.Config.Populate = populate
		stdout := outputFile(t, "stdout")
		opts.Stdio.Stdout = stdout
		p := startKeep(t, opts)
		if status := runToEnd(t, p); status != 0 {
			t.Fatalf("status %d, want 0", status)
		}
		return p, strings.TrimSpace(readFile(t, stdout))
	}
	first, given := run(nil)
	if given != "null" {
		t.Errorf("first Keep was given %s to populate, want nothing", given)
	}
	profile := first.Profile()
	if profile == nil || profile.WorkloadDigest != first.Ready().WorkloadDigest || !reflect.DeepEqual(profile.Ranges, keeptest.TouchedRanges) {
		t.Fatalf("Profile() = %+v, want the module's digest %s and %+v", profile, first.Ready().WorkloadDigest, keeptest.TouchedRanges)
	}
	want, _ := json.Marshal(keeptest.TouchedRanges)
	if _, given := run(profile); given != string(want) {
		t.Errorf("Keep of the same module was given %s to populate, want %s", given, want)
	}
	other := *profile
	other.WorkloadDigest = "sha256:" + strings.Repeat("0", 64)
	if _, given := run(&other); given != "null" {
		t.Errorf("Keep of another module was given %s to populate, want nothing", given)
	}
}
