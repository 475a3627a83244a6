package test

// nerdctl end to end: nerdctl v2.2.2 (built by scripts/containerd.sh) on
// each test containerd, with a data root, namespace and configuration of
// the test's own and no CNI (--net none).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// nerdctl is nerdctl pointed at a test daemon, in a namespace and data
// root of the test's.
type nerdctl struct {
	d   *Daemon
	bin string
	ns  string
	dir string
}

func newNerdctl(t *testing.T, d *Daemon) *nerdctl {
	t.Helper()
	n := &nerdctl{d: d, bin: clientBinary(t, envNerdctl, filepath.Join(cacheDir(), "nerdctl-"+nerdctlVersion, "nerdctl"), false)}
	requireBinaries(t)
	n.ns = newNamespace(t, d)
	n.dir = clientDir(t)
	return n
}

// args are nerdctl's global flags and then args: the test daemon, the
// test's namespace and data root, CNI paths of the test's (unused with
// --net none, but never /etc/cni).
func (n *nerdctl) args(args ...string) []string {
	return append([]string{
		"--address", n.d.Address,
		"--namespace", n.ns,
		"--data-root", filepath.Join(n.dir, "root"),
		"--cni-netconfpath", filepath.Join(n.dir, "cni"),
		"--cni-path", filepath.Join(n.dir, "cni"),
	}, args...)
}

// env: no /etc/nerdctl/nerdctl.toml.
func (n *nerdctl) env() []string {
	return []string{"NERDCTL_TOML=" + filepath.Join(n.dir, "nerdctl.toml")}
}

func (n *nerdctl) run(t testing.TB, stdin string, args ...string) clientResult {
	t.Helper()
	return runClient(t, n.env(), stdin, n.bin, n.args(args...)...)
}

func (n *nerdctl) must(t testing.TB, args ...string) string {
	t.Helper()
	r := n.run(t, "", args...)
	if r.Exit != 0 {
		t.Fatalf("nerdctl %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.Stdout)
}

// nerdctlState is `nerdctl inspect`'s State of a container.
type nerdctlState struct {
	Status   string
	Running  bool
	Pid      int
	ExitCode int
}

func (n *nerdctl) state(t testing.TB, name string) nerdctlState {
	t.Helper()
	return inspectState[nerdctlState](t, n.must, name)
}

func (n *nerdctl) waitState(t testing.TB, name, what string, ok func(nerdctlState) bool) nerdctlState {
	t.Helper()
	return waitState(t, name, what, n.state, ok)
}

// psStatus is the STATUS of name in `nerdctl ps -a` ("" if it is not listed).
func (n *nerdctl) psStatus(t testing.TB, name string) string {
	t.Helper()
	for _, line := range readLines(n.must(t, "ps", "-a", "--format", "{{.Names}}\t{{.Status}}")) {
		if got, status, _ := strings.Cut(line, "\t"); got == name {
			return status
		}
	}
	return ""
}

// TestNerdctl runs WebAssembly workloads through nerdctl on each test
// containerd: load, run --rm with nerdctl's default spec, -d with logs
// through nerdctl's logging binary (a binary:// log URI), ps, inspect
// labels, stop, start, restart, rm -f, -e, -i, -u, -v, --memory, and the
// refused -t/-it/exec, and that nothing is left behind.
func TestNerdctl(t *testing.T) {
	images := buildClientImages(t)
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		n := newNerdctl(t, d)
		run := []string{"run", "--net", "none", "--runtime", runtimeEnarx}

		t.Run("load", func(t *testing.T) {
			for archive, ref := range map[string]string{images.hello: helloImage, images.tools: toolsImage} {
				out := n.must(t, "load", "-i", archive)
				if !strings.Contains(out, "Loaded image: "+ref) {
					t.Errorf("nerdctl load -i %s: %q, want %q", archive, out, "Loaded image: "+ref)
				}
			}
		})

		t.Run("run-rm", func(t *testing.T) {
			r := n.run(t, "", append(run, "--rm", helloImage)...)
			if r.Exit != 0 || !strings.Contains(r.Stdout, "Hello from a Keep!") {
				t.Errorf("nerdctl run --rm %s: %s", helloImage, r)
			}
			for _, code := range []int{0, 42} {
				r := n.run(t, "", append(run, "--rm", "--entrypoint", "/exit.wasm", toolsImage, strconv.Itoa(code))...)
				if r.Exit != code {
					t.Errorf("proc_exit(%d): nerdctl run exits %d\n%s", code, r.Exit, r)
				}
			}
			r = n.run(t, "", append(run, "--rm", "-e", "ENARX_TEST_COLOUR=blue", "--entrypoint", "/echo.wasm", toolsImage, "first", "two words")...)
			if want := "arg: first\narg: two words\nenv: ENARX_TEST_COLOUR=blue"; r.Exit != 0 || strings.Join(readLines(r.Stdout), "\n") != want {
				t.Errorf("-e and args: %s\nwant stdout:\n%s", r, want)
			}
			if s := n.must(t, "ps", "-a", "-q"); s != "" {
				t.Errorf("nerdctl ps -a after run --rm: %q, want none", s)
			}
		})

		t.Run("detached-logs-ps-stop-start-restart-rm", func(t *testing.T) {
			name := uniqueID("sleeper")
			id := n.must(t, append(run, "-d", "--name", name, "--entrypoint", "/sleep.wasm", toolsImage, "1h")...)
			first := n.waitState(t, name, "running", func(s nerdctlState) bool { return s.Running })
			if status := n.psStatus(t, name); !strings.HasPrefix(status, "Up") {
				t.Errorf("nerdctl ps: %s has status %q, want Up", name, status)
			}
			waitFor(t, "nerdctl logs "+name, func() (bool, string) {
				out := n.run(t, "", "logs", name).Stdout
				return strings.Count(out, "sleeping") == 1, fmt.Sprintf("%q", out)
			})
			var labels map[string]string
			if err := json.Unmarshal([]byte(n.must(t, "inspect", "--format", "{{json .Config.Labels}}", name)), &labels); err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{enarxdev.LabelTEE: "none", enarxdev.LabelBackend: "nil", "nerdctl/name": name} {
				if labels[k] != v {
					t.Errorf("nerdctl inspect: label %s = %q, want %q", k, labels[k], v)
				}
			}
			if !strings.HasPrefix(labels[enarxdev.LabelWorkloadDigest], "sha256:") {
				t.Errorf("nerdctl inspect: label %s = %q", enarxdev.LabelWorkloadDigest, labels[enarxdev.LabelWorkloadDigest])
			}

			n.must(t, "stop", name)
			if s := n.state(t, name); s.Running || s.Status != "exited" || s.ExitCode != 143 {
				t.Errorf("after nerdctl stop: %+v, want exited with 143", s)
			}
			if status := n.psStatus(t, name); !strings.HasPrefix(status, "Exited (143)") {
				t.Errorf("nerdctl ps -a: %q, want Exited (143)", status)
			}
			n.must(t, "start", name)
			second := n.waitState(t, name, "running again", func(s nerdctlState) bool { return s.Running })
			if second.Pid == first.Pid {
				t.Errorf("nerdctl start: the same pid %d as before", second.Pid)
			}
			n.must(t, "restart", name)
			n.waitState(t, name, "running after restart", func(s nerdctlState) bool { return s.Running && s.Pid != second.Pid })
			waitFor(t, "nerdctl logs "+name+" after two starts more", func() (bool, string) {
				out := n.run(t, "", "logs", name).Stdout
				return strings.Count(out, "sleeping") == 3, fmt.Sprintf("%q", out)
			})
			// rm -f of a running container: killed and removed.
			n.must(t, "rm", "-f", name)
			if status := n.psStatus(t, name); status != "" {
				t.Errorf("nerdctl ps -a after rm -f: %s is %q", name, status)
			}
			assertNoTaskState(t, d, n.ns, id)
		})

		t.Run("stdin", func(t *testing.T) {
			r := n.run(t, "hello stdin\nline two\n", append(run, "--rm", "-i", "--entrypoint", "/cat.wasm", toolsImage)...)
			if want := "hello stdin\nline two\n[21 bytes]\n"; r.Exit != 0 || r.Stdout != want {
				t.Errorf("nerdctl run -i: %s\nwant stdout %q", r, want)
			}
		})

		t.Run("user-volumes", func(t *testing.T) {
			host := t.TempDir()
			data, out := filepath.Join(host, "data"), filepath.Join(host, "out")
			for _, dir := range []string{data, out} {
				if err := os.Mkdir(dir, 0o777); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(out, 0o777); err != nil {
				t.Fatal(err)
			}
			writeHostFile(t, filepath.Join(data, "in.txt"), "from the host")
			writeHostFile(t, filepath.Join(host, "app.conf"), "conf")
			r := n.run(t, "", append(run, "--rm", "-u", "1000:1000",
				"-v", data+":/data:ro", "-v", out+":/out", "-v", filepath.Join(host, "app.conf")+":/etc/app.conf:ro",
				toolsImage,
				"read", "/data/in.txt", "write", "/data/new", "x", "write", "/out/mine", "by 1000",
				"read", "/etc/app.conf", "write", "/etc/app.conf", "changed", "read", "/secret.txt")...)
			if r.Exit != 3 {
				t.Errorf("exit %d, want 3 (the refusals)\n%s", r.Exit, r)
			}
			expectProbe(t, r.Stdout, r.Stderr, map[string]string{
				"read /data/in.txt":   "ok: from the host",
				"write /data/new":     "error",
				"write /out/mine":     "ok",
				"read /etc/app.conf":  "ok: conf",
				"write /etc/app.conf": "error",
				"read /secret.txt":    "error",
			})
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(out, "mine"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
				t.Errorf("the file the workload made: owner %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
			}
			if _, err := os.Stat(filepath.Join(data, "new")); !os.IsNotExist(err) {
				t.Errorf("the ro volume was written to: %v", err)
			}
		})

		t.Run("memory", func(t *testing.T) {
			name := uniqueID("oom")
			r := n.run(t, "", append(run, "--name", name, "--memory", "64m", "--entrypoint", "/alloc.wasm", toolsImage)...)
			if r.Exit != 137 || !strings.Contains(r.Stderr, "memory limit 67108864 bytes exceeded") {
				t.Errorf("nerdctl run --memory 64m of a workload that wants more: %s\nwant exit 137 and the limit named", r)
			}
			if s := n.state(t, name); s.ExitCode != 137 || s.Status != "exited" {
				t.Errorf("nerdctl inspect: %+v, want exited with 137", s)
			}
			n.must(t, "rm", name)
		})

		t.Run("refused", func(t *testing.T) {
			const terminal = "a terminal (ctr run -t, docker run -t) is not supported by the enarx runtime"
			// -it on a terminal: nerdctl asks for one, the shim refuses it.
			r := runOnTerminal(t, n.env(), n.bin, n.args(append(run, "--rm", "-it", helloImage)...)...)
			if r.Exit == 0 || !strings.Contains(r.Stdout, terminal) {
				t.Errorf("nerdctl run -it on a terminal: %s\nwant a refusal naming the terminal", r)
			}
			name := uniqueID("tty")
			r = n.run(t, "", append(run, "-d", "-t", "--name", name, helloImage)...)
			if r.Exit == 0 || !strings.Contains(r.Stderr, terminal) {
				t.Errorf("nerdctl run -d -t: %s\nwant a refusal naming the terminal", r)
			}
			// As with runc, the container whose task was refused stays, created.
			if status := n.psStatus(t, name); status != "" && status != "Created" {
				t.Errorf("nerdctl ps -a: %s is %q after its task was refused", name, status)
			}
			n.run(t, "", "rm", "-f", name)

			name = uniqueID("exec")
			n.must(t, append(run, "-d", "--name", name, "--entrypoint", "/sleep.wasm", toolsImage, "1h")...)
			n.waitState(t, name, "running", func(s nerdctlState) bool { return s.Running })
			r = n.run(t, "", "exec", name, "/fsprobe.wasm", "args")
			if r.Exit == 0 || !strings.Contains(r.Stderr, "exec is not supported by the enarx runtime") {
				t.Errorf("nerdctl exec: %s\nwant a refusal of exec", r)
			}
			if s := n.state(t, name); !s.Running {
				t.Errorf("after the refused exec: %+v, want it running", s)
			}
			n.must(t, "rm", "-f", name)
		})

		// Nothing left: no containers, no tasks, no processes (shims,
		// Keeps, nerdctl's logging processes), mounts or cgroups.
		if all := strings.Fields(n.must(t, "ps", "-aq")); len(all) > 0 {
			t.Errorf("containers left: %q", all)
			n.must(t, append([]string{"rm", "-f"}, all...)...)
		}
		for _, what := range []string{"tasks", "containers"} {
			if s := d.mustCtr(t, n.ns, what, "ls", "-q"); strings.TrimSpace(s) != "" {
				t.Errorf("containerd %s left in %s: %q", what, n.ns, s)
			}
		}
		// nerdctl's containers' cgroups are /<namespace>/<id>.
		assertClientLeftovers(t, d, n.ns, n.dir, n.ns)
	})
}
