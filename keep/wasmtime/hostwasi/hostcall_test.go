//go:build linux

package hostwasi

import (
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// The cost of one host call of the shape most WASI functions have,
// (i32, i32, i32, i32) -> i32 with a look at guest memory, registered with
// FuncWrap (reflection), with FuncNew, and as an unchecked function through
// the C API (what Define uses). The guest calls
// it b.N times in a loop, so the figure is per call, wasm to Go and back.
const watHostCall = `(module
  (import "env" "f" (func $f (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param $n i32)
    (loop $l
      (drop (call $f (i32.const 0) (i32.const 8) (i32.const 1) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))))`

func benchHostCall(b *testing.B, define func(*wasmtime.Linker) error) {
	wasm, err := wasmtime.Wat2Wasm(watHostCall)
	if err != nil {
		b.Fatal(err)
	}
	mod, err := wasmtime.NewModule(wasmEngine, wasm)
	if err != nil {
		b.Fatal(err)
	}
	store := wasmtime.NewStore(wasmEngine)
	defer store.Close()
	linker := wasmtime.NewLinker(wasmEngine)
	if err := define(linker); err != nil {
		b.Fatal(err)
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		b.Fatal(err)
	}
	run := inst.GetFunc(store, "run")
	b.ResetTimer()
	if _, err := run.Call(store, int32(b.N)); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkHostCallFuncWrap(b *testing.B) {
	var mem *wasmtime.Memory
	benchHostCall(b, func(l *wasmtime.Linker) error {
		return l.FuncWrap("env", "f", func(c *wasmtime.Caller, a, b, n, p int32) int32 {
			if mem == nil {
				mem = c.GetExport("memory").Memory()
			}
			m := mem.UnsafeData(c)
			m[p&0xff] = byte(a + b + n)
			return 0
		})
	})
}

func BenchmarkHostCallFuncNew(b *testing.B) {
	var mem *wasmtime.Memory
	i32 := wasmtime.NewValType(wasmtime.KindI32)
	ty := wasmtime.NewFuncType([]*wasmtime.ValType{i32, i32, i32, i32}, []*wasmtime.ValType{i32})
	benchHostCall(b, func(l *wasmtime.Linker) error {
		return l.FuncNew("env", "f", ty, func(c *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			if mem == nil {
				mem = c.GetExport("memory").Memory()
			}
			m := mem.UnsafeData(c)
			m[args[3].I32()&0xff] = byte(args[0].I32() + args[1].I32() + args[2].I32())
			return []wasmtime.Val{wasmtime.ValI32(0)}, nil
		})
	})
}

func BenchmarkHostCallUnchecked(b *testing.B) {
	w := &WASI{}
	h := func(w *WASI, c *call) errno {
		c.mem[c.u32(3)&0xff] = byte(c.i32(0) + c.i32(1) + c.i32(2))
		return 0
	}
	benchHostCall(b, func(l *wasmtime.Linker) error { return w.defineUnchecked(l, "env", "f", "iiii", h, true) })
}
