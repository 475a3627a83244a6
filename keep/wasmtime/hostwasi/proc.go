//go:build linux

package hostwasi

import (
	"crypto/rand"

	"golang.org/x/sys/unix"
)

// handlers are the implemented functions; Define answers ENOSYS for the
// rest of signatures.
var handlers = map[string]handler{
	"args_get":          func(w *WASI, c *call) errno { return putStrings(c, w.args) },
	"args_sizes_get":    func(w *WASI, c *call) errno { return sizes(c, w.args) },
	"environ_get":       func(w *WASI, c *call) errno { return putStrings(c, w.env) },
	"environ_sizes_get": func(w *WASI, c *call) errno { return sizes(c, w.env) },
	"clock_res_get":     clockResGet,
	"clock_time_get":    clockTimeGet,
	"random_get": func(w *WASI, c *call) errno {
		rand.Read(c.bytes(c.u32(0), c.u32(1)))
		return eSuccess
	},
	"sched_yield": func(*WASI, *call) errno { return eSuccess },
	"proc_raise": func(w *WASI, c *call) errno {
		if c.u32(0) > 30 {
			c.fail("proc_raise: invalid signal %d", c.u32(0))
		}
		return eNotSup
	},
	"proc_exit": func(w *WASI, c *call) errno {
		w.exited, w.exitCode = true, c.i32(0)
		c.trap = "proc_exit"
		return eSuccess
	},

	"fd_close":             fdClose,
	"fd_renumber":          fdRenumber,
	"fd_fdstat_set_rights": fdFdstatSetRights,
	"fd_fdstat_get":        fdFdstatGet,
	"fd_fdstat_set_flags":  fdFdstatSetFlags,
	"fd_read":              fdRead,
	"fd_write":             fdWrite,
	"fd_prestat_get":       fdPrestatGet,
	"fd_prestat_dir_name":  fdPrestatDirName,

	"sock_accept":   sockAccept,
	"sock_recv":     sockRecv,
	"sock_send":     sockSend,
	"sock_shutdown": sockShutdown,
	"poll_oneoff":   pollOneoff,
}

func putStrings(c *call, list []string) errno {
	ptrs, buf := c.u32(0), c.u32(1)
	for i, s := range list {
		c.put32(ptrs+uint32(4*i), buf)
		copy(c.bytes(buf, uint32(len(s))), s)
		buf += uint32(len(s))
		c.bytes(buf, 1)[0] = 0
		buf++
	}
	return eSuccess
}

func sizes(c *call, list []string) errno {
	n := 0
	for _, s := range list {
		n += len(s) + 1
	}
	c.put32(c.u32(0), uint32(len(list)))
	c.put32(c.u32(1), uint32(n))
	return eSuccess
}

// hostClock maps a WASI clock id: realtime and monotonic. The CPU-time
// clocks answer EBADF, as in wasmtime's WASI; another id is not a clock
// (the call traps).
func hostClock(c *call, id uint32) (int32, errno) {
	switch id {
	case 0:
		return unix.CLOCK_REALTIME, eSuccess
	case 1:
		return unix.CLOCK_MONOTONIC, eSuccess
	case 2, 3:
		return 0, eBadf
	}
	c.fail("invalid clock id %d", id)
	return 0, eInval
}

func clockTimeGet(w *WASI, c *call) errno {
	clk, e := hostClock(c, c.u32(0))
	if e != eSuccess {
		return e
	}
	c.put64(c.u32(2), uint64(clockNow(clk)))
	return eSuccess
}

func clockResGet(w *WASI, c *call) errno {
	clk, e := hostClock(c, c.u32(0))
	if e != eSuccess {
		return e
	}
	var ts unix.Timespec
	if err := unix.ClockGetres(clk, &ts); err != nil {
		return errnoOf(err)
	}
	c.put64(c.u32(1), uint64(ts.Nano()))
	return eSuccess
}

func init() {
	for name, h := range map[string]handler{
		"path_open":               pathOpen,
		"path_filestat_get":       pathFilestatGet,
		"path_create_directory":   pathCreateDirectory,
		"path_unlink_file":        pathUnlinkFile,
		"path_remove_directory":   pathRemoveDirectory,
		"path_rename":             pathRename,
		"path_readlink":           pathReadlink,
		"fd_filestat_get":         fdFilestatGet,
		"fd_filestat_set_size":    fdFilestatSetSize,
		"fd_seek":                 fdSeek,
		"fd_tell":                 fdTell,
		"fd_pread":                fdPread,
		"fd_pwrite":               fdPwrite,
		"fd_sync":                 fdSync,
		"fd_datasync":             fdDatasync,
		"fd_advise":               fdAdvise,
		"fd_allocate":             fdAllocate,
		"fd_filestat_set_times":   fdFilestatSetTimes,
		"path_filestat_set_times": pathFilestatSetTimes,
		"path_link":               pathLink,
		"path_symlink":            pathSymlink,
		"fd_readdir":              fdReaddir,
	} {
		handlers[name] = h
	}
}
