// Package launcher is what containerd executes of the shim for every task,
// and waits for: `start`, which starts the shim server and tells containerd
// its address, `delete`, which containerd runs once the server is gone, and
// the flags -info and -v. The server itself (package shim) is another binary,
// ServerBinary, installed beside the launcher's.
//
// The launcher is kept small on purpose. Go initialises every package a
// binary links before main runs, and each page that touches costs a page
// fault, which on a small virtual machine costs 10 µs or more: the shim
// server's binary (ttrpc, gRPC for the containerd client, the Keep's
// configuration) takes twice the faults to start that the launcher does,
// and containerd executes the launcher twice per container. So the launcher
// links no ttrpc, gRPC, engine, TEE or cgroup code, and no generated protobuf
// package: it encodes and decodes its few messages with protowire (wire.go)
// (internal/layout checks it); a delete that finds something left to clean
// up, which the server normally did in Delete, executes the server binary's
// own delete.
package launcher

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/enarx/containerd-shim-enarx/oci/bundle"
	"github.com/enarx/containerd-shim-enarx/version"
)

// RuntimeName is the name users give containerd for this runtime.
const RuntimeName = "io.containerd.enarx.v1"

// ServerBinary is the shim server's binary, installed beside the launcher's
// (containerd-shim-enarx-v1): `start` executes it with ServeAction.
const ServerBinary = "enarx-shim"

// ServeAction is the internal action of the long-running shim server that
// `start` executes.
const ServeAction = "serve"

// AnnotationSandboxID names the pod sandbox a container belongs to
// (containerd's CRI plugin sets it): the containers of one pod share one
// shim server, as with containerd's runc shim.
const AnnotationSandboxID = "io.kubernetes.cri.sandbox-id"

// defaultSocketDir is where containerd's shims put their sockets unless the
// daemon says otherwise.
const defaultSocketDir = "/run/containerd/s"

// Flags are the command line containerd gives a shim.
type Flags struct {
	Namespace     string
	ID            string
	Address       string
	PublishBinary string
	Bundle        string
	Socket        string
	Debug         bool
	Info          bool
	Version       bool
	// Action is the first argument: start, delete or ServeAction.
	Action string
}

// ParseFlags parses a shim's command line.
func ParseFlags(args []string) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet("containerd-shim-enarx-v1", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.Namespace, "namespace", os.Getenv("NAMESPACE"), "containerd namespace")
	fs.StringVar(&f.ID, "id", "", "ID of the task")
	fs.StringVar(&f.Address, "address", os.Getenv("GRPC_ADDRESS"), "containerd gRPC address")
	fs.StringVar(&f.PublishBinary, "publish-binary", "", "containerd binary (unused: events go over ttrpc)")
	fs.StringVar(&f.Bundle, "bundle", "", "bundle path (delete)")
	fs.StringVar(&f.Socket, "socket", "", "socket path (serve)")
	fs.BoolVar(&f.Debug, "debug", false, "debug logging")
	fs.BoolVar(&f.Info, "info", false, "print runtime info as protobuf and exit")
	fs.BoolVar(&f.Version, "v", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.Action = fs.Arg(0)
	return f, nil
}

// Actions are what a shim binary does for containerd's actions; -v and
// -info are the same in every binary.
type Actions struct {
	// Start, Delete and Serve are start, delete and ServeAction; args
	// are the whole command line.
	Start  func(f Flags) error
	Delete func(f Flags, args []string) error
	Serve  func(f Flags, args []string) error
	// Usage is printed for an action that is none of those.
	Usage string
}

// Main does what containerd, or the launcher, asks a shim binary on the
// command line, args, and returns the process exit status.
func Main(args []string, a Actions) int {
	f, err := ParseFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-enarx-v1: %v\n", err)
		return 2
	}
	switch {
	case f.Version:
		PrintVersion(os.Stdout)
		return 0
	case f.Info:
		err = Info(os.Stdout)
	case f.Action == "start":
		err = a.Start(f)
	case f.Action == "delete":
		err = a.Delete(f, args)
	case f.Action == ServeAction:
		err = a.Serve(f, args)
	default:
		fmt.Fprintln(os.Stderr, a.Usage)
		return 2
	}
	if err != nil {
		// stderr of start and delete reaches containerd's log.
		fmt.Fprintf(os.Stderr, "containerd-shim-enarx-v1 %s: %v\n", f.Action, err)
		return 1
	}
	return 0
}

// Run is the launcher binary (containerd-shim-enarx-v1): it does what
// containerd asks on the command line and returns the process exit status.
// start starts the server binary beside it; delete answers, or becomes the
// server binary's delete; serve becomes the server.
func Run(args []string) int {
	return Main(args, Actions{
		Start: func(f Flags) error {
			server, err := ServerExecutable()
			if err != nil {
				return err
			}
			return Start(f, os.Stdin, os.Stdout, server)
		},
		Delete: func(f Flags, args []string) error { return Delete(f, os.Stdout, args, ServerExecutable) },
		Serve: func(_ Flags, args []string) error {
			server, err := ServerExecutable()
			if err != nil {
				return err
			}
			return execServer(server, args)
		},
		Usage: fmt.Sprintf("containerd-shim-enarx-v1: the containerd runtime shim for %s; containerd runs it (actions: start, delete; flags -info, -v)", RuntimeName),
	})
}

// PrintVersion prints the shim's version, for -v.
func PrintVersion(w io.Writer) {
	fmt.Fprintf(w, "containerd-shim-enarx-v1\n  Version: %s\n  Revision: %s\n  Runtime: %s\n", version.Version, version.Revision, RuntimeName)
}

// Info answers containerd 2.x's `shim -info` with a protobuf RuntimeInfo.
func Info(w io.Writer) error {
	_, err := w.Write(runtimeInfo(RuntimeName, version.Version, version.Revision))
	return err
}

// ServerExecutable is the shim server's binary: ServerBinary beside the
// running executable (symbolic links resolved), as `make install` and the
// installer put it.
func ServerExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	server := filepath.Join(filepath.Dir(exe), ServerBinary)
	if _, err := os.Stat(server); err != nil {
		return "", fmt.Errorf("the shim server %s is missing: it is installed beside %s (make install puts containerd-shim-enarx-v1, %s, enarx-keep and enarx in one directory): %w",
			server, exe, ServerBinary, err)
	}
	return server, nil
}

// ServerArgs are the arguments of the server of group id (a container or
// its pod) of namespace ns and daemon address, listening at socket.
func ServerArgs(ns, id, address, socket string, debug bool) []string {
	args := []string{"-namespace", ns, "-id", id, "-address", address, "-socket", socket}
	if debug {
		args = append(args, "-debug")
	}
	return append(args, ServeAction)
}

// execServer replaces the launcher with the server binary, same arguments,
// same standard streams.
func execServer(server string, args []string) error {
	argv := append([]string{server}, args...)
	if err := syscall.Exec(server, argv, os.Environ()); err != nil {
		return fmt.Errorf("execute the shim server %s: %w", server, err)
	}
	return nil
}

// bootstrap reads what containerd wrote on start's stdin. containerd 2.x
// sends BootstrapParams; 1.x sends nothing or an Any of runtime options,
// which can also parse as BootstrapParams, so as containerd itself does, the
// params count only when their ID and namespace are the command line's.
func bootstrap(f Flags, in io.Reader) (*bootstrapParams, error) {
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read bootstrap parameters: %w", err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	p, err := parseBootstrapParams(b)
	if err != nil || p.InstanceID != f.ID || p.Namespace != f.Namespace {
		return nil, nil
	}
	return p, nil
}

// SocketAddress is where the shim of (address, namespace, id) listens, as
// containerd's own shims compute it.
func SocketAddress(dir, address, ns, id string) string {
	d := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return fmt.Sprintf("unix://%s/%x", dir, d)
}

// SocketPath is the path of the unix socket at a shim's address (as in a
// bundle's "address" file: unix://PATH).
func SocketPath(addr string) string {
	return strings.TrimPrefix(addr, "unix://")
}

// GroupID is the ID whose shim serves a container with the given ID and
// spec annotations: its pod's sandbox ID when it has one, else the ID.
func GroupID(annotations map[string]string, id string) string {
	if g := annotations[AnnotationSandboxID]; g != "" {
		return g
	}
	return id
}

// Start starts the shim server, the binary server, for a task and tells
// containerd its address, in the dialect containerd spoke: a server
// already serving the task's group (its pod), else the spare server of the
// daemon and namespace when there is one (ClaimSpare), else a new one.
// Nothing else may reach stdout or stderr: containerd reads both.
func Start(f Flags, in io.Reader, out io.Writer, server string) error {
	params, err := bootstrap(f, in)
	if err != nil {
		return err
	}
	if f.ID == "" || f.Namespace == "" {
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
		if f.Address == "" {
			f.Address = params.ContainerdGrpcAddress
		}
	}
	// The containers of one pod share a shim, as with containerd's runc
	// shim: the socket is the pod sandbox's, and a shim already serving it
	// takes the container. start runs in the bundle.
	group := f.ID
	if annotations, err := bundle.LoadAnnotations("."); err == nil {
		group = GroupID(annotations, f.ID)
	}
	address := SocketAddress(dir, f.Address, f.Namespace, group)
	path := SocketPath(address)
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	bundleDir, _ := os.Getwd()
	l, err := listen(path, func() bool {
		c := Claim{ID: group, Bundle: bundleDir, Namespace: f.Namespace, Address: f.Address, Socket: path,
			Server: server, Revision: version.Revision, Debug: f.Debug}
		return ClaimSpare(SpareSocketPath(dir, f.Address, f.Namespace), c, claimTimeout) == nil
	})
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

	cmd := exec.Command(server, ServerArgs(f.Namespace, group, f.Address, path, f.Debug)...)
	cmd.Dir = bundleDir
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+ttrpcAddress, "GRPC_ADDRESS="+f.Address)
	cmd.ExtraFiles = []*os.File{lf}
	// A session of its own, and no pipes of containerd's: containerd reads
	// start's output to EOF.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(path)
		return fmt.Errorf("start shim server %s: %w", server, err)
	}
	_ = cmd.Process.Release()

	return answer(out, params, address)
}

// answer tells containerd the shim's address in the dialect it spoke, and
// records it in the bundle.
func answer(out io.Writer, params *bootstrapParams, address string) error {
	// containerd 1.x finds a live shim again after a restart through this file.
	if err := os.WriteFile(bundle.Bundle{Dir: "."}.Address(), []byte(address), 0o600); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	if params == nil {
		_, err := io.WriteString(out, address)
		return err
	}
	_, err := out.Write(bootstrapResult(address))
	return err
}

// errServing is listen's error when a live shim already listens on the
// socket, or a spare now does.
var errServing = errors.New("a shim already listens there")

// claimTimeout bounds how long start waits for a spare's answer.
const claimTimeout = time.Second

// listen creates the shim's socket. A stale socket nobody answers on is
// replaced; a live one means a shim already serves this task. Before it
// listens, claim may have the spare shim server take the path (it reports
// whether it did): then listen fails with errServing too.
func listen(path string, claim func() bool) (*net.UnixListener, error) {
	// One start at a time decides, for the sockets of its directory: a
	// socket another start has bound but not yet listened on refuses a
	// connection, and would be taken for a stale one and replaced, leaving
	// two servers for one group (many containers of a pod started at once).
	// A server that becomes the spare, or stops being it, takes the lock
	// too. It is held for a few system calls, or for serving's timeout when
	// a server does not answer.
	defer LockDir(filepath.Dir(path))()
	if _, err := os.Lstat(path); err == nil {
		if Serving(path, time.Second) {
			return nil, fmt.Errorf("%s: %w", path, errServing)
		}
		os.Remove(path)
	}
	if claim != nil && claim() {
		return nil, fmt.Errorf("%s: %w", path, errServing)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The server inherits the socket; start's copy must not unlink it.
	l.SetUnlinkOnClose(false)
	return l, nil
}

// Serving reports whether a shim server answers on the socket at path
// within timeout.
func Serving(path string, timeout time.Duration) bool {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// RemoveStaleSocket removes the socket the bundle's address file names
// when no shim server answers on it any more (`shim delete`).
func RemoveStaleSocket(b bundle.Bundle) {
	addr, err := os.ReadFile(b.Address())
	if err != nil {
		return
	}
	p := SocketPath(string(bytes.TrimSpace(addr)))
	// Under the lock: a spare claimed for a container of the same ID may
	// be moving its socket to this path.
	defer LockDir(filepath.Dir(p))()
	if !Serving(p, 200*time.Millisecond) {
		os.Remove(p)
	}
}

// Delete is `shim delete`, which containerd runs in the bundle after the
// shim server is gone, or crashed, to remove what the task left. After the
// server's own Delete, which records the bundle cleaned (bundle.MarkCleaned),
// nothing is left: Delete answers as the server binary's delete would, a
// task killed (137, as runc's shim answers) with no process. Anything else
// (a Keep perhaps running, a root filesystem still mounted, a cgroup) is
// the server binary's delete, which Delete becomes, with the same args
// (server finds that binary).
func Delete(f Flags, out io.Writer, args []string, server func() (string, error)) error {
	dir := f.Bundle
	if dir == "" {
		dir, _ = os.Getwd()
	}
	b := bundle.Bundle{Dir: dir}
	if !b.IsCleaned() {
		exe, err := server()
		if err != nil {
			return err
		}
		return execServer(exe, args)
	}
	RemoveStaleSocket(b)
	_, err := out.Write(DeleteResponse(0, 128+uint32(syscall.SIGKILL), time.Now()))
	return err
}
