package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/keep/proc"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
	"github.com/enarx/containerd-shim-enarx/version"
)

// serverState is where a shim server listens and whether it serves a group
// (a container, or a pod) or is the spare of its daemon and namespace
// (launcher.SpareSocketPath): when Shutdown finds its last task deleted, a
// server moves its socket to the spare's path, when no other server is the
// spare, and waits there up to launcher.SpareLinger for a start to claim
// it (launcher.ClaimSpare), which moves the socket to the claiming
// group's path. Either move is a rename of the socket's path, under the
// lock of the socket directory that start takes too, so a start finds a
// server, the spare, or neither, never one on its way out. The listener
// itself stays open throughout.
type serverState struct {
	ns, address string
	// dir is the socket directory, whose lock every move is made under
	// (every path the socket takes is in it), and sparePath the spare's
	// socket path; both "" when the server was given no socket path (then
	// it exits when it has nothing to serve).
	dir, sparePath string
	// server is this server's executable, which a claim must name.
	server string

	// onSpare is called once the server is the spare, onClaim once it is
	// claimed (with the serverState's lock held: both must not call back).
	onSpare func()
	onClaim func(launcher.Claim)
	// stop ends the server (its socket already gone); it must return at
	// once.
	stop func()
	// title sets the server's command line (proc.SetCmdline): a spare's names
	// no container, a claimed server's its group.
	title func(args []string) error

	mu sync.Mutex
	// socket is the path the listener is reachable at; "" once unlinked.
	socket string
	spare  bool
	// changed receives after every move, for the serve loop's timers.
	changed chan struct{}
}

// staleCheckTimeout bounds how long retire waits for a spare to answer
// before it takes the spare's socket for a dead one's.
const staleCheckTimeout = 200 * time.Millisecond

func newServerState(f launcher.Flags, server string) *serverState {
	lc := &serverState{ns: f.Namespace, address: f.Address, server: server, socket: f.Socket, changed: make(chan struct{}, 1), title: proc.SetCmdline}
	if f.Socket != "" {
		lc.dir = filepath.Dir(f.Socket)
		lc.sparePath = launcher.SpareSocketPath(lc.dir, f.Address, f.Namespace)
	}
	return lc
}

// retire is Shutdown's when the server has no task left: the server
// becomes the spare, or stops. containerd considers the shim gone once
// Shutdown answers and may start a new one for the same group at once, so
// the group's path is free before retire returns.
func (lc *serverState) retire() {
	defer lc.lockDir()()
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.spare {
		return
	}
	// A spare whose command line would still name the container it served
	// would look like what is left of it: without a new one, no spare.
	if lc.socket != "" && lc.sparePath != "" && lc.server != "" && !launcher.ExecutableDeleted() &&
		lc.title([]string{lc.server, "-address", lc.address, "-socket", lc.sparePath, "spare"}) == nil {
		// RENAME_NOREPLACE: another server may be the spare already. A
		// socket nobody answers on is a spare that was killed: it goes.
		err := unix.Renameat2(unix.AT_FDCWD, lc.socket, unix.AT_FDCWD, lc.sparePath, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EEXIST) && !launcher.Serving(lc.sparePath, staleCheckTimeout) {
			os.Remove(lc.sparePath)
			err = unix.Renameat2(unix.AT_FDCWD, lc.socket, unix.AT_FDCWD, lc.sparePath, unix.RENAME_NOREPLACE)
		}
		if err == nil {
			lc.socket, lc.spare = lc.sparePath, true
			lc.onSpare()
			lc.notify()
			return
		}
	}
	lc.unlinkLocked()
	lc.stop()
}

// claim makes the spare serve c, or says why it does not.
func (lc *serverState) claim(c launcher.Claim) error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	// The claiming start holds the socket directory's lock.
	switch {
	case !lc.spare:
		return fmt.Errorf("this shim server is not the spare: %w", errdefs.ErrFailedPrecondition)
	case c.Namespace != lc.ns || c.Address != lc.address:
		return fmt.Errorf("this spare serves namespace %q of %s, not %q of %s: %w", lc.ns, lc.address, c.Namespace, c.Address, errdefs.ErrInvalidArgument)
	case c.ID == "" || !filepath.IsAbs(c.Bundle) || filepath.Dir(c.Socket) != lc.dir || c.Socket == lc.sparePath:
		return fmt.Errorf("claim of %q: a group, an absolute bundle path and a socket beside the spare's are needed: %w", c.ID, errdefs.ErrInvalidArgument)
	case c.Server != lc.server || c.Revision != version.Revision || launcher.ExecutableDeleted():
		// An older build lingers after an upgrade: it leaves at once.
		lc.unlinkLocked()
		lc.stop()
		return fmt.Errorf("this spare is %s at revision %s, not %s at %s: %w", lc.server, version.Revision, c.Server, c.Revision, errdefs.ErrFailedPrecondition)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, lc.socket, unix.AT_FDCWD, c.Socket, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("move the spare's socket to %s: %w", c.Socket, err)
	}
	lc.socket, lc.spare = c.Socket, false
	if err := lc.title(append([]string{lc.server}, launcher.ServerArgs(lc.ns, c.ID, lc.address, c.Socket, c.Debug)...)); err != nil {
		// It had one as the spare: this is not expected.
		log.L.WithError(err).Warn("the claimed shim server's command line still says spare")
	}
	lc.onClaim(c)
	lc.notify()
	return nil
}

// leave unlinks the server's socket, under the socket directory's lock,
// unless it has been claimed (spareOnly and no longer the spare): it
// reports whether the server is to exit.
func (lc *serverState) leave(spareOnly bool) bool {
	defer lc.lockDir()()
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if spareOnly && !lc.spare {
		return false
	}
	lc.unlinkLocked()
	return true
}

// lockDir takes the socket directory's lock (launcher.LockDir), before
// the serverState's own; a claim comes with it held by the claiming start.
func (lc *serverState) lockDir() (unlock func()) {
	if lc.dir == "" {
		return func() {}
	}
	return launcher.LockDir(lc.dir)
}

// isSpare reports whether the server is the spare.
func (lc *serverState) isSpare() bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.spare
}

func (lc *serverState) unlinkLocked() {
	if lc.socket != "" {
		os.Remove(lc.socket)
		lc.socket = ""
	}
}

func (lc *serverState) notify() {
	select {
	case lc.changed <- struct{}{}:
	default:
	}
}

// registerSpare serves the spare's claim (launcher.SpareService).
func registerSpare(server *ttrpc.Server, lc *serverState) {
	server.RegisterService(launcher.SpareService, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		launcher.ClaimMethod: method(func(ctx context.Context, r *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
			var c launcher.Claim
			if err := json.Unmarshal(r.GetValue(), &c); err != nil {
				return nil, toGRPC(fmt.Errorf("claim: %w: %w", err, errdefs.ErrInvalidArgument))
			}
			if err := lc.claim(c); err != nil {
				return nil, toGRPC(err)
			}
			return &wrapperspb.BytesValue{}, nil
		}),
	}})
}

// watchDaemon returns a channel closed when the daemon whose ttrpc socket
// is at address goes away (its connection ends), or cannot be reached; a
// spare has no reason to outlive its daemon. stop ends the watch.
func watchDaemon(address string) (gone <-chan struct{}, stop func()) {
	c := make(chan struct{})
	conn, err := net.Dial("unix", strings.TrimPrefix(address, "unix://"))
	if err != nil {
		close(c)
		return c, func() {}
	}
	go func() {
		defer close(c)
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return c, func() { once.Do(func() { conn.Close() }) }
}
