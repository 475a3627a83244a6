// Package shim is the containerd runtime shim: the bootstrap containerd runs
// (start, delete, -info), and the ttrpc task service that manages Keeps. It
// runs no WebAssembly (the engine is behind package keep, in the Keep
// process), but it is not TEE-blind: it chooses a Keep's backend under the
// node policy (asking package keep which TEEs the node offers), publishes
// what the Keep attested as labels (parsing its certificate), and serves
// fresh evidence from a running Keep (package attestapi).
package shim

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/shim/attestapi"
	"github.com/enarx/containerd-shim-enarx/version"
)

// RuntimeName is the name users give containerd for this runtime.
const RuntimeName = "io.containerd.enarx.v1"

// defaultSocketDir is where containerd's shims put their sockets unless the
// daemon says otherwise.
const defaultSocketDir = "/run/containerd/s"

// serveAction is the internal action of the long-running shim server that
// `start` executes.
const serveAction = "serve"

// flags are the command line containerd gives a shim.
type flags struct {
	namespace     string
	id            string
	address       string
	publishBinary string
	bundle        string
	socket        string
	debug         bool
	info          bool
	version       bool
	action        string
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("containerd-shim-enarx-v1", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.namespace, "namespace", os.Getenv("NAMESPACE"), "containerd namespace")
	fs.StringVar(&f.id, "id", "", "ID of the task")
	fs.StringVar(&f.address, "address", os.Getenv("GRPC_ADDRESS"), "containerd gRPC address")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "containerd binary (unused: events go over ttrpc)")
	fs.StringVar(&f.bundle, "bundle", "", "bundle path (delete)")
	fs.StringVar(&f.socket, "socket", "", "socket path (serve)")
	fs.BoolVar(&f.debug, "debug", false, "debug logging")
	fs.BoolVar(&f.info, "info", false, "print runtime info as protobuf and exit")
	fs.BoolVar(&f.version, "v", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.action = fs.Arg(0)
	return f, nil
}

// Run is the shim binary: it does what containerd asks on the command line
// and returns the process exit status.
func Run(ctx context.Context, args []string) int {
	f, err := parseFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-enarx-v1: %v\n", err)
		return 2
	}
	switch {
	case f.version:
		fmt.Printf("containerd-shim-enarx-v1\n  Version: %s\n  Revision: %s\n  Runtime: %s\n", version.Version, version.Revision, RuntimeName)
		return 0
	case f.info:
		err = info(os.Stdout)
	case f.action == "start":
		err = start(ctx, f, os.Stdin, os.Stdout)
	case f.action == "delete":
		err = cleanup(ctx, f, os.Stdout)
	case f.action == serveAction:
		err = serve(ctx, f)
	default:
		fmt.Fprintf(os.Stderr, "containerd-shim-enarx-v1: the containerd runtime shim for %s; containerd runs it (actions: start, delete; flags -info, -v)\n", RuntimeName)
		return 2
	}
	if err != nil {
		// stderr of start and delete reaches containerd's log.
		fmt.Fprintf(os.Stderr, "containerd-shim-enarx-v1 %s: %v\n", f.action, err)
		return 1
	}
	return 0
}

// info answers containerd 2.x's `shim -info` with a protobuf RuntimeInfo.
func info(w io.Writer) error {
	b, err := proto.Marshal(&types.RuntimeInfo{
		Name:    RuntimeName,
		Version: &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
	})
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// bootstrap reads what containerd wrote on start's stdin. containerd 2.x
// sends BootstrapParams; 1.x sends nothing or an Any of runtime options,
// which can also parse as BootstrapParams, so as containerd itself does, the
// params count only when their ID and namespace are the command line's.
func bootstrap(f flags, in io.Reader) (*bootapi.BootstrapParams, error) {
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read bootstrap parameters: %w", err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var p bootapi.BootstrapParams
	if err := proto.Unmarshal(b, &p); err != nil || p.InstanceID != f.id || p.Namespace != f.namespace {
		return nil, nil
	}
	return &p, nil
}

// socketAddress is where the shim of (address, namespace, id) listens, as
// containerd's own shims compute it.
func socketAddress(dir, address, ns, id string) string {
	d := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return fmt.Sprintf("unix://%s/%x", dir, d)
}

// start starts the shim server for a task and tells containerd its address,
// in the dialect containerd spoke. Nothing else may reach stdout or stderr:
// containerd reads both.
func start(ctx context.Context, f flags, in io.Reader, out io.Writer) error {
	params, err := bootstrap(f, in)
	if err != nil {
		return err
	}
	if f.id == "" || f.namespace == "" {
		return errors.New("start needs -id and -namespace")
	}
	dir := defaultSocketDir
	ttrpcAddress := os.Getenv("TTRPC_ADDRESS")
	if params != nil {
		if params.SocketDir != nil && *params.SocketDir != "" {
			dir = *params.SocketDir
		}
		if ttrpcAddress == "" {
			ttrpcAddress = params.ContainerdTtrpcAddress
		}
		if f.address == "" {
			f.address = params.ContainerdGrpcAddress
		}
	}
	// The containers of one pod share a shim, as with containerd's runc
	// shim: the socket is the pod sandbox's, and a shim already serving it
	// takes the container. start runs in the bundle.
	group := f.id
	if spec, err := oci.LoadSpec("."); err == nil {
		group = groupID(spec, f.id)
	}
	address := socketAddress(dir, f.address, f.namespace, group)
	path := attestapi.SocketPath(address)
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	l, err := listen(path)
	if errors.Is(err, errServing) {
		return answer(out, params, address)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	lf, err := l.File()
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	defer lf.Close()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	args := []string{"-namespace", f.namespace, "-id", group, "-address", f.address, "-socket", path}
	if f.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(exe, append(args, serveAction)...)
	cmd.Dir, _ = os.Getwd()
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+ttrpcAddress, "GRPC_ADDRESS="+f.address)
	cmd.ExtraFiles = []*os.File{lf}
	// A session of its own, and no pipes of containerd's: containerd reads
	// start's output to EOF.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(path)
		return fmt.Errorf("start shim server: %w", err)
	}
	_ = cmd.Process.Release()

	return answer(out, params, address)
}

// answer tells containerd the shim's address in the dialect it spoke, and
// records it in the bundle.
func answer(out io.Writer, params *bootapi.BootstrapParams, address string) error {
	// containerd 1.x finds a live shim again after a restart through this file.
	if err := os.WriteFile(oci.Bundle{Dir: "."}.Address(), []byte(address), 0o600); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	if params == nil {
		_, err := io.WriteString(out, address)
		return err
	}
	result := &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}
	// Telling containerd which mounts the shim performs (none: the mount
	// manager does them all) also spares a `shim -info` on every create.
	if err := result.AddExtension(&types.MountCapabilities{}); err != nil {
		return err
	}
	b, err := proto.Marshal(result)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// errServing is listen's error when a live shim already listens on the socket.
var errServing = errors.New("a shim already listens there")

// listen creates the shim's socket. A stale socket nobody answers on is
// replaced; a live one means a shim already serves this task.
func listen(path string) (*net.UnixListener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, errServing)
		}
		os.Remove(path)
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The server inherits the socket; start's copy must not unlink it.
	l.SetUnlinkOnClose(false)
	return l, nil
}

// cleanup is `shim delete`: containerd runs it in the bundle after the shim
// is gone (or after it crashed) to remove what the task left. It kills a
// Keep left running and reports the task as killed (137), or reports the
// status of a Keep that had exited before the shim went.
func cleanup(ctx context.Context, f flags, out io.Writer) error {
	// containerd reads only the DeleteResponse on stdout; keep stderr quiet.
	logrus.SetOutput(io.Discard)
	dir := f.bundle
	if dir == "" {
		dir, _ = os.Getwd()
	}
	bundle := oci.Bundle{Dir: dir}
	var pid int
	if b, err := os.ReadFile(bundle.KeepPID()); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	// A Keep the shim saw exit has its status recorded; a Keep still
	// running is killed, and gone before its root filesystem is unmounted
	// (it may hold files in it) and its cgroup removed.
	status, exitedAt, exited := readExitRecord(bundle)
	if !exited {
		status, exitedAt = 128+int(syscall.SIGKILL), time.Now()
		if pid > 0 && keep.IsProcessOf(pid, f.id) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, processGoneTimeout)
			exitedAt = time.Now()
		}
	}
	if b, err := os.ReadFile(bundle.Address()); err == nil {
		if p := attestapi.SocketPath(strings.TrimSpace(string(b))); !serving(p) {
			os.Remove(p)
		}
	}
	// The same cleanup as Delete: the rootfs only if Create mounted it.
	var cg *cgroup.Cgroup
	if spec, err := bundle.Spec(); err == nil {
		cg = loadCgroup(ctx, spec)
	}
	t := &task{id: f.id, bundle: bundle, rootfs: mountedRootfs(bundle), cgroup: cg}
	t.cleanup(ctx)
	b, err := proto.Marshal(&taskapi.DeleteResponse{
		ExitedAt:   timestamppb.New(exitedAt),
		ExitStatus: uint32(status),
		Pid:        uint32(pid),
	})
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// processGoneTimeout bounds how long `shim delete` waits for a Keep it
// killed to be gone.
const processGoneTimeout = 5 * time.Second

// waitGone waits until pid has exited (it is a zombie or gone): the Keep of
// a dead shim is no child of ours to wait for.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !running(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running reports whether pid exists and has not exited.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// serving reports whether a shim server answers on the socket.
func serving(path string) bool {
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
