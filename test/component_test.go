package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// buildComponent lifts the Go wasip1 fixture name into a wasi:cli/command
// component with jco (ENARX_JCO, from `scripts/jco.sh env`; make test sets
// it), once per package run, and returns the .wasm path. No component is
// committed: a Go one is 2.6 MB.
func buildComponent(t testing.TB, name string) string {
	t.Helper()
	jco := os.Getenv("ENARX_JCO")
	if jco == "" {
		skipOrFail(t, "ENARX_JCO is not set: run scripts/jco.sh install and eval \"$(scripts/jco.sh env)\" (make test does)")
	}
	core := buildGoWasm(t, name)
	return fixtures.File(t, name+".component.wasm", func(out string) error {
		if b, err := exec.Command(jco, "new", core, "--wasi-command", "-o", out).CombinedOutput(); err != nil {
			return errors.New("jco new --wasi-command: " + err.Error() + "\n" + string(b))
		}
		return nil
	})
}

// TestComponent runs wasi:cli/command components through containerd as
// the Keep runs core modules: args, env, stdout, stderr, exit statuses,
// traps, SIGTERM, the memory limit, labels with the component's digest and
// the module cache.
func TestComponent(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)

		t.Run("args-env-stdout", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/echo-component:latest", buildComponent(t, "echo"), false)
			stdout, stderr, exit := runWasm(t, d, ns, []string{"--env", "ENARX_TEST_COLOUR=blue", "--env", "OTHER=hidden"},
				ref, uniqueID("comp"), "/app.wasm", "first", "two words")
			want := "arg: first\narg: two words\nenv: ENARX_TEST_COLOUR=blue"
			if exit != 0 || strings.Join(readLines(stdout), "\n") != want {
				t.Errorf("exit %d, stdout %q; want 0, %q; stderr: %s", exit, stdout, want, stderr)
			}
		})

		t.Run("stderr-and-exit", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/exit-component:latest", buildComponent(t, "exit"), false)
			_, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("comp"))
			if exit != 1 || !strings.Contains(stderr, "usage: exit CODE") {
				t.Errorf("no arguments: exit %d, stderr %q; want 1 and the usage", exit, stderr)
			}
			// The preview 1 adapter turns proc_exit(n > 0) into
			// wasi:cli/exit's exit(err): 1.
			for code, want := range map[int]int{0: 0, 42: 1} {
				if _, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("comp"), "/app.wasm", strconv.Itoa(code)); exit != want {
					t.Errorf("exit %d through the adapter: ctr exit %d, want %d; stderr: %s", code, exit, want, stderr)
				}
			}
			ref = importWasmImage(t, d, ns, "docker.io/enarx-test/exitcode-component:latest", buildWat(t, "exitcode.component"), false)
			if _, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("comp")); exit != 42 {
				t.Errorf("exit-with-code(42): ctr exit %d, want 42; stderr: %s", exit, stderr)
			}
		})

		t.Run("trap", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/trap-component:latest", buildWat(t, "trap.component"), false)
			_, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("comp"))
			if exit != 134 || !strings.Contains(stderr, "unreachable") {
				t.Errorf("trap: exit %d, stderr %q; want 134 and the trap", exit, stderr)
			}
		})

		t.Run("sigterm", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/loop-component:latest", buildComponent(t, "loop"), false)
			id := uniqueID("comp")
			var wg sync.WaitGroup
			var exit int
			var stderr string
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, stderr, exit = runWasm(t, d, ns, nil, ref, id)
			}()
			waitStatus(t, d, ns, id, "RUNNING")
			time.Sleep(200 * time.Millisecond)
			d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGTERM", id)
			wg.Wait()
			if exit != 143 {
				t.Errorf("SIGTERM: exit %d, want 143; stderr: %s", exit, stderr)
			}
			assertNoLeftovers(t, id)
		})

		t.Run("memory-limit", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/alloc-component:latest", buildComponent(t, "alloc"), false)
			limit := []string{"--memory-limit", strconv.Itoa(memoryLimit)}
			stdout, stderr, exit := runWasm(t, d, ns, limit, ref, uniqueID("comp"))
			// The cap refuses memory.grow; the Go runtime says so and
			// exits, which the adapter makes exit(err).
			if exit == 0 || !strings.Contains(stderr, "out of memory") {
				t.Errorf("over the limit: exit %d, want a failure with \"out of memory\"; stderr: %s", exit, tailLines(stderr, 10))
			}
			if strings.Contains(stdout, "allocated "+strconv.Itoa(memoryLimit>>20)+" MiB") {
				t.Errorf("the workload held %d MiB under a %d MiB cap:\n%s", memoryLimit>>20, memoryLimit>>20, tailLines(stdout, 3))
			}
			stdout, stderr, exit = runWasm(t, d, ns, limit, ref, uniqueID("comp"), "/app.wasm", "16")
			if exit != 0 || !strings.Contains(stdout, "done, holding 16 blocks") {
				t.Errorf("within the limit: exit %d\nstdout: %s\nstderr: %s", exit, tailLines(stdout, 5), tailLines(stderr, 10))
			}
		})

		t.Run("labels-and-cache", func(t *testing.T) {
			wasm := buildComponent(t, "hello")
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello-component:latest", wasm, false)
			dir := filepath.Join(t.TempDir(), "modules")
			opts := []string{"--runtime-config-path", cacheTestPolicy(t, dir)}
			for i, want := range []string{"miss", "hit"} {
				id := uniqueID("comp")
				offset := d.logSize()
				stdout, stderr, exit := d.ctr(t, ns, append(append([]string{"run", "--runtime", runtimeEnarx}, opts...), ref, id)...)
				if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
					t.Fatalf("start %d: exit %d, stdout %q, stderr %q\n%s", i+1, exit, stdout, stderr, d.logSince(offset, 30))
				}
				r := waitKeepReady(t, d, offset, id)
				t.Logf("start %d: cache=%q compile=%v", i+1, r.cache, r.compile)
				if r.cache != want {
					t.Errorf("start %d: cache=%q, want %s\n%s", i+1, r.cache, want, r.line)
				}
				labels := containerLabels(t, d, ns, id)
				if got, want := labels[enarxdev.LabelWorkloadDigest], fileDigest(t, wasm); got != want {
					t.Errorf("label %s = %q, want the component's digest %q", enarxdev.LabelWorkloadDigest, got, want)
				}
				d.mustCtr(t, ns, "containers", "rm", id)
			}
		})

		t.Run("unsupported-import-refused", func(t *testing.T) {
			ref := importWasmImage(t, d, ns, "docker.io/enarx-test/http-component:latest", buildWat(t, "http.component"), false)
			id := uniqueID("comp")
			_, stderr, exit := runWasm(t, d, ns, nil, ref, id)
			if exit == 0 || !strings.Contains(stderr, `component imports "wasi:http/types@0.2.0", which the host does not provide`) {
				t.Errorf("wasi:http component: exit %d, stderr %q; want the creation refused naming the import", exit, stderr)
			}
			assertNoTaskState(t, d, ns, id)
		})
	})
}

// TestComponentArtifact runs a component from the artifact form, its layer
// of runwasi's component media type (containerd 2.x: 1.6 cannot unpack wasm
// layers).
func TestComponentArtifact(t *testing.T) {
	d := sharedDaemon(t, containerd24)
	ns := newNamespace(t, d)
	ref := importWasmImage(t, d, ns, "docker.io/enarx-test/echo-component-artifact:latest", buildComponent(t, "echo"), true)
	id := uniqueID("comp-artifact")
	stdout, stderr, exit := runWasm(t, d, ns, []string{"--env", "ENARX_TEST_FORM=component"}, ref, id, "echo", "x")
	if want := "arg: x\nenv: ENARX_TEST_FORM=component"; exit != 0 || strings.Join(readLines(stdout), "\n") != want {
		t.Errorf("exit %d, stdout %q; want 0, %q; stderr: %s\n%s", exit, stdout, want, stderr, d.LogTail(20))
	}
	assertNoTaskState(t, d, ns, id)
}

// TestComponentEnarxRun runs a component with `enarx run`, no containerd,
// and three instances of it.
func TestComponentEnarxRun(t *testing.T) {
	bin := requireBinaries(t)
	wasm := buildComponent(t, "echo")
	cmd := exec.Command(filepath.Join(bin, enarxBinary), "run", "--module-cache", "off", "--env", "ENARX_TEST_RUN=yes", wasm, "a", "b c")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if want := "arg: a\narg: b c\nenv: ENARX_TEST_RUN=yes"; err != nil || strings.Join(readLines(stdout.String()), "\n") != want {
		t.Errorf("enarx run component: %v, stdout %q; want %q; stderr: %s", err, stdout.String(), want, stderr.String())
	}
	exit := buildWat(t, "exitcode.component")
	cmd = exec.Command(filepath.Join(bin, enarxBinary), "run", "--module-cache", "off", exit)
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 42 {
		t.Errorf("enarx run exitcode component: %v, want exit status 42", err)
	}
	// Several instances of a component, as of a core module.
	cmd = exec.Command(filepath.Join(bin, enarxBinary), "run", "--module-cache", "off", "--instances", "3", wasm, "x")
	stdout.Reset()
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil || strings.Count(stdout.String(), "arg: x\n") != 3 {
		t.Errorf("enarx run --instances 3 component: %v, stdout %q; want its argument 3 times", err, stdout.String())
	}
}
