package test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/enarx/containerd-shim-enarx/keep/sockets"
)

// envCNIBin is the directory of the CNI plugins a pod network needs here:
// loopback, ptp and host-local (scripts/containerd.sh builds them).
const envCNIBin = "ENARX_CNI_BIN"

// podSubnet is the pods' network in TestCRIPodNetwork. Each pod's eth0 is
// a veth with an address of it, whose other end is in the node's network
// namespace: one the test makes for the daemon, so that nothing of the
// machine's own network changes.
const podSubnet = "10.88.77.0/24"

// startDaemonCRINetwork starts a CRI daemon whose pods get a network of
// their own, as on a Kubernetes node with a CNI plugin, in a network
// namespace of its own (the node's); it returns the daemon and the path of
// that namespace.
func startDaemonCRINetwork(t *testing.T, kind daemonKind) (*Daemon, string) {
	t.Helper()
	bin := os.Getenv(envCNIBin)
	for _, plugin := range []string{"loopback", "ptp", "host-local"} {
		if _, err := os.Stat(filepath.Join(bin, plugin)); bin == "" || err != nil {
			skipOrFail(t, "CNI plugin %s not found in %s=%q: run scripts/containerd.sh install, then export the variables of scripts/containerd.sh env", plugin, envCNIBin, bin)
		}
	}
	node, err := sockets.OpenNetNS(sockets.NewNetNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() }) // after the daemon stops
	nodeNS := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), node.Fd())
	dir := t.TempDir()
	opts := &criOptions{SandboxImage: criPauseImage, CNIConfDir: filepath.Join(dir, "net.d"), CNIBinDir: bin, NetNS: nodeNS}
	if err := os.MkdirAll(opts.CNIConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "enarx-test", "plugins": [
  {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}
]}`, podSubnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(opts.CNIConfDir, "10-enarx-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemonCRIWith(t, kind, opts), nodeNS
}

// TestCRIPodNetwork runs Keeps in a pod on a pod network: its sandbox
// process holds the pod's namespaces (the network namespace the CRI plugin
// made, new IPC and UTS ones with the pod's hostname), and the pod's Keeps
// are in them, as runc's processes are in pause's. A Keep's listen socket
// is on the pod's address, not the host's, and its workload sees the pod's
// interfaces, hostname and sysctls.
func TestCRIPodNetwork(t *testing.T) {
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			d, node := startDaemonCRINetwork(t, kind)
			c, refs := criFixtureOn(t, d, "fsprobe")
			port := freePort(t)
			toml := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n\n"+
				"[[files]]\nkind = \"listen\"\nname = \"https\"\naddr = \"0.0.0.0\"\nport = %d\nprot = \"tcp\"\n", port)
			web := "localhost/enarx-test/httpserver-pod:1"
			importFixtureImage(t, d, criNamespace, web, "httpserver", tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte(toml)})
			c.waitImage(t, web)

			logDir := t.TempDir()
			podCfg := podConfig("net", logDir)
			podCfg.Hostname = "webpod"
			podCfg.Linux.SecurityContext.NamespaceOptions = &cri.NamespaceOption{Network: cri.NamespaceMode_POD}
			// A "safe" sysctl of Kubernetes', of the pod's network namespace.
			podCfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}
			pod := c.runPod(t, podCfg)
			status, err := c.PodSandboxStatus(criContext(t), &cri.PodSandboxStatusRequest{PodSandboxId: pod})
			if err != nil {
				t.Fatalf("PodSandboxStatus: %v", err)
			}
			podIP, err := netip.ParseAddr(status.GetStatus().GetNetwork().GetIp())
			if err != nil || !netip.MustParsePrefix(podSubnet).Contains(podIP) {
				t.Fatalf("the pod's IP %q (%v): want one of %s", status.GetStatus().GetNetwork().GetIp(), err, podSubnet)
			}
			sandboxes := sandboxesOf(c.d, pod)
			if len(sandboxes) != 1 {
				t.Fatalf("sandbox processes of pod %s: %v, want one", pod, sandboxes)
			}
			sandbox := sandboxes[0].PID

			server := c.runContainer(t, pod, podCfg, "web", web)
			keep := keepOf(server)
			if keep == 0 {
				t.Fatalf("no Keep for %s among %v", server, keepsOf(c.d))
			}
			for _, ns := range []string{"net", "ipc", "uts"} {
				theirs, mine := nsOf(t, sandbox, ns), nsOf(t, os.Getpid(), ns)
				if got := nsOf(t, keep, ns); got != theirs || got == mine {
					t.Errorf("the Keep's %s namespace is %s; the pod's is %s, the host's %s", ns, got, theirs, mine)
				}
			}

			// The server answers on the pod's address, from the node and
			// from inside the pod; on the node's loopback nothing listens on
			// that port.
			for _, from := range []string{node, fmt.Sprintf("/proc/%d/ns/net", sandbox)} {
				body, err := httpGetIn(from, netip.AddrPortFrom(podIP, uint16(port)), "/pod")
				if err != nil || !strings.Contains(body, "hello from /pod") {
					t.Errorf("GET http://%s:%d/pod from %s: %v, %q", podIP, port, from, err, body)
				}
			}
			if _, err := httpGetIn(node, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), "/"); err == nil {
				t.Errorf("the pod's port %d is open on the node's loopback", port)
			}

			// The workload's view: the pod's interfaces and hostname.
			probe := runProbe(t, c, pod, podCfg, refs["fsprobe"], logDir, "probe", "read", "/proc/net/dev", "read", "/etc/hostname",
				"read", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
			if !strings.Contains(probe, "eth0:") || !strings.Contains(probe, "read /etc/hostname: ok: webpod") ||
				!strings.Contains(probe, "ip_unprivileged_port_start: ok: 80") {
				t.Errorf("the workload does not see the pod's eth0, hostname and sysctl:\n%s", probe)
			}

			c.removePod(t, pod)
			waitNone(t, "keeps", func() []process { return keepsOf(c.d) })
			waitNone(t, "sandboxes", func() []process { return sandboxesOf(c.d, "") })
		})
	}
}

// runProbe runs the fsprobe image in the pod with args and returns its
// output once it has exited.
func runProbe(t *testing.T, c *criClient, pod string, podCfg *cri.PodSandboxConfig, image, logDir, name string, args ...string) string {
	t.Helper()
	id := c.startContainer(t, pod, podCfg, &cri.ContainerConfig{Image: &cri.ImageSpec{Image: image}, Args: args}, name)
	st := c.waitExited(t, id)
	return fmt.Sprintf("%s\n(exit %d, %s: %s)", strings.Join(readCRILog(t, filepath.Join(logDir, name+".log")), "\n"), st.ExitCode, st.Reason, st.Message)
}

// nsOf is the namespace of type ns of process pid, as /proc/PID/ns shows it.
func nsOf(t *testing.T, pid int, ns string) string {
	t.Helper()
	v, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// httpGetIn sends GET path to addr from inside the network namespace at
// netns and returns the answer. The socket is made by a thread that has
// entered the namespace; the thread is never given back to the runtime.
func httpGetIn(netns string, addr netip.AddrPort, path string) (string, error) {
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(netns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns %s: %w", netns, err)}
			return
		}
		conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: pod\r\n\r\n", path); err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(conn)
		done <- result{string(b), err}
	}()
	r := <-done
	return r.body, r.err
}
