package sockets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// nsThread runs functions on an OS thread that has entered a network
// namespace. Only socket() needs it: a socket belongs to the namespace of
// the thread that created it, and bind, listen, connect and all I/O later
// act in that namespace from any thread. A nil *nsThread runs functions on
// the caller's goroutine, in the process's own namespace.
type nsThread struct {
	calls chan func()
	// ns is the namespace, open; the Set owns it.
	ns *os.File
}

// enterNetNS starts the thread for netns, an Options.NetNS that is not "".
// Stop it with stop once every socket is created.
func enterNetNS(netns string) (*nsThread, error) {
	var target *os.File
	if netns != NewNetNS {
		f, err := os.Open(netns)
		if err != nil {
			return nil, fmt.Errorf("sockets: NetNS %q: %w: give the path of a network namespace, e.g. /var/run/netns/NAME or /proc/PID/ns/net", netns, err)
		}
		target = f
	}
	t := &nsThread{calls: make(chan func())}
	ready := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace and is never unlocked: when
		// this goroutine returns, the Go runtime ends the thread instead of
		// reusing it for other goroutines in the wrong namespace.
		runtime.LockOSThread()
		if err := t.enter(netns, target); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range t.calls {
			f()
		}
	}()
	if err := <-ready; err != nil {
		if target != nil {
			target.Close()
		}
		return nil, err
	}
	return t, nil
}

// OpenNetNS opens the network namespace netns, an Options.NetNS that is
// not "": the one at its path, or a new one with loopback up, as Open would
// open sockets in. A Keep without sockets enters it this way.
func OpenNetNS(netns string) (*os.File, error) {
	t, err := enterNetNS(netns)
	if err != nil {
		return nil, err
	}
	t.stop()
	return t.ns, nil
}

// enter moves the locked thread into target, or into a new namespace with
// loopback up, and sets t.ns.
func (t *nsThread) enter(netns string, target *os.File) error {
	if target != nil {
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			switch {
			case errors.Is(err, unix.EINVAL):
				return fmt.Errorf("sockets: NetNS %q is not a network namespace: %w: give the path of one, e.g. /var/run/netns/NAME or /proc/PID/ns/net", netns, err)
			case errors.Is(err, unix.EPERM):
				return fmt.Errorf("sockets: entering NetNS %q: %w: it needs CAP_SYS_ADMIN, run the shim as root", netns, err)
			}
			return fmt.Errorf("sockets: entering NetNS %q: %w", netns, err)
		}
		t.ns = target
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("sockets: creating a network namespace: %w: it needs CAP_SYS_ADMIN; run the shim as root, or set NetNS to \"\" or an existing namespace", err)
		}
		return fmt.Errorf("sockets: creating a network namespace: %w", err)
	}
	if err := LoopbackUp(); err != nil {
		return err
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("sockets: opening the new network namespace: %w", err)
	}
	t.ns = f
	return nil
}

// LoopbackUp brings up "lo" in the current thread's namespace, as a
// container runtime does; the kernel then gives it 127.0.0.1 and ::1.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sockets: bringing up lo in the new network namespace: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("sockets: bringing up lo in the new network namespace: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sockets: bringing up lo in the new network namespace: SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sockets: bringing up lo in the new network namespace: SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// do runs f in the namespace and returns when it has.
func (t *nsThread) do(f func()) {
	if t == nil {
		f()
		return
	}
	done := make(chan struct{})
	t.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// stop ends the thread; t.ns stays open.
func (t *nsThread) stop() {
	if t != nil {
		close(t.calls)
	}
}

// socket creates a close-on-exec socket in the namespace.
func (t *nsThread) socket(family, typ int) (int, error) {
	var fd int
	var err error
	t.do(func() { fd, err = unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0) })
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

// zoneIndex is the interface index of an IPv6 zone, as the namespace
// knows its interfaces.
func (t *nsThread) zoneIndex(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	var idx int
	var err error
	t.do(func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(zone); err == nil {
			idx = ifi.Index
		}
	})
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w: name an interface of the Keep's network namespace", zone, err)
	}
	return uint32(idx), nil
}

// sockaddr is ap as a socket address of its family.
func (t *nsThread) sockaddr(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	ip := ap.Addr()
	if ip.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Addr: ip.As4(), Port: int(ap.Port())}, nil
	}
	idx, err := t.zoneIndex(ip.Zone())
	if err != nil {
		return 0, nil, err
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Addr: ip.As16(), Port: int(ap.Port()), ZoneId: idx}, nil
}

// resolver resolves host names from inside the namespace: its queries go
// out over sockets created there. nil means the process's own resolver.
func (t *nsThread) resolver() *net.Resolver {
	if t == nil {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: t.dialDNS}
}

// dialDNS connects the resolver to a name server ("ip:port") from the
// namespace.
func (t *nsThread) dialDNS(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("sockets: name server %q: %w", address, err)
	}
	typ := unix.SOCK_STREAM
	if network == "udp" || network == "udp4" || network == "udp6" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := t.connect(ctx, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), typ)
	if err != nil {
		return nil, fmt.Errorf("sockets: name server %s: %w", address, err)
	}
	f := os.NewFile(uintptr(fd), "dns")
	defer f.Close()
	return net.FileConn(f)
}
