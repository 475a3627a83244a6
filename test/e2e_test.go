package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// runWasm runs `ctr run --rm --runtime io.containerd.enarx.v1 [opts] ref id [args]`.
func runWasm(t *testing.T, d *Daemon, ns string, opts []string, ref, id string, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	cmd := append([]string{"run", "--rm", "--runtime", runtimeEnarx}, opts...)
	cmd = append(append(cmd, ref, id), args...)
	return d.ctr(t, ns, cmd...)
}

// containerLabels reads a container's labels with `ctr containers info`.
func containerLabels(t *testing.T, d *Daemon, ns, id string) map[string]string {
	t.Helper()
	var info struct {
		Labels map[string]string `json:"Labels"`
	}
	out := d.mustCtr(t, ns, "containers", "info", id)
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("containers info %s: %v\n%s", id, err, out)
	}
	return info.Labels
}

// taskStatus is the STATUS column of `ctr tasks ls` for id ("" if absent).
func taskStatus(t testing.TB, d *Daemon, ns, id string) string {
	t.Helper()
	for _, line := range readLines(d.mustCtr(t, ns, "tasks", "ls")) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestHelloRunsInAKeep(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		wasm := buildGoWasm(t, "hello")
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", wasm, false)
		id := uniqueID("hello")
		stdout, stderr, exit := runWasm(t, d, ns, nil, ref, id)
		if exit != 0 {
			t.Fatalf("exit %d, want 0; stderr: %s\n%s", exit, stderr, d.LogTail(30))
		}
		if !strings.Contains(stdout, "Hello from a Keep!") {
			t.Errorf("stdout %q does not greet", stdout)
		}
		assertNoLeftovers(t, id)
		assertNoTaskState(t, d, ns, id)
	})
}

// TestLogURIBinary: a container whose output goes to a logging binary
// (ctr run --log-uri binary://..., as nerdctl's logging does), written with
// containerd's own logging package, gets the workload's stdout and stderr
// and the container's ID and namespace, as from containerd's runc shim.
func TestLogURIBinary(t *testing.T) {
	logger := buildNative(t, "logger")
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		dir := t.TempDir()
		id := uniqueID("logged")
		_, stderr, exit := runWasm(t, d, ns, []string{"--log-uri", "binary://" + logger + "?dir=" + dir}, ref, id)
		if exit != 0 {
			t.Fatalf("exit %d, want 0; stderr: %s\n%s", exit, stderr, d.LogTail(30))
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			if strings.Contains(string(out), "Hello from a Keep!") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the logging binary's stdout: %q, want the greeting", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "id")); err != nil || string(b) != ns+"/"+id {
			t.Errorf("the logging binary was told %q (%v), want %s/%s", b, err, ns, id)
		}
		assertNoLeftovers(t, id)
	})
}

func TestAttestationLabels(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		wasm := buildGoWasm(t, "hello")
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", wasm, false)
		id := uniqueID("labels")
		d.mustCtr(t, ns, "run", "--runtime", runtimeEnarx, ref, id)
		labels := containerLabels(t, d, ns, id)
		want := map[string]string{
			enarxdev.LabelTEE:            "none",
			enarxdev.LabelBackend:        "nil",
			enarxdev.LabelAttestation:    "none",
			enarxdev.LabelWorkloadDigest: fileDigest(t, wasm),
		}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, labels[k], v)
			}
		}
		if labels[enarxdev.LabelRuntimeVersion] == "" {
			t.Errorf("label "+enarxdev.LabelRuntimeVersion+" is missing: %v", labels)
		}
		if want := fileDigest(t, filepath.Join(requireBinaries(t), keepBinary)); labels[enarxdev.LabelRuntimeDigest] != want {
			t.Errorf("label "+enarxdev.LabelRuntimeDigest+" = %q, want the runtime binary's (%s) %q", labels[enarxdev.LabelRuntimeDigest], keepBinary, want)
		}
		// The evidence file the label points at is in the bundle while the
		// task exists; its digest is the evidence.digest label.
		if p := labels[enarxdev.LabelEvidencePath]; !strings.HasPrefix(p, d.State) || !strings.HasSuffix(p, "/enarx-evidence.json") {
			t.Errorf("label "+enarxdev.LabelEvidencePath+" = %q, want a file in the task's bundle", p)
		}
		if d := labels[enarxdev.LabelEvidenceDigest]; !strings.HasPrefix(d, "sha256:") || len(d) != 71 {
			t.Errorf("label "+enarxdev.LabelEvidenceDigest+" = %q", d)
		}
		// ctr run without --rm deletes the task, not the container.
		d.mustCtr(t, ns, "containers", "rm", id)
	})
}

func TestArgsAndEnv(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/echo:latest", buildGoWasm(t, "echo"), false)
		stdout, stderr, exit := runWasm(t, d, ns, []string{"--env", "ENARX_TEST_COLOUR=blue", "--env", "OTHER=hidden"},
			ref, uniqueID("echo"), "/app.wasm", "first", "two words")
		if exit != 0 {
			t.Fatalf("exit %d; stderr: %s", exit, stderr)
		}
		got := readLines(stdout)
		want := []string{"arg: first", "arg: two words", "env: ENARX_TEST_COLOUR=blue"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestExitStatus(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/exit:latest", buildGoWasm(t, "exit"), false)
		for _, code := range []int{42, 0, 1} {
			_, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("exit"), "/app.wasm", fmt.Sprint(code))
			if exit != code {
				t.Errorf("proc_exit(%d): ctr exit %d; stderr: %s", code, exit, stderr)
			}
		}
	})
}

func TestTrap(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/trap:latest", buildWat(t, "trap"), false)
		_, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("trap"))
		if exit != 134 {
			t.Errorf("trap: exit %d, want 134; stderr: %s", exit, stderr)
		}
		if !strings.Contains(stderr, "unreachable") {
			t.Errorf("stderr %q does not carry the trap message", stderr)
		}
	})
}

func TestEntrypointFunction(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/trap:latest", buildWat(t, "trap"), false)
		// trap.wat also exports "ok", which returns normally.
		_, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("fn"), "/app.wasm#ok")
		if exit != 0 {
			t.Errorf("/app.wasm#ok: exit %d, want 0; stderr: %s", exit, stderr)
		}
		_, stderr, exit = runWasm(t, d, ns, nil, ref, uniqueID("fn"), "/app.wasm#nope")
		if exit == 0 || !strings.Contains(stderr, "nope") {
			t.Errorf("/app.wasm#nope: exit %d, stderr %q: want a failure naming the function", exit, stderr)
		}
	})
}

// TestKill stops modules that never end: a busy loop and a sleep in a WASI
// host call (both ended by the Keep's exit after its grace), and SIGKILL.
func TestKill(t *testing.T) {
	cases := []struct {
		name, fixture string
		signal        string
		want          int
	}{
		{"busy-loop-sigterm", "loop", "SIGTERM", 143},
		{"wat-loop-sigterm", "loop.wat", "SIGTERM", 143},
		{"sleep-sigterm", "sleep", "SIGTERM", 143},
		{"busy-loop-sigkill", "loop", "SIGKILL", 137},
		// Signals a WebAssembly workload cannot handle end it, 128+n, as
		// their default action ends a process under runc.
		{"sleep-sighup", "sleep", "SIGHUP", 129},
		{"busy-loop-sigusr1", "loop", "SIGUSR1", 138},
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var wasm string
				if name, ok := strings.CutSuffix(c.fixture, ".wat"); ok {
					wasm = buildWat(t, name)
				} else {
					wasm = buildGoWasm(t, c.fixture)
				}
				ref := importWasmImage(t, d, ns, "docker.io/enarx-test/"+strings.ReplaceAll(c.fixture, ".", "-")+":latest", wasm, false)
				id := uniqueID("kill")
				var wg sync.WaitGroup
				var exit int
				var stderr string
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, stderr, exit = runWasm(t, d, ns, nil, ref, id)
				}()
				waitStatus(t, d, ns, id, "RUNNING")
				time.Sleep(200 * time.Millisecond) // let the workload get going
				d.mustCtr(t, ns, "tasks", "kill", "--signal", c.signal, id)
				wg.Wait()
				if exit != c.want {
					t.Errorf("%s: exit %d, want %d; stderr: %s", c.signal, exit, c.want, stderr)
				}
				assertNoLeftovers(t, id)
			})
		}
	})
}

func waitStatus(t *testing.T, d *Daemon, ns, id, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if taskStatus(t, d, ns, id) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("task %s never reached %s (now %q)", id, want, taskStatus(t, d, ns, id))
}

func TestTwoContainersAtOnce(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		ids := []string{uniqueID("one"), uniqueID("two")}
		for _, id := range ids {
			d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h")
		}
		pids := map[string]bool{}
		for _, id := range ids {
			waitStatus(t, d, ns, id, "RUNNING")
			out := d.mustCtr(t, ns, "tasks", "ps", id)
			lines := readLines(out)
			if len(lines) != 2 {
				t.Fatalf("tasks ps %s: %q, want one process", id, out)
			}
			pids[strings.Fields(lines[1])[0]] = true
		}
		if len(pids) != 2 {
			t.Errorf("the two containers share a Keep process: %v", pids)
		}
		for _, id := range ids {
			d.mustCtr(t, ns, "tasks", "kill", id)
		}
		for _, id := range ids {
			waitStatus(t, d, ns, id, "STOPPED")
			d.mustCtr(t, ns, "tasks", "rm", id)
			d.mustCtr(t, ns, "containers", "rm", id)
			assertNoLeftovers(t, id)
			assertNoTaskState(t, d, ns, id)
		}
	})
}

// assertNoTaskState checks that containerd's and our per-task state is gone:
// the bundle directory, the shim socket and any mount of the container.
func assertNoTaskState(t *testing.T, d *Daemon, ns, id string) {
	t.Helper()
	bundle := filepath.Join(d.State, "io.containerd.runtime.v2.task", ns, id)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(bundle)
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("bundle %s still exists", bundle)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sum := sha256.Sum256([]byte(filepath.Join(d.Address, ns, id)))
	if _, err := os.Stat(filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))); err == nil {
		t.Errorf("shim socket of %s still exists", id)
	}
	for _, m := range mountsUnder(d.Dir) {
		if strings.Contains(m, id) {
			t.Errorf("mount %s left behind", m)
		}
	}
}

func TestUnsupportedOperations(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		id := uniqueID("unsup")
		d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h")
		waitStatus(t, d, ns, id, "RUNNING")
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"tasks", "pause", id}, "pause is not supported"},
			{[]string{"tasks", "exec", "--exec-id", "sh", id, "/bin/sh"}, "exec is not supported"},
		} {
			_, stderr, exit := d.ctr(t, ns, c.args...)
			if exit == 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("ctr %s: exit %d, stderr %q; want an error saying %q", strings.Join(c.args, " "), exit, stderr, c.want)
			}
		}
		if got := taskStatus(t, d, ns, id); got != "RUNNING" {
			t.Errorf("after unsupported calls the task is %s, want RUNNING", got)
		}
		d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
		waitStatus(t, d, ns, id, "STOPPED")
		_, stderr, exit := d.ctr(t, ns, "tasks", "kill", id)
		if exit == 0 || !strings.Contains(stderr, "already finished") {
			t.Errorf("kill of a stopped task: exit %d, stderr %q", exit, stderr)
		}
		d.mustCtr(t, ns, "tasks", "rm", id)
		d.mustCtr(t, ns, "containers", "rm", id)
	})
}

func TestBadImages(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		dir := t.TempDir()
		// A component of a pre-release binary version (0x0c): refused
		// before the Keep starts. Components of 0x0d run (component_test.go).
		component := []byte("\x00asm\x0c\x00\x01\x00")
		native, err := os.ReadFile(buildNative(t, "nativehello"))
		if err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(dir, "bad.tar")
		ref := "docker.io/enarx-test/bad:latest"
		files := []tarFile{
			{Name: "component.wasm", Mode: 0o644, Data: component},
			{Name: "text.wasm", Mode: 0o644, Data: []byte("this is not wasm\n")},
			{Name: "native", Mode: 0o755, Data: native},
		}
		if err := writeRootfsImage(archive, ref, files, []string{"/missing.wasm"}); err != nil {
			t.Fatal(err)
		}
		importArchive(t, d, ns, ref, archive)
		for _, c := range []struct {
			args []string
			want []string
		}{
			{nil, []string{`"/missing.wasm"`, "not found"}},
			{[]string{"/text.wasm"}, []string{`"/text.wasm"`, "not a WebAssembly module"}},
			{[]string{"/component.wasm"}, []string{`"/component.wasm" is a WebAssembly component of binary version 0x0c`, "unsupported component binary version"}},
			{[]string{"/native"}, []string{`"/native"`, "not a WebAssembly module"}},
			{[]string{"/../../../../etc/hostname.wasm"}, []string{"not found"}},
		} {
			id := uniqueID("bad")
			_, stderr, exit := runWasm(t, d, ns, nil, ref, id, c.args...)
			if exit == 0 {
				t.Errorf("ctr run %v succeeded, want a failure", c.args)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("ctr run %v: stderr %q does not contain %q", c.args, stderr, w)
				}
			}
			assertNoLeftovers(t, id)
			// The failed container stays; remove it (ctr run --rm does not on a failed create).
			d.ctr(t, ns, "containers", "rm", id)
		}
	})
}

// TestArtifactImage runs the wasm-layer form of `enarx package`: containerd
// 2.x keeps the layer in its content store, where the shim reads it.
// containerd 1.6 cannot import such an image ("mismatched image rootfs and
// manifest layers"), which docs/images.md says.
func TestArtifactImage(t *testing.T) {
	d := sharedDaemon(t, containerd24)
	ns := newNamespace(t, d)
	wasm := buildGoWasm(t, "echo")
	ref := importWasmImage(t, d, ns, "docker.io/enarx-test/echo-artifact:latest", wasm, true)
	id := uniqueID("artifact")
	stdout, stderr, exit := runWasm(t, d, ns, []string{"--env", "ENARX_TEST_FORM=artifact"}, ref, id, "echo", "x")
	if exit != 0 {
		t.Fatalf("exit %d; stderr: %s\n%s", exit, stderr, d.LogTail(20))
	}
	if want := "arg: x\nenv: ENARX_TEST_FORM=artifact"; strings.Join(readLines(stdout), "\n") != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	assertNoTaskState(t, d, ns, id)
}

// TestStdin feeds the workload through ctr run's stdin: it reads until EOF,
// which it sees when ctr's stdin ends (CloseIO).
func TestStdin(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/cat:latest", buildGoWasm(t, "cat"), false)
		in := "line one\nline two\n"
		stdout, stderr, exit := d.ctrWith(t, ctrOptions{Stdin: in}, ns, "run", "--rm", "--runtime", runtimeEnarx, ref, uniqueID("cat"))
		if exit != 0 {
			t.Fatalf("exit %d; stderr: %s", exit, stderr)
		}
		if want := in + fmt.Sprintf("[%d bytes]\n", len(in)); stdout != want {
			t.Errorf("stdout %q, want %q", stdout, want)
		}
	})
}

// TestEvents watches `ctr events` while a container runs: the shim publishes
// the task's create, start, exit and delete to containerd.
func TestEvents(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/exit:latest", buildGoWasm(t, "exit"), false)
		var events bytes.Buffer
		watch := exec.Command(d.Ctr, "--address", d.Address, "events")
		watch.Stdout = &events
		if err := watch.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				_ = watch.Process.Kill()
				_ = watch.Wait()
			}
		}
		defer stop()
		time.Sleep(300 * time.Millisecond) // let the subscription start
		id := uniqueID("events")
		if _, stderr, exit := runWasm(t, d, ns, nil, ref, id, "/app.wasm", "7"); exit != 7 {
			t.Fatalf("exit %d, want 7; stderr: %s", exit, stderr)
		}
		var seen []string
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && !slices.Contains(seen, "/tasks/delete") {
			time.Sleep(100 * time.Millisecond)
			seen = nil
			for _, line := range readLines(events.String()) {
				// "TIME NAMESPACE TOPIC EVENT", e.g. ... /tasks/exit {"container_id":"...","exit_status":7,...}
				if strings.Contains(line, id) && strings.Contains(line, " "+ns+" ") {
					f := strings.Fields(line)
					for _, w := range f {
						if strings.HasPrefix(w, "/tasks/") || strings.HasPrefix(w, "/enarx/") {
							seen = append(seen, w)
						}
					}
					if strings.Contains(line, "/tasks/exit") && !strings.Contains(line, `"exit_status":7`) {
						t.Errorf("exit event without the status: %s", line)
					}
				}
			}
		}
		stop()
		want := []string{"/tasks/create", "/enarx/attestation", "/tasks/start", "/tasks/exit", "/tasks/delete"}
		if strings.Join(seen, " ") != strings.Join(want, " ") {
			t.Errorf("task events %v, want %v\n%s", seen, want, events.String())
		}
	})
}

// TestTerminalRefused runs `ctr run -t` on a pseudo-terminal (util-linux
// script): the shim refuses it with a message naming the terminal.
func TestTerminalRefused(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("util-linux script is needed for a pseudo-terminal")
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		id := uniqueID("tty")
		line := fmt.Sprintf("%s --address %s -n %s run --rm -t --runtime %s %s %s", d.Ctr, d.Address, ns, runtimeEnarx, ref, id)
		out, err := exec.Command(script, "-qec", line, "/dev/null").CombinedOutput()
		if err == nil {
			t.Fatalf("ctr run -t succeeded: %s", out)
		}
		if !strings.Contains(string(out), "a terminal (ctr run -t, docker run -t) is not supported by the enarx runtime") {
			t.Errorf("ctr run -t: %s; want an error saying a terminal is not supported", out)
		}
		assertNoLeftovers(t, id)
		d.ctr(t, ns, "containers", "rm", id)
	})
}

// TestNodePolicy passes a node policy the way containerd does (runtime
// options with a ConfigPath: `ctr run --runtime-config-path`): a node that
// requires a TEE and has none refuses to create the container, with the
// reason; a container cannot ask for a weaker backend than the node's.
func TestNodePolicy(t *testing.T) {
	dir := t.TempDir()
	requireTEE := filepath.Join(dir, "require-tee.toml")
	if err := os.WriteFile(requireTEE, []byte("require_tee = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badPolicy := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(badPolicy, []byte("backend = \"auto\"\nrequire_tea = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hello:latest", buildGoWasm(t, "hello"), false)
		for _, c := range []struct {
			name string
			opts []string
			want []string
		}{
			{"require_tee without a TEE", []string{"--runtime-config-path", requireTEE}, []string{"require_tee", "sev-snp", "tdx"}},
			{"unknown setting", []string{"--runtime-config-path", badPolicy}, []string{"require_tea", "line 2"}},
			{"annotation below the node's requirement", []string{"--runtime-config-path", requireTEE, "--annotation", enarxdev.AnnotationBackend + "=nil"}, []string{enarxdev.AnnotationBackend, "never weaker"}},
			{"unknown backend", []string{"--annotation", enarxdev.AnnotationBackend + "=sgx"}, []string{`"sgx"`}},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := uniqueID("policy")
				_, stderr, exit := runWasm(t, d, ns, c.opts, ref, id)
				if exit == 0 {
					t.Fatalf("ctr run %v succeeded, want a refusal", c.opts)
				}
				for _, w := range c.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q does not mention %q", stderr, w)
					}
				}
				assertNoLeftovers(t, id)
				d.ctr(t, ns, "containers", "rm", id)
			})
		}
		// The nil backend, asked for explicitly on a node that allows it.
		stdout, stderr, exit := runWasm(t, d, ns, []string{"--annotation", enarxdev.AnnotationBackend + "=nil"}, ref, uniqueID("nil"))
		if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
			t.Errorf(enarxdev.AnnotationBackend+"=nil: exit %d, stdout %q, stderr %q", exit, stdout, stderr)
		}
	})
}
