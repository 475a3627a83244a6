package test

// End-to-end tests of the Kubernetes path: containerd's CRI plugin drives the
// shim, and the test drives the CRI plugin with a real CRI client
// (k8s.io/cri-api) over the daemon's gRPC socket, the way kubelet does.
// Pods use the node's network, except in TestCRIPodNetwork, whose pods get a
// network of their own from CNI plugins (scripts/containerd.sh builds them).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/enarx/containerd-shim-enarx/keep"
)

const (
	// criNamespace is the containerd namespace of the CRI plugin.
	criNamespace = "k8s.io"
	// criHandler is the runtime handler (RuntimeClass handler) of our runtime.
	criHandler = "enarx"
	// criPauseImage is the sandbox image the daemon is configured with: a
	// local image, never pulled.
	criPauseImage = "localhost/enarx-test/pause:1"
)

// criOptions enables containerd's CRI plugin in a daemon the harness starts.
type criOptions struct {
	SandboxImage string // the pause image
	CNIConfDir   string // empty directory: pods use the host network
	CNIBinDir    string
	// NetNS, when not "", is the path of the network namespace the daemon
	// runs in: the node's network as its CNI plugins and Keeps see it.
	NetNS string
}

// startDaemonCRI starts a private daemon of kind with the CRI plugin enabled
// and our runtime as handler "enarx", and stops it in t.Cleanup. Its pods
// can use the node's network only.
func startDaemonCRI(t testing.TB, kind daemonKind) *Daemon {
	t.Helper()
	cni := t.TempDir()
	return startDaemonCRIWith(t, kind, &criOptions{SandboxImage: criPauseImage, CNIConfDir: filepath.Join(cni, "net.d"), CNIBinDir: filepath.Join(cni, "bin")})
}

// startDaemonCRIWith is startDaemonCRI with opts.
func startDaemonCRIWith(t testing.TB, kind daemonKind, opts *criOptions) *Daemon {
	t.Helper()
	requireDaemonEnv(t, kind)
	requireBinaries(t)
	for _, dir := range []string{opts.CNIConfDir, opts.CNIBinDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := launchDaemon(kind, "", nil, opts)
	if err != nil {
		t.Fatalf("starting %s with CRI: %v", kind, err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("stopping %s: %v", kind, err)
		}
	})
	return d
}

// criConfigTOML is the daemon's config with the CRI plugin enabled.
func (d *Daemon) criConfigTOML(level, opt string) string {
	switch d.Kind {
	case containerd16:
		return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = %q

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = %q
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"

      # 1.6 replaces its default runtimes with the ones configured here.
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%s]
        runtime_type = %q

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %q
      conf_dir = %q
`, d.Root, d.State, d.Address, d.TTRPCAddress, level, opt, d.CRI.SandboxImage, criHandler, runtimeEnarx, d.CRI.CNIBinDir, d.CRI.CNIConfDir)
	default:
		// containerd 2.x splits CRI into the images and runtime plugins;
		// the grpc.v1.cri plugin keeps the streaming server.
		return fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[debug]
  level = %q

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = %q

  [plugins."io.containerd.server.v1.ttrpc"]
    address = %q

  [plugins."io.containerd.internal.v1.opt"]
    path = %q

  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q

  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.%s]
      runtime_type = %q

  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%q]
    conf_dir = %q

  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`, d.Root, d.State, level, d.Address, d.TTRPCAddress, opt, d.CRI.SandboxImage, criHandler, runtimeEnarx, d.CRI.CNIBinDir, d.CRI.CNIConfDir)
	}
}

// criClient is a CRI client on a daemon's gRPC socket.
type criClient struct {
	cri.RuntimeServiceClient
	images cri.ImageServiceClient
	d      *Daemon
}

func newCRIClient(t testing.TB, d *Daemon) *criClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("CRI client for %s: %v", d.Address, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &criClient{RuntimeServiceClient: cri.NewRuntimeServiceClient(conn), images: cri.NewImageServiceClient(conn), d: d}
}

func criContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitImage waits until the CRI plugin knows image ref (it learns of images
// imported with ctr from containerd's events).
func (c *criClient) waitImage(t testing.TB, ref string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.images.ImageStatus(criContext(t), &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: ref}})
		if err == nil && resp.GetImage() != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the CRI plugin does not know image %s: %v\n%s", c.d.Name, ref, err, c.d.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// criFixture starts a CRI daemon of kind with the pause image and the wasm
// images of the given fixtures imported into the k8s.io namespace; it
// returns the client and the image refs by fixture name.
func criFixture(t *testing.T, kind daemonKind, fixtures ...string) (*criClient, map[string]string) {
	t.Helper()
	return criFixtureOn(t, startDaemonCRI(t, kind), fixtures...)
}

// criFixtureOn is criFixture on a CRI daemon d.
func criFixtureOn(t *testing.T, d *Daemon, fixtures ...string) (*criClient, map[string]string) {
	t.Helper()
	c := newCRIClient(t, d)
	importNativeImage(t, d, criNamespace, criPauseImage, buildNative(t, "sleep"))
	c.waitImage(t, criPauseImage)
	refs := map[string]string{}
	for _, name := range fixtures {
		ref := "localhost/enarx-test/" + name + ":1"
		importWasmImage(t, d, criNamespace, ref, buildGoWasm(t, name), false)
		c.waitImage(t, ref)
		refs[name] = ref
	}
	return c, refs
}

// podConfig is a pod on the node's network, logging under logDir.
func podConfig(name, logDir string) *cri.PodSandboxConfig {
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uniqueID("uid")},
		LogDirectory: logDir,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE},
		}},
	}
}

// runPod runs a pod sandbox with our runtime handler and returns its ID.
func (c *criClient) runPod(t testing.TB, cfg *cri.PodSandboxConfig) string {
	t.Helper()
	began := time.Now()
	resp, err := c.RunPodSandbox(criContext(t), &cri.RunPodSandboxRequest{Config: cfg, RuntimeHandler: criHandler})
	if err != nil {
		t.Fatalf("%s: RunPodSandbox: %v\n%s", c.d.Name, err, c.d.LogTail(40))
	}
	t.Logf("%s: RunPodSandbox %s in %v", c.d.Name, resp.PodSandboxId, time.Since(began).Round(time.Millisecond))
	return resp.PodSandboxId
}

// runContainer creates and starts a container of image in the pod and
// returns its ID.
func (c *criClient) runContainer(t testing.TB, pod string, podCfg *cri.PodSandboxConfig, name, image string) string {
	t.Helper()
	return c.startContainer(t, pod, podCfg, &cri.ContainerConfig{Image: &cri.ImageSpec{Image: image}}, name)
}

// startContainer creates and starts the container cfg (its metadata and
// log path named name) in the pod and returns its ID.
func (c *criClient) startContainer(t testing.TB, pod string, podCfg *cri.PodSandboxConfig, cfg *cri.ContainerConfig, name string) string {
	t.Helper()
	ctx := criContext(t)
	began := time.Now()
	cfg.Metadata, cfg.LogPath = &cri.ContainerMetadata{Name: name}, name+".log"
	created, err := c.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatalf("%s: CreateContainer %s: %v\n%s", c.d.Name, name, err, c.d.LogTail(40))
	}
	if _, err := c.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("%s: StartContainer %s: %v\n%s", c.d.Name, name, err, c.d.LogTail(40))
	}
	t.Logf("%s: container %s (%s) created and started in %v", c.d.Name, name, created.ContainerId, time.Since(began).Round(time.Millisecond))
	return created.ContainerId
}

// status returns a container's status.
func (c *criClient) status(t testing.TB, id string) *cri.ContainerStatus {
	t.Helper()
	resp, err := c.ContainerStatus(criContext(t), &cri.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("%s: ContainerStatus %s: %v", c.d.Name, id, err)
	}
	return resp.Status
}

// waitExited waits until the container has exited and returns its status.
func (c *criClient) waitExited(t testing.TB, id string) *cri.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.status(t, id)
		if st.State == cri.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: container %s is %v after 30s", c.d.Name, id, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removePod stops and removes a pod, as kubelet does when it is deleted.
func (c *criClient) removePod(t testing.TB, pod string) {
	t.Helper()
	ctx := criContext(t)
	if _, err := c.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("%s: StopPodSandbox: %v\n%s", c.d.Name, err, c.d.LogTail(40))
	}
	if _, err := c.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("%s: RemovePodSandbox: %v\n%s", c.d.Name, err, c.d.LogTail(40))
	}
}

// criLogLine is a line of the CRI log format: time, stream, tag (F for a
// full line, P for a partial one), text.
var criLogLine = regexp.MustCompile(`^(\S+) (stdout|stderr) (F|P) (.*)$`)

// readCRILog returns the stdout text of a container log in the CRI format.
func readCRILog(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("container log: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := criLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("%s: line %q is not in the CRI log format", path, sc.Text())
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Errorf("%s: time %q: %v", path, m[1], err)
		}
		if m[2] == "stdout" {
			out = append(out, m[4])
		}
	}
	return out
}

// shimsOf lists the shim servers of daemon d (their command line names the
// daemon's socket and the serve action); with pod set, those serving it.
func shimsOf(d *Daemon, pod string) []process {
	var out []process
	for _, p := range findProcesses(d.Address) {
		if !strings.Contains(p.Cmdline, serverBinary) || !strings.HasSuffix(p.Cmdline, " serve") {
			continue
		}
		if pod == "" || strings.Contains(p.Cmdline, "-id "+pod+" ") {
			out = append(out, p)
		}
	}
	return out
}

// keepsOf lists the Keeps of containers that our binaries run ("<exe> keep
// -id ID"), not the pods' sandbox processes (sandboxesOf) nor the spare
// Keeps of spare shim servers, which serve no container yet (spareKeepOf).
func keepsOf(d *Daemon) []process {
	var out []process
	for _, p := range findProcesses(filepath.Join(d.BinDir, keepBinary) + " keep -id ") {
		if !strings.HasSuffix(p.Cmdline, " -pause") && !strings.Contains(p.Cmdline, " -pause ") && !strings.Contains(p.Cmdline, " keep -id "+keep.SpareID+" ") {
			out = append(out, p)
		}
	}
	return out
}

// sandboxesOf lists the processes that hold pods' namespaces ("<exe> keep
// -id POD -pause"); with pod set, that pod's.
func sandboxesOf(d *Daemon, pod string) []process {
	var out []process
	for _, p := range findProcesses(filepath.Join(d.BinDir, keepBinary) + " keep -id " + pod) {
		if strings.HasSuffix(p.Cmdline, " -pause") || strings.Contains(p.Cmdline, " -pause ") {
			out = append(out, p)
		}
	}
	return out
}

// waitNone waits until list returns nothing, and fails the test otherwise.
func waitNone(t testing.TB, what string, list func() []process) {
	t.Helper()
	deadline := time.Now().Add(leftoverGracePeriod)
	for {
		left := list()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s still running after %v: %v", what, leftoverGracePeriod, left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCRIPod runs a pod of two Keeps through the CRI plugin: one that greets
// and exits, one that runs until the pod is stopped. They share one shim
// with the pod's sandbox, which runs no Keep.
func TestCRIPod(t *testing.T) {
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, refs := criFixture(t, kind, "hello", "sleep")
			logDir := t.TempDir()
			podCfg := podConfig("hello", logDir)
			pod := c.runPod(t, podCfg)
			if shims := shimsOf(c.d, pod); len(shims) != 1 {
				t.Errorf("shims serving pod %s: %v, want one", pod, shims)
			}
			if keeps := keepsOf(c.d); len(keeps) != 0 {
				t.Errorf("the sandbox runs Keeps: %v", keeps)
			}
			if sandboxes := sandboxesOf(c.d, pod); len(sandboxes) != 1 {
				t.Errorf("sandbox processes of pod %s: %v, want one", pod, sandboxes)
			}

			hello := c.runContainer(t, pod, podCfg, "hello", refs["hello"])
			st := c.waitExited(t, hello)
			if st.ExitCode != 0 || st.Reason != "Completed" {
				t.Errorf("hello: exit code %d, reason %q, want 0 Completed (%s)", st.ExitCode, st.Reason, st.Message)
			}
			if got := readCRILog(t, filepath.Join(logDir, "hello.log")); len(got) != 1 || got[0] != "Hello from a Keep!" {
				t.Errorf("hello's log: %q, want one line %q", got, "Hello from a Keep!")
			}

			sleeper := c.runContainer(t, pod, podCfg, "sleep", refs["sleep"])
			if st := c.status(t, sleeper); st.State != cri.ContainerState_CONTAINER_RUNNING {
				t.Errorf("sleep: %v, want running", st.State)
			}
			// One shim for the pod (its sandbox and both containers), one
			// Keep running.
			if shims := shimsOf(c.d, ""); len(shims) != 1 {
				t.Errorf("shims: %v, want one for the pod", shims)
			}
			if keeps := keepsOf(c.d); len(keeps) != 1 || !strings.Contains(keeps[0].Cmdline, sleeper) {
				t.Errorf("keeps: %v, want only sleep's", keeps)
			}
			status, err := c.PodSandboxStatus(criContext(t), &cri.PodSandboxStatusRequest{PodSandboxId: pod})
			if err != nil || status.Status.State != cri.PodSandboxState_SANDBOX_READY || status.Status.RuntimeHandler != criHandler {
				t.Errorf("PodSandboxStatus: %v, %v", status, err)
			}

			c.removePod(t, pod)
			waitNone(t, "keeps", func() []process { return keepsOf(c.d) })
			waitNone(t, "sandboxes", func() []process { return sandboxesOf(c.d, "") })
			waitNone(t, "shims", func() []process { return shimsOf(c.d, "") })
			list, err := c.ListContainers(criContext(t), &cri.ListContainersRequest{})
			if err != nil || len(list.Containers) != 0 {
				t.Errorf("containers left: %v, %v", list, err)
			}
			pods, err := c.ListPodSandbox(criContext(t), &cri.ListPodSandboxRequest{})
			if err != nil || len(pods.Items) != 0 {
				t.Errorf("pods left: %v, %v", pods, err)
			}
			if tasks := strings.Fields(c.d.mustCtr(t, criNamespace, "tasks", "ls", "-q")); len(tasks) != 0 {
				t.Errorf("tasks left: %v", tasks)
			}
		})
	}
}

// TestCRIPodDensity compares the shims of one pod of n Keeps with those of n
// pods of one Keep each: their number and memory (PSS).
func TestCRIPodDensity(t *testing.T) {
	const n = 10
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, refs := criFixture(t, kind, "sleep")
			logDir := t.TempDir()

			podCfg := podConfig("dense", logDir)
			pod := c.runPod(t, podCfg)
			for i := range n {
				c.runContainer(t, pod, podCfg, fmt.Sprintf("sleep%d", i), refs["sleep"])
			}
			oneShims, onePSS := shimMemory(t, c.d)
			keeps, keepPSS := processMemory(t, keepsOf(c.d))
			c.removePod(t, pod)
			waitNone(t, "shims", func() []process { return shimsOf(c.d, "") })

			var pods []string
			for i := range n {
				cfg := podConfig(fmt.Sprintf("single%d", i), logDir)
				p := c.runPod(t, cfg)
				c.runContainer(t, p, cfg, fmt.Sprintf("single%d", i), refs["sleep"])
				pods = append(pods, p)
			}
			manyShims, manyPSS := shimMemory(t, c.d)
			sandboxes, sandboxPSS := processMemory(t, sandboxesOf(c.d, ""))
			for _, p := range pods {
				c.removePod(t, p)
			}
			waitNone(t, "shims", func() []process { return shimsOf(c.d, "") })
			waitNone(t, "keeps", func() []process { return keepsOf(c.d) })

			if oneShims != 1 || manyShims != n {
				t.Errorf("shims: %d for one pod of %d, %d for %d pods; want 1 and %d", oneShims, n, manyShims, n, n)
			}
			t.Logf("%s: one pod of %d Keeps: %d shim, PSS %d KiB; %d pods of one Keep: %d shims, PSS %d KiB (%d KiB each), %d sandbox processes, PSS %d KiB (%d KiB each); the %d Keeps: PSS %d KiB",
				c.d.Name, n, oneShims, onePSS, n, manyShims, manyPSS, manyPSS/max(manyShims, 1), sandboxes, sandboxPSS, sandboxPSS/max(sandboxes, 1), keeps, keepPSS)
		})
	}
}

// shimMemory returns the number of shims of d and their total PSS in KiB.
func shimMemory(t testing.TB, d *Daemon) (int, int) {
	return processMemory(t, shimsOf(d, ""))
}

// processMemory returns len(ps) and their total PSS in KiB
// (/proc/PID/smaps_rollup).
func processMemory(t testing.TB, ps []process) (int, int) {
	t.Helper()
	total := 0
	for _, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p.PID))
		if err != nil {
			t.Errorf("memory of %v: %v", p, err)
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.Atoi(f[1])
				total += kb
			}
		}
	}
	return len(ps), total
}

// TestCRISecurityContext runs a pod's containers as Kubernetes asks with a
// securityContext: runAsUser, capabilities drop [ALL], no privilege
// escalation, the RuntimeDefault seccomp profile. The Keep runs as that
// user with no capability, no_new_privs and the profile on every thread, in
// its own mount namespace, and its workload sees the /etc/hosts and
// /etc/resolv.conf the CRI plugin gives every container.
func TestCRISecurityContext(t *testing.T) {
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, refs := criFixture(t, kind, "fsprobe", "sleep")
			logDir := t.TempDir()
			podCfg := podConfig("secure", logDir)
			pod := c.runPod(t, podCfg)
			secure := &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{
				RunAsUser:    &cri.Int64Value{Value: 1000},
				Capabilities: &cri.Capability{DropCapabilities: []string{"ALL"}},
				NoNewPrivs:   true,
				Seccomp:      &cri.SecurityProfile{ProfileType: cri.SecurityProfile_RuntimeDefault},
			}}
			create := func(name, image string, args ...string) string {
				return c.startContainer(t, pod, podCfg, &cri.ContainerConfig{Image: &cri.ImageSpec{Image: image}, Args: args, Linux: secure}, name)
			}

			probe := create("probe", refs["fsprobe"], "read", "/etc/hosts", "read", "/etc/resolv.conf", "write", "/app-owned.txt", "x")
			st := c.waitExited(t, probe)
			lines := strings.Join(readCRILog(t, filepath.Join(logDir, "probe.log")), "\n")
			for _, want := range []string{"read /etc/hosts: ok: ", "read /etc/resolv.conf: ok", "write /app-owned.txt: error"} {
				if !strings.Contains(lines, want) {
					t.Errorf("probe (exit %d): %q not in its output:\n%s", st.ExitCode, want, lines)
				}
			}

			sleeper := create("sleep", refs["sleep"], "1h")
			keep := keepOf(sleeper)
			if keep == 0 {
				t.Fatalf("no Keep for %s among %v", sleeper, keepsOf(c.d))
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", keep))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"\nUid:\t1000\t1000\t1000\t1000\n", "\nCapEff:\t0000000000000000\n", "\nCapPrm:\t0000000000000000\n",
				"\nCapBnd:\t0000000000000000\n", "\nNoNewPrivs:\t1\n", "\nSeccomp:\t2\n"} {
				if !strings.Contains(string(status), want) {
					t.Errorf("the Keep's status lacks %q:\n%s", strings.TrimSpace(want), status)
				}
			}
			mine, _ := os.Readlink("/proc/self/ns/mnt")
			if theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", keep)); theirs == mine {
				t.Errorf("the Keep is in the host's mount namespace %s", mine)
			}
			c.removePod(t, pod)
			waitNone(t, "keeps", func() []process { return keepsOf(c.d) })
		})
	}
}

// TestCRIBidirectionalMount: a Kubernetes volume with Bidirectional mount
// propagation, which the CRI plugin gives as an rshared bind and an rshared
// rootfsPropagation: the container starts (pivot_root is not refused), the
// volume is shared in its Keep, and a mount the host makes in it later
// reaches the Keep.
func TestCRIBidirectionalMount(t *testing.T) {
	vol := sharedDir(t)
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			c, refs := criFixture(t, kind, "sleep")
			podCfg := podConfig("bidirectional", t.TempDir())
			pod := c.runPod(t, podCfg)
			sleeper := c.startContainer(t, pod, podCfg, &cri.ContainerConfig{Image: &cri.ImageSpec{Image: refs["sleep"]}, Args: []string{"1h"},
				Mounts: []*cri.Mount{{ContainerPath: "/vol", HostPath: vol, Propagation: cri.MountPropagation_PROPAGATION_BIDIRECTIONAL}}}, "sleep")
			keep := keepOf(sleeper)
			if keep == 0 {
				t.Fatalf("no Keep for %s among %v", sleeper, keepsOf(c.d))
			}
			late := mountLater(t, vol)
			propagation, mounts := mountPropagation(t, keep)
			if propagation["/"] != "shared" || propagation["/vol"] != "shared" {
				t.Errorf("the Keep's / is %q and /vol %q, want both shared:\n%s", propagation["/"], propagation["/vol"], mounts)
			}
			if _, ok := propagation["/vol/"+late]; !ok {
				t.Errorf("a mount the host made in the Bidirectional volume did not reach the Keep:\n%s", mounts)
			}
			c.removePod(t, pod)
			waitNone(t, "keeps", func() []process { return keepsOf(c.d) })
		})
	}
}
