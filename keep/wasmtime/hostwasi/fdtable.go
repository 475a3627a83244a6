//go:build linux

package hostwasi

import (
	"os"
	"slices"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

type kind uint8

const (
	kindStdio    kind = iota // the caller's *os.File, blocking semantics through Go
	kindDir                  // a directory: O_PATH for a preopen, O_RDONLY when opened
	kindFile                 // a regular file (or anything else opened by path)
	kindListener             // a listening socket, non-blocking, or an Acceptor
	kindConn                 // a connected stream socket, non-blocking
)

// entry is one open descriptor of the workload.
type entry struct {
	kind   kind
	hostFD int      // -1 for stdio, an Acceptor and a stream
	file   *os.File // stdio only
	owned  bool     // file is ours to close (stdio defaulting to /dev/null)
	// acceptor hands out the connections of a listener the host accepts
	// on; it is the host's, never closed here.
	acceptor engine.Acceptor
	// stream is a connection served in process (kindConn, no hostFD),
	// taken from a StreamAcceptor; closed with the entry.
	stream engine.Stream
	// preopen is the guest path of a preopened directory, "" otherwise.
	preopen string
	// readOnly: nothing opened through this directory may be written,
	// created or removed; set on a preopen and inherited by what is
	// opened under it.
	readOnly bool
	// append, nonblock: the fdflags the workload asked for.
	append, nonblock bool
	// read, write: what a file or directory was opened for (its rights
	// fd_read and fd_write at path_open).
	read, write bool
	// pos is a file's position: reads and writes go to it with pread and
	// pwrite, as in wasmtime's WASI, so seeking past the end is the
	// guest's own business until it writes.
	pos uint64
	// stdio is 0, 1 or 2 for the standard descriptors; tty when it is a
	// terminal.
	stdio int
	tty   bool
	// dir is the listing of a directory, read once by fd_readdir at
	// cookie 0 and served from there.
	dir []dirent
	// stdioFD is the stdio file's descriptor, for poll_oneoff only: reads
	// and writes go through file.
	stdioFD int
	// root is the preopen this was opened under; nil for a preopen.
	root *entry
}

func (e *entry) close() {
	if e.stream != nil {
		e.stream.Close()
		return
	}
	if e.file != nil {
		if e.owned {
			e.file.Close()
		}
		return
	}
	if e.hostFD >= 0 {
		unix.Close(e.hostFD)
	}
}

// fdTable maps guest descriptors to entries, numbering them as wasmtime's
// WASI does: a new descriptor takes the highest number closed before and
// not reused since, else one past the highest in use. Preopens are
// contiguous from 3, which is what guests probing fd_prestat_get upward
// rely on.
type fdTable struct {
	e    []*entry
	free []int32 // closed numbers below len(e), ascending
}

func (t *fdTable) get(fd int32) *entry {
	if fd < 0 || int(fd) >= len(t.e) {
		return nil
	}
	return t.e[fd]
}

func (t *fdTable) add(e *entry) int32 {
	if n := len(t.free); n > 0 {
		fd := t.free[n-1]
		t.free = t.free[:n-1]
		t.e[fd] = e
		return fd
	}
	t.e = append(t.e, e)
	return int32(len(t.e) - 1)
}

// remove takes fd out of the table; the caller closes the entry.
func (t *fdTable) remove(fd int32) *entry {
	e := t.get(fd)
	if e == nil {
		return nil
	}
	t.e[fd] = nil
	t.markFree(fd)
	return e
}

// markFree records fd, now unused, for reuse. Every hole in e is in free,
// so with free empty the next number is len(e).
func (t *fdTable) markFree(fd int32) {
	i, _ := slices.BinarySearch(t.free, fd)
	t.free = slices.Insert(t.free, i, fd)
}

// renumber moves from's entry to to, closing what to held; both must be
// open.
func (t *fdTable) renumber(from, to int32) errno {
	src, dst := t.get(from), t.get(to)
	if src == nil || dst == nil {
		return eBadf
	}
	if from == to {
		return eSuccess
	}
	dst.close()
	t.e[to] = src
	t.e[from] = nil
	t.markFree(from)
	return eSuccess
}

func (t *fdTable) closeAll() {
	for i, e := range t.e {
		if e != nil {
			e.close()
			t.e[i] = nil
		}
	}
	t.free = nil
}

// fileEntry is the regular file open at fd: EBADF when fd is not open,
// notFile when it is something else (a directory, a socket, stdio).
func (w *WASI) fileEntry(fd int32, notFile errno) (*entry, errno) {
	e := w.fds.get(fd)
	if e == nil {
		return nil, eBadf
	}
	if e.kind != kindFile {
		return nil, notFile
	}
	return e, eSuccess
}
