//go:build linux

package hostwasi

import "golang.org/x/sys/unix"

func sockAccept(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindListener {
		return eNotSup
	}
	nfd, _, err := unix.Accept4(e.hostFD, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return errnoOf(err)
	}
	unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // fails harmlessly on unix sockets
	g := w.fds.add(&entry{kind: kindConn, hostFD: nfd, nonblock: c.u32(1)&fdflagNonblock != 0})
	c.put32(c.u32(2), uint32(g))
	return eSuccess
}

func sockShutdown(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindConn {
		return eNotSup
	}
	var how int
	switch c.u32(1) {
	case 1: // RD
		how = unix.SHUT_RD
	case 2: // WR
		how = unix.SHUT_WR
	case 3:
		how = unix.SHUT_RDWR
	default:
		return eInval
	}
	if err := unix.Shutdown(e.hostFD, how); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}
