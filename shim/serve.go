package shim

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// orphanTimeout is how long a server waits for its first task before it
// concludes that containerd gave up on it.
const orphanTimeout = time.Minute

// listenerFD is the socket start passes to the server.
const listenerFD = 3

// serve is the long-running shim server.
func serve(ctx context.Context, f launcher.Flags) error {
	setLog(openLog("."))
	logrus.SetFormatter(&logrus.TextFormatter{DisableColors: true, TimestampFormat: log.RFC3339NanoFixed, FullTimestamp: true})
	setDebug(f.Debug)
	ctx = log.WithLogger(ctx, log.L.WithField("runtime", RuntimeName).WithField("namespace", f.Namespace))

	l, err := net.FileListener(os.NewFile(listenerFD, "shim-socket"))
	if err != nil {
		return fmt.Errorf("listener on fd %d: %w", listenerFD, err)
	}
	server, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(recoverPanic))
	if err != nil {
		return err
	}
	events := newPublisher(os.Getenv("TTRPC_ADDRESS"))
	d := &daemon{address: f.Address}
	done := make(chan struct{})
	exe, _ := os.Executable()
	lc := newServerState(f, exe)
	svc := newService(f.Namespace, events, d, lc.retire)
	svc.exe = keepExecutable()
	// stop runs when the server has nothing left to serve and does not
	// become the spare: containerd considers the shim gone once Shutdown
	// answers, so the server stops just after the answer.
	var once sync.Once
	lc.stop = func() { once.Do(func() { time.AfterFunc(10*time.Millisecond, func() { close(done) }) }) }
	lc.onSpare = func() {
		// Before Shutdown answers: nothing here may take long.
		svc.retired(ctx)
		log.G(ctx).Debug("the shim server is now the spare")
		setLog(io.Discard)
		_ = os.Chdir("/")
	}
	lc.onClaim = func(c launcher.Claim) {
		_ = os.Chdir(c.Bundle)
		setLog(openLog(c.Bundle))
		setDebug(c.Debug)
		svc.startAhead(ctx, c.ID, c.Bundle)
		log.G(ctx).WithField("id", c.ID).Debug("the spare shim server is claimed")
	}
	// The Keep starts now, beside the server's own start and containerd's
	// connection: Create hands it its config.
	if dir, err := os.Getwd(); err == nil {
		svc.startAhead(ctx, f.ID, dir)
	}
	register(server, svc)
	registerAttestation(server, svc)
	registerSpare(server, lc)

	// Signals to the shim itself end it only when it has nothing to do.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ctx, l) }()
	// While containerd connects and sends Create: the connection to
	// containerd for the labels (startAhead has decoded the bundle's spec,
	// which warms encoding/json's per-type caches for Create's).
	go d.Warm()
	// idle is the server's one timer: for its first task (orphanTimeout)
	// while it serves a group, to be claimed (SpareLinger) while it is the
	// spare; gone is closed when containerd goes while it is the spare.
	idle := time.NewTimer(orphanTimeout)
	defer idle.Stop()
	var gone <-chan struct{}
	unwatch := func() {}
	defer func() { unwatch() }()
	for {
		select {
		case <-done:
			return shutdown(ctx, svc, server, events, d)
		case err := <-serveErr:
			return fmt.Errorf("serve ttrpc: %w", err)
		case <-lc.changed:
			unwatch()
			gone, unwatch = nil, func() {}
			if lc.isSpare() {
				idle.Reset(launcher.SpareLinger)
				gone, unwatch = watchDaemon(os.Getenv("TTRPC_ADDRESS"))
			} else {
				idle.Reset(orphanTimeout)
			}
		case <-gone:
			gone = nil
			if lc.leave(true) {
				log.G(ctx).Debug("containerd is gone: the spare exits")
				return shutdown(ctx, svc, server, events, d)
			}
		case <-idle.C:
			if lc.isSpare() {
				if lc.leave(true) {
					log.G(ctx).Debug("the spare was not claimed: exiting")
					return shutdown(ctx, svc, server, events, d)
				}
				continue
			}
			if svc.everCreated() {
				continue
			}
			log.G(ctx).Warn("no task created: exiting")
			lc.leave(false)
			return shutdown(ctx, svc, server, events, d)
		case sig := <-signals:
			if svc.empty() {
				log.G(ctx).WithField("signal", sig).Info("exiting on signal")
				lc.leave(false)
				return shutdown(ctx, svc, server, events, d)
			}
			log.G(ctx).WithField("signal", sig).Warn("ignoring signal: tasks are still running")
		}
	}
}

// shutdown stops the server, whose socket is gone.
func shutdown(ctx context.Context, svc *service, server *ttrpc.Server, events *publisher, d *daemon) error {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	svc.discardKeeps(ctx)
	events.Close(tctx)
	_ = server.Shutdown(tctx)
	d.Close()
	return nil
}

// keepExecutable is the runtime binary that runs Keeps (keep.Binary): the
// one beside the shim's own executable (symbolic links resolved), as `make
// install` and the installer put it. Empty when the shim cannot tell where it
// is: host.Start then names the running executable, which cannot run Keeps,
// in its error.
func keepExecutable() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), keep.Binary)
}

// openLog opens the log FIFO of the bundle in dir, which containerd copies
// into its own log; without one, logs are discarded (stdout and stderr are
// /dev/null).
func openLog(dir string) io.Writer {
	fd, err := unix.Open(oci.Bundle{Dir: dir}.Log(), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return io.Discard
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return io.Discard
	}
	return os.NewFile(uintptr(fd), "log")
}

// logOut is where the server logs: the log FIFO of the bundle of the group
// it serves.
var logOut struct {
	sync.Mutex
	w io.Writer
}

// setLog makes w the server's log, closing the one before.
func setLog(w io.Writer) {
	logOut.Lock()
	defer logOut.Unlock()
	logrus.SetOutput(w)
	if c, ok := logOut.w.(io.Closer); ok {
		c.Close()
	}
	logOut.w = w
}

// setDebug sets the server's log level: debug, or info.
func setDebug(on bool) {
	if on {
		logrus.SetLevel(logrus.DebugLevel)
	} else {
		logrus.SetLevel(logrus.InfoLevel)
	}
}

// register serves the task service under the names of task API v3 (which
// containerd 2.x prefers) and v2 (containerd 1.6, 1.7): the two differ only
// in their package name, so one set of handlers decodes both.
func register(server *ttrpc.Server, svc taskapi.TTRPCTaskService) {
	desc := &ttrpc.ServiceDesc{Methods: taskMethods(svc)}
	server.RegisterService("containerd.task.v3.Task", desc)
	server.RegisterService("containerd.task.v2.Task", desc)
}

// taskMethods are the task API's handlers, by method name.
func taskMethods(svc taskapi.TTRPCTaskService) map[string]ttrpc.Method {
	return map[string]ttrpc.Method{
		"State":      method(svc.State),
		"Create":     method(svc.Create),
		"Start":      method(svc.Start),
		"Delete":     method(svc.Delete),
		"Pids":       method(svc.Pids),
		"Pause":      method(svc.Pause),
		"Resume":     method(svc.Resume),
		"Checkpoint": method(svc.Checkpoint),
		"Kill":       method(svc.Kill),
		"Exec":       method(svc.Exec),
		"ResizePty":  method(svc.ResizePty),
		"CloseIO":    method(svc.CloseIO),
		"Update":     method(svc.Update),
		"Wait":       method(svc.Wait),
		"Stats":      method(svc.Stats),
		"Connect":    method(svc.Connect),
		"Shutdown":   method(svc.Shutdown),
	}
}

// recoverPanic turns a panic in a handler into an error answer. Without it
// ttrpc lets the panic end the shim, and with it the supervision of every
// Keep it serves: their exits would be lost to containerd. The panic is a
// bug; its stack goes to the log.
func recoverPanic(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.G(ctx).WithField("method", info.FullMethod).WithField("panic", fmt.Sprint(r)).WithField("stack", string(debug.Stack())).
				Error("a task API call panicked: the shim goes on serving; please report this bug with this log")
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error in the enarx shim (a bug: please report it with the shim's log): %v", info.FullMethod, r)
		}
	}()
	return m(ctx, unmarshal)
}

func method[Req any, PReq interface{ *Req }, Resp any](h func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}
