//go:build linux

package hostwasi

import (
	"encoding/binary"
	"strings"

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

// Rights, oflags, lookupflags (witx).
const (
	rightFdRead   = 1 << 1
	rightFdWrite  = 1 << 6
	oflagCreat    = 1
	oflagDir      = 2
	oflagExcl     = 4
	oflagTrunc    = 8
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
// and returns it with that component. The caller closes the descriptor. A
// last component "." or ".." is EINVAL: no call needs it, and acting on it
// would act on the directory itself or on its parent.
func parent(dir *entry, path string) (int, string, errno) {
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
	if base == "." || base == ".." {
		return -1, "", eInval
	}
	fd, e := openat2(dir.hostFD, dirPart, unix.O_PATH|unix.O_DIRECTORY)
	return fd, base, e
}

func pathOpen(w *WASI, c *call) errno {
	dir, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	lookup, path := c.u32(1), c.path(c.u32(2), c.u32(3))
	oflags, rights, fdflags := c.u32(4), c.u64(5), c.u32(7)
	write := rights&rightFdWrite != 0 || oflags&(oflagCreat|oflagTrunc) != 0 || fdflags&fdflagAppend != 0
	if write && dir.readOnly {
		return eRofs
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
	if fdflags&fdflagAppend != 0 {
		flags |= unix.O_APPEND
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

func putFilestat(c *call, p uint32, st *unix.Stat_t) {
	b := c.bytes(p, 64)
	clear(b)
	binary.LittleEndian.PutUint64(b[0:], st.Dev)
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
	if e.acceptor != nil {
		// No host descriptor of its own: a stream socket, nothing else known.
		b := c.bytes(c.u32(1), 64)
		clear(b)
		b[16] = fileSocket
		return eSuccess
	}
	fd := e.hostFD
	if e.kind == kindStdio {
		fd = e.stdioFD
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err)
	}
	putFilestat(c, c.u32(1), &st)
	return eSuccess
}

func pathFilestatGet(w *WASI, c *call) errno {
	dir, e := w.dirOf(c.i32(0))
	if e != eSuccess {
		return e
	}
	flags := uint64(unix.O_PATH)
	if c.u32(1)&lookupSymlink == 0 {
		flags |= unix.O_NOFOLLOW
	}
	// O_PATH|O_NOFOLLOW opens a symbolic link itself, so fstat gives the
	// link's own status, as lstat would.
	fd, e := openat2(dir.hostFD, c.path(c.u32(2), c.u32(3)), flags)
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

func fdSeek(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindFile {
		if e.kind == kindDir {
			return eIsDir
		}
		return eSpipe
	}
	whence := c.u32(2)
	if whence > 2 { // SET, CUR, END: the same numbers as Linux's
		return eInval
	}
	off, err := unix.Seek(e.hostFD, int64(c.u64(1)), int(whence))
	if err != nil {
		return errnoOf(err)
	}
	c.put64(c.u32(3), uint64(off))
	return eSuccess
}

func fdTell(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eSpipe)
	if bad != eSuccess {
		return bad
	}
	off, err := unix.Seek(e.hostFD, 0, 1)
	if err != nil {
		return errnoOf(err)
	}
	c.put64(c.u32(1), uint64(off))
	return eSuccess
}

func fdPread(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eSpipe)
	if bad != eSuccess {
		return bad
	}
	k, err := unix.Preadv(e.hostFD, c.iovecs(c.u32(1), c.u32(2)), int64(c.u64(3)))
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(4), uint32(k))
	return eSuccess
}

func fdPwrite(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eSpipe)
	if bad != eSuccess {
		return bad
	}
	k, err := unix.Pwritev(e.hostFD, c.iovecs(c.u32(1), c.u32(2)), int64(c.u64(3)))
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(4), uint32(k))
	return eSuccess
}

func fdSync(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eInval)
	if bad != eSuccess {
		return bad
	}
	if err := unix.Fsync(e.hostFD); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

func fdFilestatSetSize(w *WASI, c *call) errno {
	e, bad := w.fileEntry(c.i32(0), eInval)
	if bad != eSuccess {
		return bad
	}
	// A file under a read-only preopen is open O_RDONLY: the kernel refuses.
	if err := unix.Ftruncate(e.hostFD, int64(c.u64(1))); err != nil {
		return errnoOf(err)
	}
	return eSuccess
}

// dirent is one directory entry as fd_readdir gives it.
type dirent struct {
	ino  uint64
	typ  uint8
	name string
}

// readDir lists the directory dirFD names, "." and ".." included.
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
			out = append(out, dirent{ino: binary.LittleEndian.Uint64(b), typ: direntType(b[18]), name: string(name)})
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
		return 1
	case unix.DT_SOCK:
		return fileSocket
	}
	return fileUnknown
}

// fdReaddir fills buf with entries from cookie on: each a 24-byte header
// (next cookie u64, inode u64, name length u32, type u8) and the name. The
// listing is read at cookie 0 and kept, so cookies are indexes in it. The
// last entry is cut when buf is full: bufused == buf_len tells the guest to
// read on.
func fdReaddir(w *WASI, c *call) errno {
	e := w.fds.get(c.i32(0))
	if e == nil {
		return eBadf
	}
	if e.kind != kindDir {
		return eNotDir
	}
	p, n, cookie := c.u32(1), c.u32(2), c.u64(3)
	if cookie == 0 || e.dir == nil {
		list, err := readDir(e.hostFD)
		if err != eSuccess {
			return err
		}
		e.dir = list
	}
	buf := c.bytes(p, n)
	used := 0
	for i := cookie; i < uint64(len(e.dir)) && used < len(buf); i++ {
		d := e.dir[i]
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
		return nil, eRofs
	}
	return dir, e
}

func pathCreateDirectory(w *WASI, c *call) errno {
	dir, e := w.writableDir(c.i32(0))
	if e != eSuccess {
		return e
	}
	pfd, base, e := parent(dir, c.path(c.u32(1), c.u32(2)))
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
	pfd, base, e := parent(dir, c.path(c.u32(1), c.u32(2)))
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
	ofd, obase, e := parent(from, c.path(c.u32(1), c.u32(2)))
	if e != eSuccess {
		return e
	}
	defer unix.Close(ofd)
	nfd, nbase, e := parent(to, c.path(c.u32(4), c.u32(5)))
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
	pfd, base, e := parent(dir, c.path(c.u32(1), c.u32(2)))
	if e != eSuccess {
		return e
	}
	defer unix.Close(pfd)
	k, err := unix.Readlinkat(pfd, base, c.bytes(c.u32(3), c.u32(4)))
	if err != nil {
		return errnoOf(err)
	}
	c.put32(c.u32(5), uint32(k))
	return eSuccess
}
