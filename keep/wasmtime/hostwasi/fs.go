//go:build linux

package hostwasi

import (
	"encoding/binary"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Confinement. Every path the workload gives is resolved by the kernel
// with openat2 relative to a directory descriptor it holds, with
// RESOLVE_BENEATH (no absolute paths, no ".." above the directory, no
// symbolic link leading out of it) and RESOLVE_NO_MAGICLINKS (no
// /proc/self/fd/N style links). Calls that have no openat2 form (mkdirat,
// unlinkat, renameat, fstatat, readlinkat) first open the parent directory
// that way and then act on a single path component that is neither "." nor
// "..": a name in a directory already checked to be inside the preopen.
// What openat2 refuses for leaving the directory (EXDEV) the workload sees
// as EPERM, as it does with wasmtime's own WASI (docs/files.md).

const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// oflags, lookupflags (witx).
const (
	oflagCreat    = 1
	oflagDir      = 2
	oflagExcl     = 4
	oflagTrunc    = 8
	oflagsAll     = 15
	lookupSymlink = 1
)

func openat2(dirFD int, path string, flags uint64) (int, errno) {
	if path == "" {
		return -1, eNoent
	}
	if strings.HasPrefix(path, "/") {
		return -1, ePerm
	}
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve}
	if flags&unix.O_CREAT != 0 {
		how.Mode = 0o666 // openat2 refuses a mode without O_CREAT
	}
	for {
		fd, err := unix.Openat2(dirFD, path, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.EXDEV {
			return -1, ePerm
		}
		if err != nil {
			return -1, errnoOf(err)
		}
		return fd, eSuccess
	}
}

// dirOf returns the directory entry fd names, for path calls.
func (w *WASI) dirOf(fd int32) (*entry, errno) {
	e := w.fds.get(fd)
	if e == nil {
		return nil, eBadf
	}
	if e.kind != kindDir {
		return nil, eNotDir
	}
	return e, eSuccess
}

// parent opens, beneath dir, the directory holding path's last component
// and returns it with that component, trailing slashes kept (the kernel
// then refuses what is not a directory, as with a whole path). The caller
// closes the descriptor. A last component ".." is never acted on: acting on
// it would act outside the directory the parent was checked to be. It is
// EPERM when it leaves dir, as leaving is; inside, parent answers dotdot,
// what the caller's operation gives on an existing directory.
func parent(dir *entry, path string, dotdot errno) (int, string, errno) {
	if path == "" {
		return -1, "", eNoent
	}
	if strings.HasPrefix(path, "/") {
		return -1, "", ePerm
	}
	trimmed := strings.TrimRight(path, "/")
	if trimmed == "" {
		return -1, "", ePerm
	}
	dirPart, base := ".", trimmed
	if i := strings.LastIndexByte(trimmed, '/'); i >= 0 {
		dirPart, base = trimmed[:i], trimmed[i+1:]
		if dirPart == "" {
			dirPart = "."
		}
	}
	if base == ".." {
		fd, e := openat2(dir.hostFD, trimmed, unix.O_PATH|unix.O_DIRECTORY)
		if e != eSuccess {
			return -1, "", e
		}
		unix.Close(fd)
		return -1, "", dotdot
	}
	fd, e := openat2(dir.hostFD, dirPart, unix.O_PATH|unix.O_DIRECTORY)
	return fd, base + path[len(trimmed):], e
}

// errDotDot is no errno: pathFilestatSetTimes asks parent for it, to take a
// final ".." as the directory it names.
const errDotDot errno = -1

func pathOpen(w *WASI, c *call) errno {
	lookup, oflags, rights, fdflags := c.u32(1), c.u32(4), c.u64(5), c.u32(7)
	if lookup&^lookupSymlink != 0 || oflags&^oflagsAll != 0 || rights&^rightsAll != 0 || c.u64(6)&^rightsAll != 0 || fdflags&^fdflagsAll != 0 {
		c.fail("path_open: invalid flags")
		return eInval
	}
	path := c.path(c.u32(2), c.u32(3))
	dir := w.fds.get(c.i32(0))
	switch {
	case dir == nil:
		return eBadf
	case dir.kind == kindFile:
		return eNotDir
	case dir.kind != kindDir:
		return eBadf
	}
	// Opened for reading and writing as the rights say, as wasmtime's
	// WASI does; without fd_write, for reading.
	write := rights&rightFdWrite != 0
	if dir.readOnly && (write || oflags&(oflagCreat|oflagTrunc) != 0) {
		return ePerm
	}
	var flags uint64
	switch {
	case write && rights&rightFdRead != 0:
		flags = unix.O_RDWR
	case write:
		flags = unix.O_WRONLY
	default:
		flags = unix.O_RDONLY
	}
	if oflags&oflagCreat != 0 {
		flags |= unix.O_CREAT
	}
	if oflags&oflagDir != 0 {
		flags |= unix.O_DIRECTORY
	}
	if oflags&oflagExcl != 0 {
		flags |= unix.O_EXCL
	}
	if oflags&oflagTrunc != 0 {
		flags |= unix.O_TRUNC
	}
	if fdflags&fdflagSync != 0 {
		flags |= unix.O_SYNC
	} else if fdflags&fdflagDsync != 0 {
		flags |= unix.O_DSYNC
	}
	if lookup&lookupSymlink == 0 {
		flags |= unix.O_NOFOLLOW
	}
	if e := checkOpenable(dir.hostFD, path, flags); e != eSuccess {
		return e
	}
	// Never block opening a FIFO, never become the controlling terminal.
	flags |= unix.O_NONBLOCK | unix.O_NOCTTY
	fd, e := openat2(dir.hostFD, path, flags)
	if e != eSuccess {
		return e
	}
	// Back to blocking: files do not support non-blocking I/O anyway.
	unix.SetNonblock(fd, false)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return errnoOf(err)
	}
	if !openable(st.Mode) { // replaced since checkOpenable looked
		unix.Close(fd)
		return eAcces
	}
	k := kindFile
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		k = kindDir
	}
	n := w.fds.add(&entry{kind: k, hostFD: fd, readOnly: dir.readOnly, root: dir.rootOf(),
		read: flags&unix.O_ACCMODE != unix.O_WRONLY, write: write,
		append: fdflags&fdflagAppend != 0, nonblock: fdflags&fdflagNonblock != 0})
	c.put32(c.u32(8), uint32(n))
	return eSuccess
}

// openable reports whether a file of mode may be opened through WASI: not a
// FIFO nor a socket file, which would be channels to other processes, not
// files (a container's devices are left to the kernel: its devices cgroup,
// and nodev on the image's files).
func openable(mode uint32) bool {
	t := mode & unix.S_IFMT
	return t != unix.S_IFIFO && t != unix.S_IFSOCK
}

// checkOpenable looks at what path names, without opening it, and refuses
// what openable refuses: EACCES. A path that does not exist yet is left to
// the open that follows.
func checkOpenable(dirFD int, path string, flags uint64) errno {
	fd, e := openat2(dirFD, path, unix.O_PATH|flags&unix.O_NOFOLLOW)
	if e != eSuccess {
		return eSuccess
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err)
	}
	if !openable(st.Mode) {
		return eAcces
	}
	return eSuccess
}

// rootOf is the preopen e was opened under (e itself for a preopen).
func (e *entry) rootOf() *entry {
	if e.root != nil {
		return e.root
	}
	return e
}

// putFilestat writes st as a filestat; the device is 1, as wasmtime's
// WASI has it (the inode tells files apart).
func putFilestat(c *call, p uint32, st *unix.Stat_t) {
	b := c.bytes(p, 64)
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], 1)
	binary.LittleEndian.PutUint64(b[8:], st.Ino)
	b[16] = modeType(st.Mode)
	binary.LittleEndian.PutUint64(b[24:], uint64(st.Nlink))
	binary.LittleEndian.PutUint64(b[32:], uint64(st.Size))
	binary.LittleEndian.PutUint64(b[40:], uint64(st.Atim.Nano()))
	binary.LittleEndian.PutUint64(b[48:], uint64(st.Mtim.Nano()))
	binary.LittleEndian.PutUint64(b[56:], uint64(st.Ctim.Nano()))
}

func fdFilestatGet(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	switch {
	case e.kind == kindStdio:
		b := c.bytes(c.u32(1), 64)
		clear(b)
		b[16] = e.stdioType()
		return eSuccess
	case e.acceptor != nil, e.stream != nil:
		// No host descriptor of its own: a stream socket, nothing else known.
		b := c.bytes(c.u32(1), 64)
		clear(b)
		b[16] = fileSocket
		return eSuccess
	}
	var st unix.Stat_t
	if err := unix.Fstat(e.hostFD, &st); err != nil {
		return errnoOf(err)
	}
	putFilestat(c, c.u32(1), &st)
	return eSuccess
}

func pathFilestatGet(w *WASI, c *call) errno {
	lookup := c.u32(1)
	if lookup&^lookupSymlink != 0 {
		c.fail("path_filestat_get: invalid lookupflags %#x", lookup)
		return eInval
	}
	dir, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	path := c.path(c.u32(2), c.u32(3))
	if lookup&lookupSymlink == 0 {
		// Not following, wasmtime's WASI looks at the name itself: a
		// trailing slash is dropped.
		if t := strings.TrimRight(path, "/"); t != "" {
			path = t
		}
	}
	fd, e := openPath(dir, path, lookup&lookupSymlink != 0)
	if e != eSuccess {
		return e
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err)
	}
	putFilestat(c, c.u32(4), &st)
	return eSuccess
}

// openPath opens path beneath dir as O_PATH, following a final symbolic
// link when follow is set; without it a link is opened itself, so fstat
// gives the link's own status, as lstat would.
func openPath(dir *entry, path string, follow bool) (int, errno) {
	flags := uint64(unix.O_PATH)
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	return openat2(dir.hostFD, path, flags)
}

// seekable is the file open at fd: EBADF when fd is not open or is not a
// file, ESPIPE for stdio.
func (w *WASI) seekable(fd int32) (*entry, errno) {
	e := w.fds.get(fd)
	switch {
	case e == nil:
		return nil, eBadf
	case e.kind == kindStdio:
		return nil, eSpipe
	case e.kind != kindFile:
		return nil, eBadf
	}
	return e, eSuccess
}

// fdSeek moves the position, which may go past the end; a position that
// would be negative is EINVAL.
func fdSeek(w *WASI, c *call) errno {
	whence := c.u32(2)
	if whence > 2 {
		c.fail("fd_seek: invalid whence %d", whence)
		return eInval
	}
	e, bad := w.seekable(c.i32(0))
	if bad != eSuccess {
		return bad
	}
	off := int64(c.u64(1))
	var base int64
	switch whence {
	case 0:
		if off < 0 {
			return eInval
		}
	case 1:
		base = int64(e.pos)
	case 2:
		var st unix.Stat_t
		if err := unix.Fstat(e.hostFD, &st); err != nil {
			return errnoOf(err)
		}
		base = st.Size
	}
	pos := base + off
	if (off < 0 && pos > base) || (off > 0 && pos < base) || pos < 0 {
		return eInval
	}
	e.pos = uint64(pos)
	c.put64(c.u32(3), e.pos)
	return eSuccess
}

func fdTell(w *WASI, c *call) errno {
	e, bad := w.seekable(c.i32(0))
	if bad != eSuccess {
		return bad
	}
	c.put64(c.u32(1), e.pos)
	return eSuccess
}

func fdPread(w *WASI, c *call) errno {
	e, bad := w.seekable(c.i32(0))
	if bad != eSuccess {
		return bad
	}
	buf := c.firstBuffer(c.u32(1), c.u32(2))
	if len(buf) == 0 {
		return eIntr // an empty read, as wasmtime's WASI answers it
	}
	k, err := unix.Pread(e.hostFD, buf, int64(c.u64(3)))
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(4), uint32(k))
	return eSuccess
}

func fdPwrite(w *WASI, c *call) errno {
	e, bad := w.seekable(c.i32(0))
	if bad != eSuccess {
		return bad
	}
	k, en := e.writeAt(c.firstBuffer(c.u32(1), c.u32(2)), int64(c.u64(3)))
	if en != eSuccess {
		return en
	}
	c.put32(c.u32(4), uint32(k))
	return eSuccess
}

func fdSync(w *WASI, c *call) errno     { return syncFile(w, c, unix.Fsync) }
func fdDatasync(w *WASI, c *call) errno { return syncFile(w, c, unix.Fdatasync) }

// syncFile calls sync on the file open at the call's descriptor.
func syncFile(w *WASI, c *call, sync func(int) error) errno {
	e, bad := w.fileEntry(c.i32(0), eBadf)
	if bad != eSuccess {
		return bad
	}
	return errnoOf(sync(e.hostFD))
}

func fdAdvise(w *WASI, c *call) errno {
	advice := c.u32(3)
	if advice > 5 {
		c.fail("fd_advise: invalid advice %d", advice)
		return eInval
	}
	e, bad := w.fileEntry(c.i32(0), eBadf)
	if bad != eSuccess {
		return bad
	}
	// normal, sequential, random, willneed, dontneed, noreuse: Linux's
	// POSIX_FADV_* numbers in that order.
	if err := unix.Fadvise(e.hostFD, int64(c.u64(1)), int64(c.u64(2)), int(advice)); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

func fdAllocate(w *WASI, c *call) errno {
	if _, bad := w.fileEntry(c.i32(0), eBadf); bad != eSuccess {
		return bad
	}
	return eNotSup
}

func fdFilestatSetSize(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eBadf)
	if bad != eSuccess {
		return bad
	}
	// A file under a read-only preopen is open O_RDONLY: the kernel refuses.
	if err := unix.Ftruncate(e.hostFD, int64(c.u64(1))); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

// Fstflags (witx).
const (
	fstAtim    = 1
	fstAtimNow = 2
	fstMtim    = 4
	fstMtimNow = 8
)

// timespecs turns a call's (atim, mtim, fstflags) at k into utimensat's
// times: EINVAL for a time both given and "now".
func timespecs(c *call, k int) ([2]unix.Timespec, errno) {
	atim, mtim, flags := c.u64(k), c.u64(k+1), c.u32(k+2)
	var ts [2]unix.Timespec
	if flags&^15 != 0 {
		c.fail("invalid fstflags %#x", flags)
		return ts, eInval
	}
	for i, t := range []struct {
		set, now bool
		v        uint64
	}{{flags&fstAtim != 0, flags&fstAtimNow != 0, atim}, {flags&fstMtim != 0, flags&fstMtimNow != 0, mtim}} {
		switch {
		case t.set && t.now:
			return ts, eInval
		case t.set:
			ts[i] = unix.NsecToTimespec(int64(t.v))
		case t.now:
			ts[i] = unix.Timespec{Nsec: unix.UTIME_NOW}
		default:
			ts[i] = unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
	}
	return ts, eSuccess
}

func fdFilestatSetTimes(w *WASI, c *call) errno {
	ts, en := timespecs(c, 1)
	if en != eSuccess {
		return en
	}
	e := w.fds.get(c.i32(0))
	if e == nil || (e.kind != kindFile && e.kind != kindDir) {
		return eBadf
	}
	if e.readOnly {
		return ePerm
	}
	if e.preopen != "" {
		// An O_PATH descriptor: "." beneath it is the directory itself.
		return errnoOf(unix.UtimesNanoAt(e.hostFD, ".", ts[:], 0))
	}
	return futimens(e.hostFD, ts)
}

// futimens sets the times of the file open at fd (utimensat with a NULL
// path, which x/sys/unix does not offer).
func futimens(fd int, ts [2]unix.Timespec) errno {
	_, _, err := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if err != 0 {
		return errnoOf(err)
	}
	return eSuccess
}

func pathFilestatSetTimes(w *WASI, c *call) errno {
	lookup := c.u32(1)
	if lookup&^lookupSymlink != 0 {
		c.fail("path_filestat_set_times: invalid lookupflags %#x", lookup)
		return eInval
	}
	ts, en := timespecs(c, 4)
	if en != eSuccess {
		return en
	}
	dir, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	if dir.readOnly {
		return ePerm
	}
	path := c.path(c.u32(2), c.u32(3))
	if lookup&lookupSymlink == 0 {
		// The last component itself, link or not, in a parent resolved
		// beneath the directory. A trailing slash asks for a directory,
		// which the kernel would follow a link to: that is done beneath
		// the directory below.
		pfd, base, e := parent(dir, path, errDotDot)
		if e == eSuccess && strings.HasSuffix(base, "/") {
			unix.Close(pfd)
			e = errDotDot
		}
		if e == eSuccess {
			defer unix.Close(pfd)
			return errnoOf(unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW))
		}
		if e != errDotDot {
			return e
		}
		// A directory asked for: no link to not follow.
	}
	// Followed beneath the directory, then set through the open file.
	fd, e := openat2(dir.hostFD, path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if e == eAcces {
		fd, e = openat2(dir.hostFD, path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	}
	if e != eSuccess {
		return e
	}
	defer unix.Close(fd)
	return futimens(fd, ts)
}

// dirent is one directory entry as fd_readdir gives it.
type dirent struct {
	ino  uint64
	typ  uint8
	name string
}

// readDir lists the directory dirFD names, without "." and "..", in the
// order the kernel gives.
func readDir(dirFD int) ([]dirent, errno) {
	fd, err := unix.Openat(dirFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errnoOf(err)
	}
	defer unix.Close(fd)
	var out []dirent
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, errnoOf(err)
		}
		if n <= 0 {
			return out, eSuccess
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.LittleEndian.Uint16(b[16:]))
			name := b[19:reclen]
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if n := string(name); n != "." && n != ".." {
				out = append(out, dirent{ino: binary.LittleEndian.Uint64(b), typ: direntType(b[18]), name: n})
			}
			b = b[reclen:]
		}
	}
}

func direntType(t uint8) uint8 {
	switch t {
	case unix.DT_REG:
		return fileRegular
	case unix.DT_DIR:
		return fileDirectory
	case unix.DT_LNK:
		return fileSymlink
	case unix.DT_CHR:
		return fileCharDev
	case unix.DT_BLK:
		return fileBlockDev
	case unix.DT_SOCK:
		return fileSocket
	}
	return fileUnknown
}

// fdReaddir fills buf with entries from cookie on, as wasmtime's WASI
// does: "." and ".." first, then the directory as it is now (read again at
// every call), each a 24-byte header (next cookie u64, inode u64, name
// length u32, type u8) and the name. Cookies are positions in that list.
// What does not fit is cut, header included: bufused == buf_len tells the
// guest to read on.
func fdReaddir(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil || e.kind != kindDir {
		return eBadf
	}
	p, n, cookie := c.u32(1), c.u32(2), c.u64(3)
	list, err := readDir(e.hostFD)
	if err != eSuccess {
		return err
	}
	var self unix.Stat_t
	if err := unix.Fstat(e.hostFD, &self); err != nil {
		return errnoOf(err)
	}
	all := append([]dirent{{ino: self.Ino, typ: fileDirectory, name: "."}, {ino: self.Ino, typ: fileDirectory, name: ".."}}, list...)
	buf := c.bytes(p, n)
	used := 0
	for i := cookie; i < uint64(len(all)) && used < len(buf); i++ {
		d := all[i]
		var rec [24]byte
		binary.LittleEndian.PutUint64(rec[0:], i+1)
		binary.LittleEndian.PutUint64(rec[8:], d.ino)
		binary.LittleEndian.PutUint32(rec[16:], uint32(len(d.name)))
		rec[20] = d.typ
		used += copy(buf[used:], rec[:])
		used += copy(buf[used:], d.name)
	}
	c.put32(c.u32(4), uint32(used))
	return eSuccess
}

// writableDir is dirOf for calls that change the directory.
func (w *WASI) writableDir(fd int32) (*entry, errno) {
	dir, e := w.dirOf(fd)
	if e == eSuccess && dir.readOnly {
		return nil, ePerm
	}
	return dir, e
}

func pathCreateDirectory(w *WASI, c *call) errno {
	dir, e := w.writableDir(c.i32(0))
	if e != eSuccess {
		return e
	}
	pfd, base, e := parent(dir, c.path(c.u32(1), c.u32(2)), eExist)
	if e != eSuccess {
		return e
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o777); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

func unlink(w *WASI, c *call, flags int) errno {
	dir, e := w.writableDir(c.i32(0))
	if e != eSuccess {
		return e
	}
	path := c.path(c.u32(1), c.u32(2))
	if flags == unix.AT_REMOVEDIR && strings.HasSuffix(path, "/") {
		return eInval // as wasmtime's WASI answers
	}
	if flags == 0 && strings.HasSuffix(path, "/") {
		// A file named with a trailing slash: never one. What the path
		// is, followed beneath the directory, says which error.
		fd, e := openat2(dir.hostFD, path, unix.O_PATH)
		if e != eSuccess {
			return e
		}
		unix.Close(fd)
		return eIsDir
	}
	dotdot := eIsDir
	if flags == unix.AT_REMOVEDIR {
		dotdot = eInval
	}
	pfd, base, e := parent(dir, path, dotdot)
	if e != eSuccess {
		return e
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, base, flags); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

func pathUnlinkFile(w *WASI, c *call) errno      { return unlink(w, c, 0) }
func pathRemoveDirectory(w *WASI, c *call) errno { return unlink(w, c, unix.AT_REMOVEDIR) }

// pathRename renames within one preopen: moving between two preopens
// would let a workload move a file out of a read-only view's reach or
// across mounts, and WASI guests do not rely on it (EXDEV).
func pathRename(w *WASI, c *call) errno {
	from, e := w.writableDir(c.i32(0))
	if e != eSuccess {
		return e
	}
	to, e := w.writableDir(c.i32(3))
	if e != eSuccess {
		return e
	}
	if from.rootOf() != to.rootOf() {
		return eXdev
	}
	ofd, obase, e := parent(from, c.path(c.u32(1), c.u32(2)), eBusy)
	if e != eSuccess {
		return e
	}
	defer unix.Close(ofd)
	nfd, nbase, e := parent(to, c.path(c.u32(4), c.u32(5)), eBusy)
	if e != eSuccess {
		return e
	}
	defer unix.Close(nfd)
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

func pathReadlink(w *WASI, c *call) errno {
	dir, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	pfd, base, e := parent(dir, c.path(c.u32(1), c.u32(2)), eInval)
	if e != eSuccess {
		return e
	}
	defer unix.Close(pfd)
	buf := make([]byte, unix.PathMax)
	k, err := unix.Readlinkat(pfd, base, buf)
	if err != nil {
		return errnoOf(err)
	}
	target := buf[:k]
	if len(target) > 0 && target[0] == '/' {
		return ePerm // a target outside the directory, as wasmtime's WASI answers
	}
	n := copy(c.bytes(c.u32(3), c.u32(4)), target)
	c.put32(c.u32(5), uint32(n))
	return eSuccess
}

// pathLink makes a hard link within one preopen, of the source itself
// (a symbolic link stays one).
func pathLink(w *WASI, c *call) errno {
	lookup := c.u32(1)
	if lookup&^lookupSymlink != 0 {
		c.fail("path_link: invalid lookupflags %#x", lookup)
		return eInval
	}
	from, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	to, e := w.dirOf(c.i32(4))
	if e != eSuccess {
		return e
	}
	if from.readOnly || to.readOnly {
		return ePerm
	}
	if lookup&lookupSymlink != 0 {
		return eInval // wasmtime's WASI does not follow the source either
	}
	if from.rootOf() != to.rootOf() {
		return eXdev
	}
	ofd, obase, e := parent(from, c.path(c.u32(2), c.u32(3)), ePerm) // a directory
	if e != eSuccess {
		return e
	}
	defer unix.Close(ofd)
	nfd, nbase, e := parent(to, c.path(c.u32(5), c.u32(6)), eExist)
	if e != eSuccess {
		return e
	}
	defer unix.Close(nfd)
	return errnoOf(unix.Linkat(ofd, obase, nfd, nbase, 0))
}

// pathSymlink makes a symbolic link; its target is the guest's text, which
// is resolved beneath the directory whenever it is followed.
func pathSymlink(w *WASI, c *call) errno {
	target := c.path(c.u32(0), c.u32(1))
	dir, e := w.writableDir(c.i32(2))
	if e != eSuccess {
		return e
	}
	if strings.HasPrefix(target, "/") {
		return ePerm // it could never be followed beneath the directory
	}
	pfd, base, e := parent(dir, c.path(c.u32(3), c.u32(4)), eExist)
	if e != eSuccess {
		return e
	}
	defer unix.Close(pfd)
	return errnoOf(unix.Symlinkat(target, pfd, base))
}
