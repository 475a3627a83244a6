package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
)

// runBuilds are the binaries and modules the `enarx run` tests build once
// per package run, in one directory: the runtime and enarx side by side,
// as `make install` puts them.
var runBuilds struct {
	once sync.Once
	dir  string
	err  error
}

// runTestDir builds, once, the runtime binary (or takes it from
// ENARX_BIN_DIR, as `make test` sets it), the enarx binary beside it, and
// the Go wasip1 fixtures; it returns their directory.
func runTestDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the runtime (cgo, wasmtime) and runs Keeps")
	}
	runBuilds.once.Do(func() {
		dir, err := os.MkdirTemp("", "enarx-run-test-")
		if err != nil {
			runBuilds.err = err
			return
		}
		runBuilds.dir = dir
		root, err := filepath.Abs("../..")
		if err != nil {
			runBuilds.err = err
			return
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		build := func(pkg, out string, env ...string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := wasmfixture.GoBuild(context.Background(), root, env, "-o", filepath.Join(dir, out), pkg); err != nil {
					errs <- err
				}
			}()
		}
		if bin := os.Getenv("ENARX_BIN_DIR"); bin != "" {
			if err := os.Symlink(filepath.Join(bin, runtimeBinary), filepath.Join(dir, runtimeBinary)); err != nil {
				runBuilds.err = err
				return
			}
		} else {
			build("./cmd/enarx-keep", runtimeBinary)
		}
		build("./cmd/enarx", "enarx")
		for _, f := range []string{"echo", "exit", "cat", "sleep", "fsprobe", "netclient"} {
			build("./test/fixtures/"+f, f+".wasm", wasmfixture.Wasip1Env()...)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			runBuilds.err = err
			return
		}
		// A Keep that executes `unreachable` in _start: a trap.
		trap := []byte("\x00asm\x01\x00\x00\x00" +
			"\x01\x04\x01\x60\x00\x00" + // type 0: () -> ()
			"\x03\x02\x01\x00" + // function 0 of type 0
			"\x07\x0a\x01\x06_start\x00\x00" + // exported as _start
			"\x0a\x05\x01\x03\x00\x00\x0b") // body: unreachable
		runBuilds.err = os.WriteFile(filepath.Join(dir, "trap.wasm"), trap, 0o644)
	})
	if runBuilds.err != nil {
		t.Fatal(runBuilds.err)
	}
	return runBuilds.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if runBuilds.dir != "" {
		os.RemoveAll(runBuilds.dir)
	}
	os.Exit(code)
}

// runCase is one `enarx run` in this process.
type runCase struct {
	name   string
	args   []string // after "run"; {dir} is the build directory
	stdin  string
	code   int
	stdout []string // substrings of stdout
	stderr []string // substrings of stderr
	// noStderr are strings stderr must not hold.
	noStderr []string
}

// enarxRun runs `enarx run` with the runtime and module cache of dir.
func enarxRun(t *testing.T, ctx context.Context, dir string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	s := stdio{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		s.Stdin = strings.NewReader(stdin)
	}
	full := []string{"run"}
	for _, a := range args {
		full = append(full, strings.ReplaceAll(a, "{dir}", dir))
	}
	code = run(ctx, s, full)
	return code, out.String(), errb.String()
}

func TestRun(t *testing.T) {
	dir := runTestDir(t)
	rt := "--runtime=" + filepath.Join(dir, runtimeBinary)
	cache := "--module-cache=" + filepath.Join(dir, "modules")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "x"), []byte("hello from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tcp %s\n", r.URL.Path)
	}))
	t.Cleanup(server.Close) // after the parallel subtests
	notWasm := filepath.Join(t.TempDir(), "notwasm.wasm")
	if err := os.WriteFile(notWasm, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []runCase{
		{name: "args and env", args: []string{rt, cache, "--env", "ENARX_TEST_A=1", "--env=ENARX_TEST_B=two words", "{dir}/echo.wasm", "a", "-b", "--c"},
			stdout: []string{"arg: a\narg: -b\narg: --c\nenv: ENARX_TEST_A=1\nenv: ENARX_TEST_B=two words\n"}},
		{name: "argv0", args: []string{rt, cache, "{dir}/fsprobe.wasm", "args"}, stdout: []string{"args: ok: args\n"}},
		{name: "stdin", args: []string{rt, cache, "{dir}/cat.wasm"}, stdin: "some input\n", stdout: []string{"some input\n[11 bytes]\n"}},
		{name: "exit status", args: []string{rt, cache, "{dir}/exit.wasm", "7"}, code: 7, noStderr: []string{"enarx run"}},
		{name: "trap", args: []string{rt, cache, "{dir}/trap.wasm"}, code: 134, stderr: []string{"wasm trap", "unreachable"}, noStderr: []string{"enarx run"}},
		{name: "dir read-only", args: []string{rt, cache, "--dir", data + ":/data:ro", "{dir}/fsprobe.wasm", "read", "/data/x", "write", "/data/y", "no"}, code: 3,
			stdout: []string{"read /data/x: ok: hello from the host\n", "write /data/y: error:"}},
		{name: "dir writable", args: []string{rt, cache, "--dir", out + ":/out", "{dir}/fsprobe.wasm", "write", "/out/y", "yes", "read", "/out/y"},
			stdout: []string{"write /out/y: ok\n", "read /out/y: ok: yes\n"}},
		{name: "memory limit", args: []string{rt, cache, "--memory", "1m", "{dir}/fsprobe.wasm"}, code: 137, stderr: []string{"out of memory: memory limit 1048576 bytes exceeded"}},
		{name: "connect", args: []string{rt, cache, "--connect", "api=tcp://" + server.Listener.Addr().String(), "{dir}/netclient.wasm", "api", "/path"},
			stdout: []string{"200 OK tcp /path\n"}},
		{name: "backend nil", args: []string{rt, cache, "--backend", "nil", "{dir}/exit.wasm", "0"}},
		{name: "instances", args: []string{rt, cache, "--instances", "3", "{dir}/exit.wasm", "7"}, code: 7},

		{name: "missing module", args: []string{rt, "{dir}/nothere.wasm"}, code: 1, stderr: []string{"enarx run: module: open ", "nothere.wasm: no such file or directory"}},
		{name: "not wasm", args: []string{rt, notWasm}, code: 1, stderr: []string{"notwasm.wasm: not a WebAssembly module", "GOOS=wasip1"}},
		{name: "missing runtime", args: []string{"--runtime", "{dir}/nothere", "{dir}/exit.wasm"}, code: 1, stderr: []string{"--runtime: stat ", "nothere: no such file"}},
		{name: "runtime no Keep", args: []string{"--runtime", "/bin/false", "{dir}/exit.wasm"}, code: 1, stderr: []string{"enarx run: keep exit.wasm exited with status 1 before it", "/bin/false"}},
		{name: "missing dir", args: []string{rt, "--dir", "{dir}/nothere:/data", "{dir}/exit.wasm"}, code: 1, stderr: []string{"--dir ", "no such file"}},

		{name: "no module", args: []string{rt}, code: 2, stderr: []string{"run takes a module", "enarx help run"}},
		{name: "bad flag", args: []string{"--bogus", "{dir}/exit.wasm"}, code: 2, stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "bad backend", args: []string{"--backend", "sgx", "{dir}/exit.wasm"}, code: 2, stderr: []string{`--backend "sgx": give auto, nil, sev-snp or tdx`}},
		{name: "bad dir", args: []string{"--dir", "/tmp", "{dir}/exit.wasm"}, code: 2, stderr: []string{"give HOST:GUEST"}},
		{name: "relative guest dir", args: []string{"--dir", "/tmp:data", "{dir}/exit.wasm"}, code: 2, stderr: []string{"is not absolute"}},
		{name: "bad dir mode", args: []string{"--dir", "/tmp:/data:rx", "{dir}/exit.wasm"}, code: 2, stderr: []string{"give ro or rw"}},
		{name: "bad memory", args: []string{"--memory", "lots", "{dir}/exit.wasm"}, code: 2, stderr: []string{"--memory \"lots\""}},
		{name: "bad listen", args: []string{"--listen", "web", "{dir}/exit.wasm"}, code: 2, stderr: []string{"--listen \"web\": give NAME=PROT://HOST:PORT"}},
		{name: "bad connect", args: []string{"--connect", "db=udp://h:1", "{dir}/exit.wasm"}, code: 2, stderr: []string{"--connect \"db=udp://h:1\"", "prot://host:port"}},
		{name: "connect refused", args: []string{rt, "--connect", "db=tcp://127.0.0.1:1", "{dir}/exit.wasm"}, code: 1, stderr: []string{`connect socket "db"`}},
		{name: "bad env", args: []string{"--env", "=x", "{dir}/exit.wasm"}, code: 2, stderr: []string{"give K=V"}},
		{name: "bad instances", args: []string{"--instances", "0", "{dir}/exit.wasm"}, code: 2, stderr: []string{`--instances "0"`, "from 1 to 64"}},
		{name: "instances with a connection", args: []string{rt, "--instances", "2", "--connect", "db=tcp://127.0.0.1:1", "{dir}/exit.wasm"}, code: 1,
			stderr: []string{`connect socket "db" is one connection, which 2 instances cannot share`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := enarxRun(t, context.Background(), dir, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("enarx run %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.args, code, c.code, stdout, stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			for _, bad := range c.noStderr {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr holds %q:\n%s", bad, stderr)
				}
			}
		})
	}
}

// TestRunVerbose checks the attestation summary of -v: the workload digest
// is the module file's.
func TestRunVerbose(t *testing.T) {
	dir := runTestDir(t)
	module := filepath.Join(dir, "exit.wasm")
	b, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	code, stdout, stderr := enarxRun(t, context.Background(), dir, "", "-v", "--runtime", filepath.Join(dir, runtimeBinary),
		"--module-cache", filepath.Join(dir, "modules"), "--backend", "nil", module, "0")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if testing.Verbose() {
		t.Logf("stdout %q stderr %q", stdout, stderr)
	}
	for _, want := range []string{"Keep ready on backend nil", "NOT confidential", "workload:     sha256:" + hex.EncodeToString(sum[:]), "runtime:", "evidence:     sha256:"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestRunNoRuntime: without --runtime, a runtime neither beside enarx (the
// test binary) nor on PATH is a clear error.
func TestRunNoRuntime(t *testing.T) {
	dir := runTestDir(t)
	t.Setenv("PATH", t.TempDir())
	code, _, stderr := enarxRun(t, context.Background(), dir, "", filepath.Join(dir, "exit.wasm"))
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"no runtime: " + runtimeBinary + " is neither in ", "(beside enarx) nor on PATH", "--runtime PATH"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestRunCancel: a context cancelled by a signal ends the workload with
// that signal's status.
func TestRunCancel(t *testing.T) {
	dir := runTestDir(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	var out, errb bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, stdio{Stdout: pw, Stderr: &errb}, []string{"run", "--runtime", filepath.Join(dir, runtimeBinary),
			"--module-cache", filepath.Join(dir, "modules"), filepath.Join(dir, "sleep.wasm"), "1h"})
		pw.Close()
	}()
	waitForLine(t, pr, "sleeping", &out)
	cancel(interrupted{syscall.SIGINT})
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("exit %d, want 130\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enarx run did not end after its context was cancelled")
	}
}

// TestRunSignal: SIGTERM to the enarx binary ends `enarx run` of a
// sleeping module promptly, with status 128+15. enarx finds the runtime
// beside itself.
func TestRunSignal(t *testing.T) {
	dir := runTestDir(t)
	cmd := exec.Command(filepath.Join(dir, "enarx"), "run", "--module-cache", filepath.Join(dir, "modules"), filepath.Join(dir, "sleep.wasm"), "1h")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var out bytes.Buffer
	waitForLine(t, stdout.(*os.File), "sleeping", &out)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatalf("enarx run still running 5s after SIGTERM\n%s", errb.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("exit %d, want 143\nstderr:\n%s", code, errb.String())
	}
	if d := time.Since(sent); d > 2*time.Second {
		t.Errorf("enarx run took %v to end after SIGTERM", d)
	}
}

// waitForLine reads r into out until it holds line, failing the test after
// a minute (a first compile of a Go module takes seconds).
func waitForLine(t *testing.T, r *os.File, line string, out *bytes.Buffer) {
	t.Helper()
	found := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if strings.Contains(out.String(), line+"\n") {
				found <- nil
				return
			}
			if err != nil {
				found <- err
				return
			}
		}
	}()
	select {
	case err := <-found:
		if err != nil {
			t.Fatalf("no %q before %v; output:\n%s", line, err, out.String())
		}
	case <-time.After(time.Minute):
		r.Close()
		t.Fatalf("no %q within a minute", line)
		// (out is the reader's until it returns: not shown.)
	}
}
