//go:build linux

package hostwasi

// This file defines the host functions through wasmtime's C API, as
// "unchecked" functions (wasmtime_linker_define_func_unchecked): the
// arguments arrive as raw values and the guest's memory is found in C, so
// that a host call is one cgo callback. wasmtime-go's Linker.FuncNew makes
// a call cost a callback plus a nested cgo call per argument, two for the
// memory and allocations for the values: 0.75 us against 0.2 us here
// (BenchmarkHostCall), and a Go HTTP server in a Keep makes about 17 host
// calls per request.
//
// As in package wasmtime's component_capi.go, the C declarations are
// copied from the headers in wasmtime-go's module directory (cgo cannot
// be pointed at another module's directory), and the symbols come from
// wasmtime-go's own -lwasmtime; TestTrampolineCAPILayout compiles a C
// check of the copied layouts against the real headers.

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasm_valtype_vec_t {
  size_t size;
  wasm_valtype_t **data;
} wasm_valtype_vec_t;

// wasmtime_val_raw_t: a union of 16 bytes (v128); i32 and i64 are
// little-endian at offset 0.
typedef struct hostwasi_raw {
  uint64_t lo, hi;
} hostwasi_raw_t;

// wasmtime_extern_t: the kind byte, then the union at offset 8 (its
// members hold a uint64_t); only a memory (kind 3) is read, by address.
typedef struct hostwasi_extern {
  uint8_t kind;
  uint64_t of[3];
} hostwasi_extern_t;

#define HOSTWASI_EXTERN_MEMORY 3
#define HOSTWASI_I32 0
#define HOSTWASI_I64 1

extern wasm_valtype_t *wasm_valtype_new(uint8_t);
extern void wasm_valtype_vec_new(wasm_valtype_vec_t *, size_t, wasm_valtype_t *const[]);
extern void wasm_valtype_vec_new_empty(wasm_valtype_vec_t *);
extern wasm_functype_t *wasm_functype_new(wasm_valtype_vec_t *, wasm_valtype_vec_t *);
extern void wasm_functype_delete(wasm_functype_t *);
typedef wasm_trap_t *(*hostwasi_callback_t)(void *, wasmtime_caller_t *, hostwasi_raw_t *, size_t);
extern wasmtime_error_t *wasmtime_linker_define_func_unchecked(
    wasmtime_linker_t *, const char *, size_t, const char *, size_t,
    const wasm_functype_t *, hostwasi_callback_t, void *, void (*)(void *));
extern void wasmtime_error_delete(wasmtime_error_t *);
extern bool wasmtime_caller_export_get(wasmtime_caller_t *, const char *, size_t, hostwasi_extern_t *);
extern wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *);
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *, const void *);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *, const void *);
extern wasm_trap_t *wasmtime_trap_new(const char *, size_t);

// From Go (trampoline.go).
extern long hostwasiCall(uintptr_t, hostwasi_raw_t *, size_t, uint8_t *, size_t, char *, size_t);
extern void hostwasiRelease(uintptr_t);

static wasm_trap_t *hostwasi_trampoline(void *env, wasmtime_caller_t *caller, hostwasi_raw_t *args, size_t n) {
	hostwasi_extern_t ext;
	uint8_t *mem = NULL;
	size_t size = 0;
	if (wasmtime_caller_export_get(caller, "memory", 6, &ext) && ext.kind == HOSTWASI_EXTERN_MEMORY) {
		wasmtime_context_t *cx = wasmtime_caller_context(caller);
		mem = wasmtime_memory_data(cx, &ext.of);
		size = wasmtime_memory_data_size(cx, &ext.of);
	}
	char msg[512];
	long k = hostwasiCall((uintptr_t)env, args, n, mem, size, msg, sizeof msg);
	if (k < 0) {
		return NULL;
	}
	return wasmtime_trap_new(msg, (size_t)k);
}

static void hostwasi_finalize(void *env) { hostwasiRelease((uintptr_t)env); }

// hostwasi_define defines module.name with params ('i' i32, 'I' i64) and
// one i32 result, or none; it returns false on failure.
static bool hostwasi_define(wasmtime_linker_t *linker, const char *module, size_t module_len,
		const char *name, size_t name_len, const char *params, size_t nparams, bool result, uintptr_t env) {
	wasm_valtype_t *ps[16];
	if (nparams > 16) {
		return false;
	}
	for (size_t i = 0; i < nparams; i++) {
		ps[i] = wasm_valtype_new(params[i] == 'I' ? HOSTWASI_I64 : HOSTWASI_I32);
	}
	wasm_valtype_vec_t pv, rv;
	wasm_valtype_vec_new(&pv, nparams, ps);
	if (result) {
		wasm_valtype_t *r[1] = {wasm_valtype_new(HOSTWASI_I32)};
		wasm_valtype_vec_new(&rv, 1, r);
	} else {
		wasm_valtype_vec_new_empty(&rv);
	}
	wasm_functype_t *ty = wasm_functype_new(&pv, &rv);
	wasmtime_error_t *err = wasmtime_linker_define_func_unchecked(linker, module, module_len,
		name, name_len, ty, hostwasi_trampoline, (void *)env, hostwasi_finalize);
	wasm_functype_delete(ty);
	if (err != NULL) {
		wasmtime_error_delete(err);
		return false;
	}
	return true;
}
*/
import "C"

import (
	"fmt"
	"reflect"
	"runtime"
	"runtime/cgo"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// rawVal is a wasmtime_val_raw_t.
type rawVal struct{ lo, hi uint64 }

// The layout of the structs declared above and the constants copied from
// the headers, for TestTrampolineCAPILayout.
const (
	sizeofRaw    = C.sizeof_hostwasi_raw_t
	sizeofExtern = C.sizeof_hostwasi_extern_t
	externMemory = C.HOSTWASI_EXTERN_MEMORY
	valKindI32   = C.HOSTWASI_I32
	valKindI64   = C.HOSTWASI_I64
)

// hostFunc is what a defined function's env handle holds.
type hostFunc struct {
	w      *WASI
	h      handler
	result bool
	// input: the function tells the module something of its container
	// (it is not inputFree), so the first call of one calls the WASI's
	// beforeInput.
	input bool
}

// linkerPtr is the wasmtime_linker_t of a wasmtime-go Linker, which
// wasmtime-go keeps in an unexported field; reflection reads it without
// assuming the struct's layout.
func linkerPtr(l *wasmtime.Linker) (*C.wasmtime_linker_t, error) {
	f := reflect.ValueOf(l).Elem().FieldByName("_ptr")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return nil, fmt.Errorf("hostwasi: wasmtime-go %T has no linker pointer (_ptr): a wasmtime-go this package does not know", l)
	}
	return (*C.wasmtime_linker_t)(f.UnsafePointer()), nil
}

// defineUnchecked defines mod.name in linker with the parameters of sig
// (see signatures), one i32 result when result, calling h.
func (w *WASI) defineUnchecked(linker *wasmtime.Linker, mod, name, sig string, h handler, result bool) error {
	lp, err := linkerPtr(linker)
	if err != nil {
		return err
	}
	hd := cgo.NewHandle(&hostFunc{w: w, h: h, result: result, input: !inputFree[name]})
	cmod, cname, csig := C.CString(mod), C.CString(name), C.CString(sig)
	defer C.free(unsafe.Pointer(cmod))
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(csig))
	ok := C.hostwasi_define(lp, cmod, C.size_t(len(mod)), cname, C.size_t(len(name)), csig, C.size_t(len(sig)), C.bool(result), C.uintptr_t(hd))
	runtime.KeepAlive(linker)
	if !ok {
		// wasmtime has not taken the env, so it will not finalize it.
		hd.Delete()
		return fmt.Errorf("hostwasi: define %s.%s: wasmtime refused the definition", mod, name)
	}
	return nil
}

//export hostwasiCall
func hostwasiCall(env C.uintptr_t, args *C.hostwasi_raw_t, n C.size_t, mem *C.uint8_t, size C.size_t, msg *C.char, msgCap C.size_t) (k C.long) {
	f := cgo.Handle(env).Value().(*hostFunc)
	raw := unsafe.Slice((*rawVal)(unsafe.Pointer(args)), int(n))
	c := call{raw: raw}
	if mem != nil {
		c.mem = unsafe.Slice((*byte)(unsafe.Pointer(mem)), int(size))
	}
	trap := func(text string) C.long {
		out := unsafe.Slice((*byte)(unsafe.Pointer(msg)), int(msgCap))
		return C.long(copy(out, text))
	}
	defer func() {
		if r := recover(); r != nil {
			k = trap(fmt.Sprintf("hostwasi: pointer out of bounds: %v", r))
		}
	}()
	if f.input && f.w.beforeInput != nil {
		before := f.w.beforeInput
		f.w.beforeInput = nil
		before(c.mem)
	}
	e := f.h(f.w, &c)
	if c.trap != "" {
		return trap(c.trap)
	}
	if f.result {
		raw[0] = rawVal{lo: uint64(uint32(int32(e)))}
	}
	return -1
}

//export hostwasiRelease
func hostwasiRelease(env C.uintptr_t) { cgo.Handle(env).Delete() }
