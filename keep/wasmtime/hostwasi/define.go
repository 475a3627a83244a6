//go:build linux

package hostwasi

import (
	"encoding/binary"
	"fmt"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

const module = "wasi_snapshot_preview1"

// call is one host call: the guest's memory and the arguments.
type call struct {
	c    *wasmtime.Caller
	args []wasmtime.Val
	mem  []byte
	trap *wasmtime.Trap
}

func (c *call) i32(k int) int32  { return c.args[k].I32() }
func (c *call) u32(k int) uint32 { return uint32(c.args[k].I32()) }
func (c *call) u64(k int) uint64 { return uint64(c.args[k].I64()) }

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
	c.trap = wasmtime.NewTrap(fmt.Sprintf("hostwasi: "+format, args...))
}

// path is a guest string, as the workload gave it.
func (c *call) path(p, n uint32) string { return string(c.bytes(p, n)) }

type handler func(w *WASI, c *call) errno

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
// package does not implement answering ENOSYS. The functions use
// Linker.FuncNew, not the reflection-based FuncWrap (docs/networking.md
// has the figures). A linker with these definitions serves this WASI only:
// define one linker per WASI.
func (w *WASI) Define(linker *wasmtime.Linker) error {
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	i64 := wasmtime.NewValType(wasmtime.KindI64)
	for name, sig := range signatures {
		params := make([]*wasmtime.ValType, len(sig))
		for k, p := range sig {
			params[k] = i32
			if p == 'I' {
				params[k] = i64
			}
		}
		results := []*wasmtime.ValType{i32}
		if name == "proc_exit" {
			results = nil
		}
		h := handlers[name]
		if h == nil {
			h = func(*WASI, *call) errno { return eNosys }
		}
		f := w.adapt(h, results != nil)
		if err := linker.FuncNew(module, name, wasmtime.NewFuncType(params, results), f); err != nil {
			return fmt.Errorf("hostwasi: define %s: %w", name, err)
		}
	}
	return nil
}

// adapt turns a handler into a FuncNew callback. A guest pointer out of
// its memory makes a handler panic on the slice bounds; the call traps, as
// it does with wasmtime's WASI.
func (w *WASI) adapt(h handler, result bool) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	return func(caller *wasmtime.Caller, args []wasmtime.Val) (res []wasmtime.Val, trap *wasmtime.Trap) {
		c := call{c: caller, args: args}
		if w.mem == nil {
			if ext := caller.GetExport("memory"); ext != nil {
				w.mem = ext.Memory()
			}
		}
		if w.mem != nil {
			c.mem = w.mem.UnsafeData(caller)
		}
		defer func() {
			if r := recover(); r != nil {
				res, trap = nil, wasmtime.NewTrap(fmt.Sprintf("hostwasi: pointer out of bounds: %v", r))
			}
		}()
		e := h(w, &c)
		if c.trap != nil {
			return nil, c.trap
		}
		if !result {
			return nil, nil
		}
		return []wasmtime.Val{wasmtime.ValI32(int32(e))}, nil
	}
}
