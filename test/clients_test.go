package test

// Helpers of the tests that drive the shim through real clients: Docker
// (a private dockerd on the test's containerd, driven by the docker CLI) in
// docker_test.go, and nerdctl in nerdctl_test.go.
//
// Environment (scripts/containerd.sh env prints it):
//
//	ENARX_DOCKERD   dockerd built from moby's module (default ${ENARX_CACHE}/dockerd-v2.0.0-beta.24/dockerd)
//	ENARX_DOCKER    the docker CLI (default: docker on PATH)
//	ENARX_NERDCTL   nerdctl (default ${ENARX_CACHE}/nerdctl-v2.2.2/nerdctl)

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

const (
	envDockerd = "ENARX_DOCKERD"
	envDocker  = "ENARX_DOCKER"
	envNerdctl = "ENARX_NERDCTL"
	envCI      = "CI"

	dockerdVersion = "v2.0.0-beta.24"
	nerdctlVersion = "v2.2.2"

	// clientTimeout bounds one client command; a command still running
	// then is killed and fails the test.
	clientTimeout = 90 * time.Second

	// clientDirPrefix: the directories of a client's private state under
	// /tmp (short: dockerd's socket lives there). daemonDirPrefix's sweep
	// does not know them, so each is removed by its test.
	clientDirPrefix = "ecl-"
)

// clientBinary finds a client's executable: the environment variable, else
// the default path (the cache scripts/containerd.sh builds into), else, for
// lookPath, the PATH. A missing client fails the test, or skips it under
// ENARX_E2E_OPTIONAL=1 — never under CI=true.
func clientBinary(t testing.TB, env, def string, lookPath bool) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" && def != "" {
		if _, err := os.Stat(def); err == nil {
			p = def
		}
	}
	if p == "" && lookPath {
		p, _ = exec.LookPath(filepath.Base(def))
	}
	if p == "" {
		p = def
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s: %s is not installed (%v): run scripts/containerd.sh install and eval \"$(scripts/containerd.sh env)\"", env, p, err)
		if os.Getenv(envCI) == "true" {
			t.Fatal(msg)
		}
		skipOrFail(t, "%s", msg)
	}
	return p
}

// clientResult is what one client command did.
type clientResult struct {
	Stdout, Stderr string
	Exit           int
}

func (r clientResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Exit, tailLines(r.Stdout, 20), tailLines(r.Stderr, 20))
}

// runClient runs bin with args and env (added to the test's environment,
// without variables that would steer a client elsewhere), stdin as its
// input, and returns what it did. A command that cannot run or outlives
// clientTimeout fails the test.
func runClient(t testing.TB, env []string, stdin, bin string, args ...string) clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(clientEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var outb, errb bytes.Buffer
	cmd.Stdout = &outb
	cmd.Stderr = &errb
	cmd.WaitDelay = 5 * time.Second
	// Its own process group: a nerdctl that left a logging process behind
	// must not take the test's terminal signals with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	err := cmd.Run()
	r := clientResult{Stdout: outb.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		t.Fatalf("%s %s: timed out after %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), clientTimeout, r.Stdout, r.Stderr)
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	t.Logf("%s %s: exit %d in %v", filepath.Base(bin), strings.Join(args, " "), r.Exit, time.Since(began).Round(time.Millisecond))
	return r
}

// clientEnv is the test's environment without what would point a client at
// another daemon or configuration.
func clientEnv() []string {
	var env []string
	for _, kv := range cleanEnv() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "DOCKER_"), strings.HasPrefix(name, "NERDCTL_"),
			strings.HasPrefix(name, "CONTAINERD_"), name == "XDG_RUNTIME_DIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// clientDir makes a private directory under /tmp for a client's state and
// removes it (unmounting what is left) in t.Cleanup, after the client's
// own cleanups, which are registered later.
func clientDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", clientDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m := mountsUnder(dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %q", dir, m)
		}
		if err := removeTree(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// packageImage writes an OCI image archive of the module at wasmPath with
// `enarx package [--artifact] --name REF -o ARCHIVE [pkgArgs...] WASM` and
// returns the archive.
func packageImage(t testing.TB, ref, wasmPath string, artifact bool, pkgArgs ...string) string {
	t.Helper()
	bin := requireBinaries(t)
	archive := filepath.Join(t.TempDir(), "image.tar")
	args := []string{"package"}
	if artifact {
		args = append(args, "--artifact")
	}
	args = append(append(args, "--name", ref, "-o", archive), pkgArgs...)
	args = append(args, wasmPath)
	if out, err := exec.Command(filepath.Join(bin, enarxBinary), args...).CombinedOutput(); err != nil {
		t.Fatalf("enarx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return archive
}

// assertClientLeftovers fails the test if anything of a client run is left on
// the host once the client has been stopped and its containers removed:
// processes naming ns or dir (shims, Keeps, logging binaries, the daemon),
// mounts under dir or the containerd daemon's directory naming ns, and the
// cgroups of containers (cgroupParents: the cgroup parents the client
// used, relative to each hierarchy's root).
func assertClientLeftovers(t testing.TB, d *Daemon, ns, dir string, cgroupParents ...string) {
	t.Helper()
	stopSpare(t, d, ns)
	assertNoLeftovers(t, ns)
	assertNoLeftovers(t, dir)
	for _, m := range append(mountsUnder(dir), mountsUnder(d.Dir)...) {
		if strings.Contains(m, ns) || strings.HasPrefix(m, dir) {
			t.Errorf("mount %s left behind", m)
		}
	}
	bundles, _ := filepath.Glob(filepath.Join(d.State, "io.containerd.runtime.v2.task", ns, "*"))
	if len(bundles) > 0 {
		t.Errorf("task bundles left in namespace %s: %q", ns, bundles)
	}
	for _, parent := range cgroupParents {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent, "*"))
		unified, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent, "*"))
		for _, c := range append(dirs, unified...) {
			if fi, err := os.Stat(c); err == nil && fi.IsDir() {
				t.Errorf("cgroup %s left behind", c)
			}
		}
		// The parent itself is the client's, as with runc: remove it.
		parents, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		for _, p := range append(parents, filepath.Join("/sys/fs/cgroup", parent)) {
			_ = os.Remove(p)
		}
	}
}

// clientImages are the images the client tests load: hello packaged by
// `enarx package` (default and --artifact), and tools, one image whose
// root filesystem holds several fixtures (picked with --entrypoint), a
// root-only file and a root-owned directory.
type clientImages struct {
	hello, artifact, tools string // archives
}

const (
	helloImage    = "enarx-test/hello:latest"
	artifactImage = "enarx-test/hello-artifact:latest"
	toolsImage    = "enarx-test/tools:latest"
)

func buildClientImages(t *testing.T) clientImages {
	t.Helper()
	hello := buildGoWasm(t, "hello")
	img := clientImages{
		hello:    packageImage(t, "docker.io/"+helloImage, hello, false),
		artifact: packageImage(t, "docker.io/"+artifactImage, hello, true),
		tools:    filepath.Join(t.TempDir(), "tools.tar"),
	}
	files := []tarFile{
		{Name: "secret.txt", Mode: 0o600, Data: []byte("root only")},
		{Name: "rootdir", Type: tar.TypeDir, Mode: 0o755},
	}
	for _, f := range []string{"fsprobe", "sleep", "cat", "alloc", "exit", "echo"} {
		wasm, err := os.ReadFile(buildGoWasm(t, f))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, tarFile{Name: f + ".wasm", Mode: 0o755, Data: wasm})
	}
	layer, err := tarFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLayerImageConfig(img.tools, "docker.io/"+toolsImage, layer, ocispec.ImageConfig{Entrypoint: []string{"/fsprobe.wasm"}}); err != nil {
		t.Fatal(err)
	}
	return img
}

// waitFor polls cond until it holds or 30 s have passed; what reports the
// last state for the failure message.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 30s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openPTY opens a new pseudo-terminal: the controlling side and the
// terminal a client gets as its stdio (for -it, which clients check
// before asking for a terminal).
func openPTY(t testing.TB) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		ptmx.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		ptmx.Close()
		t.Fatalf("the pseudo-terminal's number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		ptmx.Close()
		t.Fatalf("opening /dev/pts/%d: %v", n, err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	return ptmx, tty
}

// runOnTerminal runs bin with args with a new pseudo-terminal as its
// stdin, stdout and stderr (its controlling terminal, in a session of its
// own), and returns what it wrote there and its exit status.
func runOnTerminal(t testing.TB, env []string, bin string, args ...string) clientResult {
	t.Helper()
	ptmx, tty := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(clientEnv(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = out.ReadFrom(ptmx) // ends with EIO when the last holder of the terminal closes it
	}()
	err := cmd.Wait()
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		ptmx.Close()
		<-copied
	}
	r := clientResult{Stdout: strings.ReplaceAll(out.String(), "\r\n", "\n")}
	var ee *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		t.Fatalf("%s %s on a terminal: timed out after %v\n%s", filepath.Base(bin), strings.Join(args, " "), clientTimeout, r.Stdout)
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	t.Logf("%s %s (on a terminal): exit %d", filepath.Base(bin), strings.Join(args, " "), r.Exit)
	return r
}

// inspectState decodes a client's `inspect --format {{json .State}} NAME`
// (Docker's and nerdctl's), run by must.
func inspectState[S any](t testing.TB, must func(testing.TB, ...string) string, name string) S {
	t.Helper()
	var s S
	out := must(t, "inspect", "--format", "{{json .State}}", name)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("inspect %s: %v\n%s", name, err, out)
	}
	return s
}

// waitState waits until the container's state, as state reads it,
// satisfies ok.
func waitState[S any](t testing.TB, name, what string, state func(testing.TB, string) S, ok func(S) bool) S {
	t.Helper()
	var s S
	waitFor(t, name+" "+what, func() (bool, string) {
		s = state(t, name)
		return ok(s), fmt.Sprintf("%+v", s)
	})
	return s
}
