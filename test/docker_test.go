package test

// Docker end to end: a private dockerd (moby v2.0.0-beta.24, built by
// scripts/containerd.sh) on each test containerd, with the containerd image
// store, driven by the docker CLI the way a user drives it.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/internal/starter"
)

const (
	dockerStartTimeout = 60 * time.Second
	dockerStopTimeout  = 30 * time.Second
	// dockerRunDir is where dockerd makes its plugin socket directory
	// whatever its --exec-root: removed after the test when it made it.
	dockerRunDir = "/run/docker"
)

// dockerd is a Docker daemon of the test's own on a test containerd: its
// data, exec root and socket in a private directory, its containers in a
// containerd namespace of the test's and under a cgroup parent of the
// test's.
type dockerd struct {
	d            *Daemon
	bin, cli     string
	dir          string
	host         string // unix://DIR/docker.sock
	ns           string // its containerd namespace
	cgroupParent string
	cliConfig    string // DOCKER_CONFIG of the CLI
	log          string
	madeRunDir   bool

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startDockerd starts a dockerd on d for this test; the test stops it with
// stopAndCheck (t.Cleanup stops it too, should the test end early).
func startDockerd(t *testing.T, d *Daemon) *dockerd {
	t.Helper()
	def := filepath.Join(cacheDir(), "dockerd-"+dockerdVersion, "dockerd")
	k := &dockerd{
		d:   d,
		bin: clientBinary(t, envDockerd, def, false),
		cli: clientBinary(t, envDocker, "/usr/local/bin/docker", true),
	}
	requireBinaries(t)
	k.ns = newNamespace(t, d)
	k.dir = clientDir(t)
	k.host = "unix://" + filepath.Join(k.dir, "docker.sock")
	k.cgroupParent = "/enarx-e2e-docker-" + randomHex(4)
	k.cliConfig = filepath.Join(k.dir, "cli")
	k.log = filepath.Join(k.dir, "dockerd.log")
	// Our runtime by a name of the daemon's ("enarx"), beside the shim's
	// own name, which dockerd accepts as it is (io.containerd.enarx.v1).
	config := filepath.Join(k.dir, "daemon.json")
	cfg := `{"features": {"containerd-snapshotter": true}, "runtimes": {"enarx": {"runtimeType": "` + runtimeEnarx + `"}}}`
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dockerRunDir); errors.Is(err, os.ErrNotExist) {
		k.madeRunDir = true
	}
	logf, err := os.Create(k.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	k.cmd = exec.Command(k.bin,
		"--containerd", d.Address,
		"--containerd-namespace", k.ns,
		"--containerd-plugins-namespace", k.ns+"-plugins",
		"--data-root", filepath.Join(k.dir, "root"),
		"--exec-root", filepath.Join(k.dir, "exec"),
		"--pidfile", filepath.Join(k.dir, "dockerd.pid"),
		"--config-file", config,
		"-H", k.host,
		"--cgroup-parent", k.cgroupParent,
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--userland-proxy=false",
	)
	// The shim is found on containerd's PATH; dockerd gets the same.
	k.cmd.Env = append(withoutPath(clientEnv()), "PATH="+d.Path)
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.Dir = k.dir
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := starter.Run(k.cmd.Start); err != nil {
		t.Fatalf("starting %s: %v", k.bin, err)
	}
	k.exited = make(chan struct{})
	go func() {
		k.waitErr = k.cmd.Wait()
		close(k.exited)
	}()
	t.Cleanup(func() {
		if err := k.stop(); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
		if t.Failed() {
			t.Logf("dockerd log:\n%s", k.logTail(60))
		}
	})
	deadline := time.Now().Add(dockerStartTimeout)
	for {
		out, err := k.command("", "version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}").CombinedOutput()
		if err == nil {
			t.Logf("%s: dockerd %s (pid %d), docker CLI %s", d.Name, strings.TrimSpace(string(out)), k.cmd.Process.Pid, k.cli)
			break
		}
		select {
		case <-k.exited:
			t.Fatalf("dockerd exited during startup: %v\n%s", k.waitErr, k.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within %v: %v %s\n%s", dockerStartTimeout, err, out, k.logTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return k
}

// command is the docker CLI with args, talking to this daemon.
func (k *dockerd) command(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(k.cli, append([]string{"--host", k.host}, args...)...)
	cmd.Env = append(clientEnv(), "DOCKER_CONFIG="+k.cliConfig)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// docker runs the docker CLI with args (and stdin) against this daemon.
func (k *dockerd) docker(t testing.TB, stdin string, args ...string) clientResult {
	t.Helper()
	return runClient(t, []string{"DOCKER_CONFIG=" + k.cliConfig}, stdin, k.cli, append([]string{"--host", k.host}, args...)...)
}

// mustDocker is docker that fails the test unless the CLI exits 0; it
// returns stdout, trimmed.
func (k *dockerd) mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	r := k.docker(t, "", args...)
	if r.Exit != 0 {
		t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.Stdout)
}

// state is `docker inspect`'s State of a container.
type dockerState struct {
	Status     string
	Running    bool
	OOMKilled  bool
	Pid        int
	ExitCode   int
	Error      string
	StartedAt  string
	FinishedAt string
}

func (k *dockerd) state(t testing.TB, name string) dockerState {
	t.Helper()
	return inspectState[dockerState](t, k.mustDocker, name)
}

// waitState waits until the container's state satisfies ok.
func (k *dockerd) waitState(t testing.TB, name, what string, ok func(dockerState) bool) dockerState {
	t.Helper()
	return waitState(t, name, what, k.state, ok)
}

func (k *dockerd) logTail(n int) string {
	data, err := os.ReadFile(k.log)
	if err != nil {
		return err.Error()
	}
	return tailLines(string(data), n)
}

// stop sends dockerd SIGTERM and waits for it (SIGKILL after
// dockerStopTimeout); it removes what dockerd made outside its directory.
func (k *dockerd) stop() error {
	if k.cmd == nil || k.cmd.Process == nil {
		return nil
	}
	var err error
	select {
	case <-k.exited:
	default:
		_ = k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.exited:
		case <-time.After(dockerStopTimeout):
			_ = k.cmd.Process.Kill()
			<-k.exited
			err = fmt.Errorf("dockerd (pid %d) ignored SIGTERM for %v; killed", k.cmd.Process.Pid, dockerStopTimeout)
		}
	}
	if k.madeRunDir {
		// Empty directories only: os.Remove is rmdir here.
		_ = os.Remove(filepath.Join(dockerRunDir, "plugins"))
		_ = os.Remove(dockerRunDir)
	}
	return err
}

// stopAndCheck removes every container, stops dockerd and fails the test
// if anything of them is left: processes, mounts, task bundles, shim
// sockets of ids, cgroups, containerd tasks and containers.
func (k *dockerd) stopAndCheck(t *testing.T, ids []string) {
	t.Helper()
	if all := strings.Fields(k.mustDocker(t, "ps", "-aq")); len(all) > 0 {
		k.mustDocker(t, append([]string{"rm", "-f"}, all...)...)
	}
	if err := k.stop(); err != nil {
		t.Error(err)
	}
	if s := k.d.mustCtr(t, k.ns, "tasks", "ls", "-q"); strings.TrimSpace(s) != "" {
		t.Errorf("containerd tasks left in %s: %q", k.ns, s)
	}
	if s := k.d.mustCtr(t, k.ns, "containers", "ls", "-q"); strings.TrimSpace(s) != "" {
		t.Errorf("containerd containers left in %s: %q", k.ns, s)
	}
	for _, id := range ids {
		assertNoTaskState(t, k.d, k.ns, id)
	}
	assertClientLeftovers(t, k.d, k.ns, k.dir, k.cgroupParent)
}

// TestDocker runs WebAssembly workloads through Docker: the docker CLI and
// dockerd with containerd's image store on each test containerd. It
// checks what a user sees: output, exit statuses, the container's state
// in `docker inspect`, logs, stdin, bind mounts, --user, --memory (OOM),
// the lifecycle (stop, start, restart, kill, wait, rm), the operations a
// Keep refuses (-t, exec, pause) and their messages, and that nothing is
// left behind.
func TestDocker(t *testing.T) {
	images := buildClientImages(t)
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		k := startDockerd(t, d)
		var ids []string // containers whose traces stopAndCheck looks for
		run := []string{"run", "--runtime", runtimeEnarx}

		t.Run("load", func(t *testing.T) {
			for archive, ref := range map[string]string{images.hello: helloImage, images.tools: toolsImage} {
				out := k.mustDocker(t, "load", "-i", archive)
				if !strings.Contains(out, "Loaded image: "+ref) {
					t.Errorf("docker load -i %s: %q, want %q", archive, out, "Loaded image: "+ref)
				}
			}
		})

		t.Run("run-rm", func(t *testing.T) {
			for _, runtime := range []string{runtimeEnarx, "enarx"} {
				r := k.docker(t, "", "run", "--rm", "--runtime", runtime, helloImage)
				if r.Exit != 0 || !strings.Contains(r.Stdout, "Hello from a Keep!") {
					t.Errorf("docker run --rm --runtime %s %s: %s", runtime, helloImage, r)
				}
			}
			for _, code := range []int{0, 3, 42} {
				r := k.docker(t, "", append(run, "--rm", "--entrypoint", "/exit.wasm", toolsImage, strconv.Itoa(code))...)
				if r.Exit != code {
					t.Errorf("proc_exit(%d): docker run exits %d\n%s", code, r.Exit, r)
				}
			}
		})

		t.Run("env-args", func(t *testing.T) {
			r := k.docker(t, "", append(run, "--rm", "-e", "ENARX_TEST_COLOUR=blue", "--env", "OTHER=x",
				"--entrypoint", "/echo.wasm", toolsImage, "first", "two words")...)
			want := "arg: first\narg: two words\nenv: ENARX_TEST_COLOUR=blue"
			if r.Exit != 0 || strings.Join(readLines(r.Stdout), "\n") != want {
				t.Errorf("got %s\nwant stdout:\n%s", r, want)
			}
		})

		t.Run("detached-logs-stop-start-restart", func(t *testing.T) {
			name := uniqueID("sleeper")
			id := k.mustDocker(t, append(run, "-d", "--name", name, "--entrypoint", "/sleep.wasm", toolsImage, "1h")...)
			ids = append(ids, id)
			first := k.waitState(t, name, "running", func(s dockerState) bool { return s.Running })
			if first.Pid <= 0 || first.Status != "running" {
				t.Errorf("docker inspect of a running Keep: %+v", first)
			}
			waitFor(t, "docker logs "+name, func() (bool, string) {
				out := k.docker(t, "", "logs", name).Stdout
				return strings.Count(out, "sleeping") == 1, fmt.Sprintf("%q", out)
			})
			// docker stop: SIGTERM, which interrupts the module: 143.
			k.mustDocker(t, "stop", name)
			if s := k.state(t, name); s.Running || s.ExitCode != 143 || s.Status != "exited" || s.OOMKilled {
				t.Errorf("after docker stop: %+v, want exited with 143", s)
			}
			if out := k.mustDocker(t, "wait", name); out != "143" {
				t.Errorf("docker wait: %q, want 143", out)
			}
			// docker start again: a new task of the same container.
			k.mustDocker(t, "start", name)
			second := k.waitState(t, name, "running again", func(s dockerState) bool { return s.Running })
			if second.Pid == first.Pid {
				t.Errorf("docker start: the same pid %d as before", second.Pid)
			}
			// docker restart of a running container.
			k.mustDocker(t, "restart", name)
			third := k.waitState(t, name, "running after restart", func(s dockerState) bool { return s.Running && s.Pid != second.Pid })
			if third.ExitCode != 0 {
				t.Errorf("after restart: %+v", third)
			}
			waitFor(t, "docker logs "+name+" after two starts more", func() (bool, string) {
				out := k.docker(t, "", "logs", name).Stdout
				return strings.Count(out, "sleeping") == 3, fmt.Sprintf("%q", out)
			})
			// docker kill: SIGKILL, 137, not an OOM kill.
			k.mustDocker(t, "kill", name)
			if s := k.waitState(t, name, "exited", func(s dockerState) bool { return !s.Running }); s.ExitCode != 137 || s.OOMKilled {
				t.Errorf("after docker kill: %+v, want exit 137, OOMKilled false", s)
			}
			k.mustDocker(t, "rm", name)
			assertNoTaskState(t, d, k.ns, id)
		})

		t.Run("stdin", func(t *testing.T) {
			r := k.docker(t, "hello stdin\nline two\n", append(run, "--rm", "-i", "--entrypoint", "/cat.wasm", toolsImage)...)
			if want := "hello stdin\nline two\n[21 bytes]\n"; r.Exit != 0 || r.Stdout != want {
				t.Errorf("docker run -i: %s\nwant stdout %q", r, want)
			}
		})

		t.Run("volumes", func(t *testing.T) {
			host := t.TempDir()
			data, out := filepath.Join(host, "data"), filepath.Join(host, "out")
			for _, dir := range []string{data, out} {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			writeHostFile(t, filepath.Join(data, "in.txt"), "from the host")
			writeHostFile(t, filepath.Join(host, "app.conf"), "conf")
			r := k.docker(t, "", append(run, "--rm",
				"-v", data+":/data:ro", "-v", out+":/out", "-v", filepath.Join(host, "app.conf")+":/etc/app.conf:ro",
				toolsImage,
				"read", "/data/in.txt", "write", "/data/new", "x", "write", "/out/made", "by the Keep",
				"read", "/etc/app.conf", "write", "/etc/app.conf", "changed")...)
			if r.Exit != 3 {
				t.Errorf("exit %d, want 3 (the refused writes)\n%s", r.Exit, r)
			}
			expectProbe(t, r.Stdout, r.Stderr, map[string]string{
				"read /data/in.txt":   "ok: from the host",
				"write /data/new":     "error",
				"write /out/made":     "ok",
				"read /etc/app.conf":  "ok: conf",
				"write /etc/app.conf": "error",
			})
			if b, err := os.ReadFile(filepath.Join(out, "made")); err != nil || string(b) != "by the Keep" {
				t.Errorf("the file written to the rw volume: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(data, "new")); !os.IsNotExist(err) {
				t.Errorf("the ro volume was written to: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(host, "app.conf")); string(b) != "conf" {
				t.Errorf("the ro file volume now holds %q", b)
			}
		})

		t.Run("user", func(t *testing.T) {
			out := t.TempDir()
			if err := os.Chmod(out, 0o777); err != nil {
				t.Fatal(err)
			}
			r := k.docker(t, "", append(run, "--rm", "--user", "1000:1000", "-v", out+":/out", toolsImage,
				"read", "/secret.txt", "write", "/rootdir/x", "y", "write", "/out/mine", "by 1000")...)
			if r.Exit != 3 {
				t.Errorf("exit %d, want 3 (refusals)\n%s", r.Exit, r)
			}
			expectProbe(t, r.Stdout, r.Stderr, map[string]string{
				"read /secret.txt": "error",
				"write /rootdir/x": "error",
				"write /out/mine":  "ok",
			})
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(out, "mine"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
				t.Errorf("the file the workload made: owner %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
			}
			r = k.docker(t, "", append(run, "--rm", toolsImage, "read", "/secret.txt")...)
			expectProbe(t, r.Stdout, r.Stderr, map[string]string{"read /secret.txt": "ok: root only"})
		})

		t.Run("memory-oom", func(t *testing.T) {
			name := uniqueID("oom")
			r := k.docker(t, "", append(run, "--name", name, "--memory", "64m", "--entrypoint", "/alloc.wasm", toolsImage)...)
			if r.Exit != 137 {
				t.Errorf("docker run --memory 64m of a workload that wants more: exit %d, want 137\n%s", r.Exit, r)
			}
			if !strings.Contains(r.Stderr, "memory limit 67108864 bytes exceeded") {
				t.Errorf("stderr does not say the memory limit was exceeded:\n%s", tailLines(r.Stderr, 5))
			}
			if s := k.state(t, name); s.ExitCode != 137 || !s.OOMKilled {
				t.Errorf("docker inspect: %+v, want ExitCode 137 and OOMKilled", s)
			}
			k.mustDocker(t, "rm", name)
			// Within its limit it runs to the end.
			r = k.docker(t, "", append(run, "--rm", "--memory", "64m", "--entrypoint", "/alloc.wasm", toolsImage, "16")...)
			if r.Exit != 0 || !strings.Contains(r.Stdout, "done, holding 16 blocks") {
				t.Errorf("a workload within --memory: %s", r)
			}
		})

		t.Run("refused", func(t *testing.T) {
			r := k.docker(t, "", append(run, "--rm", "-t", helloImage)...)
			if r.Exit == 0 || !strings.Contains(r.Stderr, "a terminal (ctr run -t, docker run -t) is not supported by the enarx runtime") {
				t.Errorf("docker run -t: %s\nwant a refusal naming the terminal", r)
			}
			name := uniqueID("refuse")
			id := k.mustDocker(t, append(run, "-d", "--name", name, "--entrypoint", "/sleep.wasm", toolsImage, "1h")...)
			ids = append(ids, id)
			k.waitState(t, name, "running", func(s dockerState) bool { return s.Running })
			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"exec", name, "/fsprobe.wasm", "args"}, "exec is not supported by the enarx runtime"},
				{[]string{"pause", name}, "pause is not supported by the enarx runtime"},
			} {
				r := k.docker(t, "", c.args...)
				if r.Exit == 0 || !strings.Contains(r.Stderr+r.Stdout, c.want) {
					t.Errorf("docker %s: %s\nwant a refusal saying %q", strings.Join(c.args, " "), r, c.want)
				}
			}
			// The Keep runs on, untouched.
			if s := k.state(t, name); !s.Running || s.Status != "running" {
				t.Errorf("after the refusals: %+v, want it running", s)
			}
			k.mustDocker(t, "rm", "-f", name)
		})

		t.Run("artifact-platform", func(t *testing.T) {
			out := k.mustDocker(t, "load", "--platform", "wasip1/wasm", "-i", images.artifact)
			if !strings.Contains(out, "Loaded image: "+artifactImage) {
				t.Errorf("docker load: %q", out)
			}
			r := k.docker(t, "", append(run, "--rm", "--platform", "wasip1/wasm", artifactImage)...)
			if r.Exit != 0 || !strings.Contains(r.Stdout, "Hello from a Keep!") {
				t.Errorf("docker run --platform wasip1/wasm %s: %s", artifactImage, r)
			}
		})

		k.stopAndCheck(t, ids)
	})
}
