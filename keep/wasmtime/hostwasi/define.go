//go:build linux

package hostwasi

import (
	"encoding/binary"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

const module = "wasi_snapshot_preview1"

// call is one host call: the guest's memory and the arguments, and the
// message of the trap the call ends with, if it does.
type call struct {
	raw  []rawVal
	mem  []byte
	trap string
}

func (c *call) i32(k int) int32  { return int32(uint32(c.raw[k].lo)) }
func (c *call) u32(k int) uint32 { return uint32(c.raw[k].lo) }
func (c *call) u64(k int) uint64 { return c.raw[k].lo }

// bytes is guest memory [p, p+n); it panics (EFAULT) when out of bounds.
func (c *call) bytes(p, n uint32) []byte { return c.mem[p : uint64(p)+uint64(n)] }
func (c *call) put32(p uint32, v uint32) { binary.LittleEndian.PutUint32(c.mem[p:], v) }
func (c *call) put64(p uint32, v uint64) { binary.LittleEndian.PutUint64(c.mem[p:], v) }
func (c *call) get32(p uint32) uint32    { return binary.LittleEndian.Uint32(c.mem[p:]) }
func (c *call) get64(p uint32) uint64    { return binary.LittleEndian.Uint64(c.mem[p:]) }

// iovecs returns the guest buffers of an iovec array of n entries at p.
func (c *call) iovecs(p, n uint32) [][]byte {
	out := make([][]byte, 0, n)
	for i := uint32(0); i < n; i++ {
		b, l := c.get32(p+8*i), c.get32(p+8*i+4)
		out = append(out, c.bytes(b, l))
	}
	return out
}

// fail makes the call trap, as wasmtime's WASI traps on an argument no
// call accepts (a pointer out of memory, an invalid enum or flags value).
func (c *call) fail(format string, args ...any) {
	c.trap = fmt.Sprintf("hostwasi: "+format, args...)
}

// path is a guest string, as the workload gave it.
func (c *call) path(p, n uint32) string { return string(c.bytes(p, n)) }

type handler func(w *WASI, c *call) errno

// inputFree are the functions that tell a module nothing of its
// container (its arguments, environment, files, descriptors, sockets,
// stdio or peers): the clocks, random numbers, yielding and ending. A
// module's run until its first call of any other depends on the module
// alone, and on what these gave it (Config.BeforeInput).
var inputFree = map[string]bool{
	"clock_time_get": true, "clock_res_get": true, "random_get": true,
	"sched_yield": true, "proc_exit": true, "proc_raise": true,
}

// signatures lists every wasi_snapshot_preview1 function with its
// parameters, 'i' for i32 and 'I' for i64; all return an i32 errno but
// proc_exit, which returns nothing.
var signatures = map[string]string{
	"args_get": "ii", "args_sizes_get": "ii", "environ_get": "ii", "environ_sizes_get": "ii",
	"clock_res_get": "ii", "clock_time_get": "iIi",
	"fd_advise": "iIIi", "fd_allocate": "iII", "fd_close": "i", "fd_datasync": "i",
	"fd_fdstat_get": "ii", "fd_fdstat_set_flags": "ii", "fd_fdstat_set_rights": "iII",
	"fd_filestat_get": "ii", "fd_filestat_set_size": "iI", "fd_filestat_set_times": "iIIi",
	"fd_pread": "iiiIi", "fd_prestat_get": "ii", "fd_prestat_dir_name": "iii",
	"fd_pwrite": "iiiIi", "fd_read": "iiii", "fd_readdir": "iiiIi", "fd_renumber": "ii",
	"fd_seek": "iIii", "fd_sync": "i", "fd_tell": "ii", "fd_write": "iiii",
	"path_create_directory": "iii", "path_filestat_get": "iiiii",
	"path_filestat_set_times": "iiiiIIi", "path_link": "iiiiiii", "path_open": "iiiiiIIii",
	"path_readlink": "iiiiii", "path_remove_directory": "iii", "path_rename": "iiiiii",
	"path_symlink": "iiiii", "path_unlink_file": "iii",
	"poll_oneoff": "iiii", "proc_exit": "i", "proc_raise": "i", "sched_yield": "",
	"random_get": "ii", "sock_accept": "iii", "sock_recv": "iiiiii", "sock_send": "iiiii",
	"sock_shutdown": "ii",
}

// Define puts every wasi_snapshot_preview1 function in linker, those this
// package does not implement answering ENOSYS. The functions are wasmtime's
// unchecked host functions (trampoline.go), not wasmtime-go's FuncNew or
// the reflection-based FuncWrap (BenchmarkHostCall has the figures). A
// linker with these definitions serves this WASI only: define one linker
// per WASI. A guest pointer out of its memory makes a handler panic on the
// slice bounds; the call traps, as it does with wasmtime's WASI.
func (w *WASI) Define(linker *wasmtime.Linker) error {
	for name, sig := range signatures {
		h := handlers[name]
		if h == nil {
			h = func(*WASI, *call) errno { return eNosys }
		}
		if err := w.defineUnchecked(linker, module, name, sig, h, name != "proc_exit"); err != nil {
			return err
		}
	}
	return nil
}
