//go:build linux

package hostwasi

import (
	"golang.org/x/sys/unix"
)

// WASI file types (filetype in the witx).
const (
	fileUnknown   = 0
	fileCharDev   = 2
	fileDirectory = 3
	fileRegular   = 4
	fileSocket    = 6
	fileSymlink   = 7
)

// fdflags
const (
	fdflagAppend   = 1
	fdflagNonblock = 4
)

func fdClose(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.preopen != "" {
		return eNotSup // a preopen stays: the guest cannot get it back
	}
	w.fds.remove(c.i32(0)).close()
	return eSuccess
}

func (e *entry) filetype() uint8 {
	switch e.kind {
	case kindStdio:
		return fileCharDev
	case kindDir:
		return fileDirectory
	case kindListener, kindConn:
		return fileSocket
	}
	var st unix.Stat_t
	if unix.Fstat(e.hostFD, &st) != nil {
		return fileUnknown
	}
	return modeType(st.Mode)
}

func modeType(m uint32) uint8 {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return fileRegular
	case unix.S_IFDIR:
		return fileDirectory
	case unix.S_IFCHR:
		return fileCharDev
	case unix.S_IFBLK:
		return 1
	case unix.S_IFSOCK:
		return fileSocket
	case unix.S_IFLNK:
		return fileSymlink
	}
	return fileUnknown
}

// fdFdstatGet: filetype, fdflags, then the rights. Rights are not
// enforced per descriptor (preview 1 guests ignore them); read-only
// preopens are enforced in path_open instead, and the rights reported
// are all ones.
func fdFdstatGet(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	p := c.u32(1)
	b := c.bytes(p, 24)
	clear(b)
	b[0] = e.filetype()
	var flags uint16
	if e.append {
		flags |= fdflagAppend
	}
	if e.nonblock || e.kind == kindListener || e.kind == kindConn {
		flags |= fdflagNonblock
	}
	b[2], b[3] = byte(flags), byte(flags>>8)
	c.put64(p+8, ^uint64(0))
	c.put64(p+16, ^uint64(0))
	return eSuccess
}

func fdFdstatSetFlags(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	flags := c.u32(1)
	// Sockets are non-blocking on the host whatever the guest asks: a
	// blocking read would block the whole instance and the interrupt.
	e.nonblock = flags&fdflagNonblock != 0
	if e.kind == kindFile {
		e.append = flags&fdflagAppend != 0
		fl, err := unix.FcntlInt(uintptr(e.hostFD), unix.F_GETFL, 0)
		if err != nil {
			return errnoOf(err)
		}
		fl &^= unix.O_APPEND
		if e.append {
			fl |= unix.O_APPEND
		}
		if _, err := unix.FcntlInt(uintptr(e.hostFD), unix.F_SETFL, fl); err != nil {
			return errnoOf(err)
		}
	}
	return eSuccess
}

func fdRead(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	bufs := c.iovecs(c.u32(1), c.u32(2))
	var total int
	switch e.kind {
	case kindStdio:
		for _, b := range bufs {
			k, err := e.file.Read(b)
			total += k
			if err != nil || k < len(b) {
				break
			}
		}
	case kindDir:
		return eIsDir
	case kindListener:
		return eNotSup
	default:
		k, err := unix.Readv(e.hostFD, bufs)
		if err != nil {
			return errnoOf(err)
		}
		total = k
	}
	c.put32(c.u32(3), uint32(total))
	return eSuccess
}

func fdWrite(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	bufs := c.iovecs(c.u32(1), c.u32(2))
	var total int
	switch e.kind {
	case kindStdio:
		for _, b := range bufs {
			k, err := e.file.Write(b)
			total += k
			if err != nil {
				if total == 0 {
					return errnoOf(err)
				}
				break
			}
		}
	case kindDir:
		return eIsDir
	case kindListener:
		return eNotSup
	default:
		k, err := unix.Writev(e.hostFD, bufs)
		if err != nil {
			return errnoOf(err)
		}
		total = k
	}
	c.put32(c.u32(3), uint32(total))
	return eSuccess
}

// fdPrestatGet answers for preopened directories only; any other
// descriptor answers EBADF, as wasmtime's WASI does. Guests find their
// preopens by probing upward from 3 until EBADF: wasi-libc exits (EX_OSERR)
// on any other error, Go's runtime skips ENOTDIR. So preopens come first,
// contiguous from 3, and the first socket ends the probe for both.
func fdPrestatGet(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil || e.preopen == "" {
		return eBadf
	}
	p := c.u32(1)
	clear(c.bytes(p, 8))
	c.put32(p+4, uint32(len(e.preopen)))
	return eSuccess
}

func fdPrestatDirName(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil || e.preopen == "" {
		return eBadf
	}
	n := c.u32(2)
	if int(n) < len(e.preopen) {
		return eNameTooLong
	}
	copy(c.bytes(c.u32(1), n), e.preopen)
	return eSuccess
}
