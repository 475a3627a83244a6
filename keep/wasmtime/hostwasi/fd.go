//go:build linux

package hostwasi

import (
	"errors"
	"io"

	"golang.org/x/sys/unix"
)

// WASI file types (filetype in the witx).
const (
	fileUnknown   = 0
	fileBlockDev  = 1
	fileCharDev   = 2
	fileDirectory = 3
	fileRegular   = 4
	fileSocket    = 6
	fileSymlink   = 7
)

// fdflags
const (
	fdflagAppend   = 1
	fdflagDsync    = 2
	fdflagNonblock = 4
	fdflagRsync    = 8
	fdflagSync     = 16
	fdflagsAll     = 31
)

// Rights (witx), as fd_fdstat_get reports them.
const (
	rightFdDatasync           = 1 << 0
	rightFdRead               = 1 << 1
	rightFdSeek               = 1 << 2
	rightFdFdstatSetFlags     = 1 << 3
	rightFdSync               = 1 << 4
	rightFdTell               = 1 << 5
	rightFdWrite              = 1 << 6
	rightFdAdvise             = 1 << 7
	rightFdAllocate           = 1 << 8
	rightPathCreateDirectory  = 1 << 9
	rightPathCreateFile       = 1 << 10
	rightPathLinkSource       = 1 << 11
	rightPathLinkTarget       = 1 << 12
	rightPathOpen             = 1 << 13
	rightFdReaddir            = 1 << 14
	rightPathReadlink         = 1 << 15
	rightPathRenameSource     = 1 << 16
	rightPathRenameTarget     = 1 << 17
	rightPathFilestatGet      = 1 << 18
	rightPathFilestatSetSize  = 1 << 19
	rightPathFilestatSetTimes = 1 << 20
	rightFdFilestatGet        = 1 << 21
	rightFdFilestatSetSize    = 1 << 22
	rightFdFilestatSetTimes   = 1 << 23
	rightPathSymlink          = 1 << 24
	rightPathRemoveDirectory  = 1 << 25
	rightPathUnlinkFile       = 1 << 26
	rightPollFdReadwrite      = 1 << 27
	rightsAll                 = 1<<30 - 1

	// A preopen's rights, as wasmtime's WASI states them whatever the
	// preopen allows (its own checks decide).
	rightsPreopen = rightPathCreateDirectory | rightPathCreateFile | rightPathLinkSource |
		rightPathLinkTarget | rightPathOpen | rightFdReaddir | rightPathReadlink |
		rightPathRenameSource | rightPathRenameTarget | rightPathSymlink |
		rightPathRemoveDirectory | rightPathUnlinkFile | rightPathFilestatGet |
		rightPathFilestatSetTimes | rightFdFilestatGet | rightFdFilestatSetTimes
	rightsPreopenInheriting = rightsPreopen | rightFdDatasync | rightFdRead | rightFdSeek |
		rightFdFdstatSetFlags | rightFdSync | rightFdTell | rightFdWrite | rightFdAdvise |
		rightFdAllocate | rightFdFilestatGet | rightFdFilestatSetSize | rightFdFilestatSetTimes |
		rightPollFdReadwrite
)

func fdClose(w *WASI, c *call) errno {
	e := w.fds.remove(c.i32(0))
	if e == nil {
		return eBadf
	}
	e.close()
	return eSuccess
}

func fdRenumber(w *WASI, c *call) errno {
	return w.fds.renumber(c.i32(0), c.i32(1))
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
		return fileBlockDev
	case unix.S_IFSOCK:
		return fileSocket
	case unix.S_IFLNK:
		return fileSymlink
	}
	return fileUnknown
}

// stdioType is what stdio reports as its type: a character device when it
// is a terminal, else unknown (wasmtime's WASI sees streams, not files).
func (e *entry) stdioType() uint8 {
	if e.tty {
		return fileCharDev
	}
	return fileUnknown
}

// fdFdstatGet: filetype, fdflags, then the rights, as wasmtime's WASI
// computes them: fixed sets for stdio and preopens, and for what path_open
// gave, every right but those its type or its opening (read, write)
// exclude. Rights are not checked per call; what a descriptor was opened
// for is.
func fdFdstatGet(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	var typ uint8
	var flags uint16
	var base, inheriting uint64
	switch e.kind {
	case kindStdio:
		typ, base = e.stdioType(), rightFdWrite
		if e.stdio == 0 {
			base = rightFdRead
		}
		inheriting = base
	case kindDir:
		if e.preopen != "" {
			typ, base, inheriting = fileDirectory, rightsPreopen, rightsPreopenInheriting
			break
		}
		typ, base = fileDirectory, rightsAll&^(rightFdSeek|rightFdFilestatSetSize|rightPathFilestatSetSize)
		if !e.read {
			base &^= rightFdRead | rightFdReaddir
		}
		base &^= rightFdWrite
		inheriting = base
	case kindListener, kindConn:
		typ, base, inheriting = fileSocket, rightsAll, rightsAll
		flags = fdflagNonblock
	default:
		var st unix.Stat_t
		if err := unix.Fstat(e.hostFD, &st); err != nil {
			return errnoOf(err)
		}
		typ, base = modeType(st.Mode), rightsAll
		if !e.read {
			base &^= rightFdRead | rightFdReaddir
		}
		if !e.write {
			base &^= rightFdWrite
		}
		inheriting = base
		if e.append {
			flags |= fdflagAppend
		}
		if e.nonblock {
			flags |= fdflagNonblock
		}
		if fl, err := unix.FcntlInt(uintptr(e.hostFD), unix.F_GETFL, 0); err == nil {
			if fl&unix.O_SYNC == unix.O_SYNC {
				flags |= fdflagSync
			} else if fl&unix.O_DSYNC != 0 {
				flags |= fdflagDsync
			}
		}
	}
	p := c.u32(1)
	b := c.bytes(p, 24)
	clear(b)
	b[0] = typ
	b[2], b[3] = byte(flags), byte(flags>>8)
	c.put64(p+8, base)
	c.put64(p+16, inheriting)
	return eSuccess
}

// fdFdstatSetFlags changes append and nonblock of a file (others are
// EINVAL); on a socket nonblock only.
func fdFdstatSetFlags(w *WASI, c *call) errno {
	flags := c.u32(1)
	if flags&^fdflagsAll != 0 {
		c.fail("fd_fdstat_set_flags: invalid fdflags %#x", flags)
		return eInval
	}
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	switch e.kind {
	case kindFile:
		if flags&(fdflagDsync|fdflagSync|fdflagRsync) != 0 {
			return eInval
		}
		e.append = flags&fdflagAppend != 0
	case kindListener, kindConn:
		// Sockets stay non-blocking on the host whatever the guest asks:
		// a blocking read would block the whole instance and the
		// interrupt. The guest's choice only changes what it is told.
	default:
		return eBadf
	}
	e.nonblock = flags&fdflagNonblock != 0
	return eSuccess
}

func fdFdstatSetRights(w *WASI, c *call) errno {
	if c.u64(1)&^rightsAll != 0 || c.u64(2)&^rightsAll != 0 {
		c.fail("fd_fdstat_set_rights: invalid rights")
		return eInval
	}
	e := w.fds.get(c.i32(0))
	if e == nil || (e.kind != kindFile && e.kind != kindDir) {
		return eBadf
	}
	return eNotSup
}

// firstBuffer is the first non-empty buffer of an iovec array, as
// wasmtime's WASI reads and writes files and stdio: one buffer per call.
func (c *call) firstBuffer(p, n uint32) []byte {
	for i := uint32(0); i < n; i++ {
		b, l := c.get32(p+8*i), c.get32(p+8*i+4)
		if l != 0 {
			return c.bytes(b, l)
		}
	}
	return nil
}

func fdRead(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	var total int
	switch e.kind {
	case kindStdio:
		if e.stdio != 0 {
			return eBadf
		}
		buf := c.firstBuffer(c.u32(1), c.u32(2))
		if len(buf) > 0 {
			k, err := e.file.Read(buf)
			if k == 0 && err != nil && !errors.Is(err, io.EOF) {
				return errnoOf(err)
			}
			total = k
		}
	case kindFile:
		buf := c.firstBuffer(c.u32(1), c.u32(2))
		k, err := unix.Pread(e.hostFD, buf, int64(e.pos))
		if err != nil {
			return errnoOf(err)
		}
		e.pos += uint64(k)
		total = k
	case kindConn:
		k, err := e.recv(c.iovecs(c.u32(1), c.u32(2)), 0)
		if err != nil {
			return errnoOf(err)
		}
		total = k
	default:
		return eBadf
	}
	c.put32(c.u32(3), uint32(total))
	return eSuccess
}

func fdWrite(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	var total int
	switch e.kind {
	case kindStdio:
		if e.stdio == 0 {
			return eBadf
		}
		buf := c.firstBuffer(c.u32(1), c.u32(2))
		for total < len(buf) {
			k, err := e.file.Write(buf[total:])
			total += k
			if err != nil {
				if total == 0 {
					return errnoOf(err)
				}
				break
			}
		}
	case kindFile:
		k, err := e.writeAt(c.firstBuffer(c.u32(1), c.u32(2)), -1)
		if err != eSuccess {
			return err
		}
		total = k
	case kindConn:
		k, err := e.send(c.iovecs(c.u32(1), c.u32(2)), 0)
		if err != nil {
			return errnoOf(err)
		}
		total = k
	default:
		return eBadf
	}
	c.put32(c.u32(3), uint32(total))
	return eSuccess
}

// writeAt writes buf to a file: at off, or at the position when off is -1
// (which it then advances), or at the end in append mode, wherever off
// says (as Linux's pwrite does on an O_APPEND file).
func (e *entry) writeAt(buf []byte, off int64) (int, errno) {
	if !e.write {
		return 0, eBadf
	}
	var k int
	var err error
	switch {
	case e.append:
		k, err = unix.Pwritev2(e.hostFD, [][]byte{buf}, -1, unix.RWF_APPEND)
	case off < 0:
		k, err = unix.Pwrite(e.hostFD, buf, int64(e.pos))
	default:
		k, err = unix.Pwrite(e.hostFD, buf, off)
	}
	if err != nil {
		return 0, errnoOf(err)
	}
	if off < 0 {
		if e.append {
			var st unix.Stat_t
			if err := unix.Fstat(e.hostFD, &st); err != nil {
				return 0, errnoOf(err)
			}
			e.pos = uint64(st.Size)
		} else {
			e.pos += uint64(k)
		}
	}
	return k, eSuccess
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
	if e == nil {
		return eBadf
	}
	if e.preopen == "" {
		return eNotDir
	}
	if int(c.u32(2)) < len(e.preopen) {
		return eNameTooLong
	}
	copy(c.bytes(c.u32(1), uint32(len(e.preopen))), e.preopen)
	return eSuccess
}
