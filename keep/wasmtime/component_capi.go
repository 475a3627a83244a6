package wasmtime

// This file is the package's only cgo: a thin layer over the component
// model part of wasmtime's C API, which the static libwasmtime that
// wasmtime-go links already holds but wasmtime-go v39 does not wrap.
//
// The C declarations below are copied from the headers in wasmtime-go's
// module directory (build/include/wasmtime/component/*.h, wasi.h, ...):
// cgo cannot be pointed at another module's directory, and the symbols are
// resolved by wasmtime-go's own `-lwasmtime` when the program is linked, so
// the library is linked once. Opaque handles are declared as incomplete
// structs; the few structs whose layout matters (instance, func, val, byte
// vec) are declared as the headers define them, and TestComponentCAPILayout
// compiles a C check against the real headers.
//
// Ownership: every C handle is owned by one Go value, freed by that value's
// close method, which callers defer; nothing relies on finalizers.

/*
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasm_config_t wasm_config_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_component_t wasmtime_component_t;
typedef struct wasmtime_component_linker_t wasmtime_component_linker_t;
typedef struct wasmtime_component_export_index_t wasmtime_component_export_index_t;

typedef struct wasm_byte_vec_t {
  size_t size;
  char *data;
} wasm_byte_vec_t;

typedef struct wasmtime_component_instance {
  uint64_t store_id;
  uint32_t __private;
} wasmtime_component_instance_t;

typedef struct wasmtime_component_func {
  struct {
    uint64_t store_id;
    uint32_t __private1;
  };
  uint32_t __private2;
} wasmtime_component_func_t;

// wasmtime_component_val_t: a kind byte, then a union of at most three
// words. Only the kind and, for a result, is_ok are read here.
typedef struct wasmtime_component_val {
  uint8_t kind;
  union {
    struct {
      bool is_ok;
      void *val;
    } result;
    uint64_t words[3];
  } of;
} wasmtime_component_val_t;

#define WASMTIME_COMPONENT_U8 2
#define WASMTIME_COMPONENT_RESULT 19

// config
extern wasm_config_t *wasm_config_new(void);
extern void wasmtime_config_strategy_set(wasm_config_t *, uint8_t);
extern void wasmtime_config_epoch_interruption_set(wasm_config_t *, bool);
extern void wasmtime_config_wasm_component_model_set(wasm_config_t *, bool);

// engine
extern wasm_engine_t *wasm_engine_new_with_config(wasm_config_t *);
extern void wasm_engine_delete(wasm_engine_t *);
extern void wasmtime_engine_increment_epoch(wasm_engine_t *);

// errors
extern void wasmtime_error_delete(wasmtime_error_t *);
extern void wasmtime_error_message(const wasmtime_error_t *, wasm_byte_vec_t *);
extern bool wasmtime_error_exit_status(const wasmtime_error_t *, int *);
extern void wasm_byte_vec_delete(wasm_byte_vec_t *);

// components
extern wasmtime_error_t *wasmtime_component_new(const wasm_engine_t *, const uint8_t *, size_t, wasmtime_component_t **);
extern wasmtime_error_t *wasmtime_component_serialize(const wasmtime_component_t *, wasm_byte_vec_t *);
extern wasmtime_error_t *wasmtime_component_deserialize_file(const wasm_engine_t *, const char *, wasmtime_component_t **);
extern void wasmtime_component_delete(wasmtime_component_t *);
extern wasmtime_component_export_index_t *wasmtime_component_get_export_index(const wasmtime_component_t *, const wasmtime_component_export_index_t *, const char *, size_t);
extern void wasmtime_component_export_index_delete(wasmtime_component_export_index_t *);

// linker
typedef struct wasmtime_component_linker_instance_t wasmtime_component_linker_instance_t;
typedef struct wasmtime_component_func_type_t wasmtime_component_func_type_t;
typedef wasmtime_error_t *(*wasmtime_component_func_callback_t)(void *, wasmtime_context_t *, const wasmtime_component_func_type_t *, wasmtime_component_val_t *, size_t, wasmtime_component_val_t *, size_t);
extern wasmtime_component_linker_t *wasmtime_component_linker_new(const wasm_engine_t *);
extern void wasmtime_component_linker_allow_shadowing(wasmtime_component_linker_t *, bool);
extern wasmtime_component_linker_instance_t *wasmtime_component_linker_root(wasmtime_component_linker_t *);
extern wasmtime_error_t *wasmtime_component_linker_instance_add_instance(wasmtime_component_linker_instance_t *, const char *, size_t, wasmtime_component_linker_instance_t **);
extern wasmtime_error_t *wasmtime_component_linker_instance_add_func(wasmtime_component_linker_instance_t *, const char *, size_t, wasmtime_component_func_callback_t, void *, void (*)(void *));
extern void wasmtime_component_linker_instance_delete(wasmtime_component_linker_instance_t *);
extern wasmtime_error_t *wasmtime_error_new(const char *);
// enarxComponentExit is exported by this file (see componentExit).
extern wasmtime_error_t *enarxComponentExit(void *, wasmtime_context_t *, wasmtime_component_func_type_t *, wasmtime_component_val_t *, size_t, wasmtime_component_val_t *, size_t);
extern wasmtime_error_t *wasmtime_component_linker_add_wasip2(wasmtime_component_linker_t *);
extern wasmtime_error_t *wasmtime_component_linker_instantiate(const wasmtime_component_linker_t *, wasmtime_context_t *, const wasmtime_component_t *, wasmtime_component_instance_t *);
extern void wasmtime_component_linker_delete(wasmtime_component_linker_t *);

// instances and functions
extern bool wasmtime_component_instance_get_func(const wasmtime_component_instance_t *, wasmtime_context_t *, const wasmtime_component_export_index_t *, wasmtime_component_func_t *);
extern wasmtime_error_t *wasmtime_component_func_call(const wasmtime_component_func_t *, wasmtime_context_t *, const wasmtime_component_val_t *, size_t, wasmtime_component_val_t *, size_t);
extern wasmtime_error_t *wasmtime_component_func_post_return(const wasmtime_component_func_t *, wasmtime_context_t *);
extern void wasmtime_component_val_delete(wasmtime_component_val_t *);

// stores
extern wasmtime_store_t *wasmtime_store_new(wasm_engine_t *, void *, void (*)(void *));
extern wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *);
extern void wasmtime_store_delete(wasmtime_store_t *);
extern void wasmtime_store_limiter(wasmtime_store_t *, int64_t, int64_t, int64_t, int64_t, int64_t);
extern void wasmtime_context_set_epoch_deadline(wasmtime_context_t *, uint64_t);
extern wasmtime_error_t *wasmtime_context_set_wasi(wasmtime_context_t *, wasi_config_t *);

// WASI
extern wasi_config_t *wasi_config_new(void);
extern void wasi_config_delete(wasi_config_t *);
extern bool wasi_config_set_argv(wasi_config_t *, size_t, const char *[]);
extern bool wasi_config_set_env(wasi_config_t *, size_t, const char *[], const char *[]);
extern void wasi_config_inherit_stdin(wasi_config_t *);
extern void wasi_config_inherit_stdout(wasi_config_t *);
extern void wasi_config_inherit_stderr(wasi_config_t *);
extern bool wasi_config_preopen_dir(wasi_config_t *, const char *, const char *, size_t, size_t);

#define WASMTIME_STRATEGY_CRANELIFT 1
#define WASMTIME_WASI_DIR_PERMS_READ 1
#define WASMTIME_WASI_DIR_PERMS_WRITE 2
#define WASMTIME_WASI_FILE_PERMS_READ 1
#define WASMTIME_WASI_FILE_PERMS_WRITE 2
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// The layout of the structs declared above and the constants copied from
// the headers, for TestComponentCAPILayout.
const (
	sizeofInstance    = C.sizeof_wasmtime_component_instance_t
	sizeofFunc        = C.sizeof_wasmtime_component_func_t
	sizeofVal         = C.sizeof_wasmtime_component_val_t
	sizeofByteVec     = C.sizeof_wasm_byte_vec_t
	valKindU8         = C.WASMTIME_COMPONENT_U8
	valKindResult     = C.WASMTIME_COMPONENT_RESULT
	strategyCranelift = C.WASMTIME_STRATEGY_CRANELIFT
	dirPermsRead      = C.WASMTIME_WASI_DIR_PERMS_READ
	dirPermsWrite     = C.WASMTIME_WASI_DIR_PERMS_WRITE
	filePermsRead     = C.WASMTIME_WASI_FILE_PERMS_READ
	filePermsWrite    = C.WASMTIME_WASI_FILE_PERMS_WRITE
)

// cError is a wasmtime_error_t turned into Go: its message, and the exit
// status when it is WASI's exit.
type cError struct {
	msg       string
	status    int
	hasStatus bool
}

func (e *cError) Error() string { return e.msg }

// takeError converts err and frees it; nil stays nil.
func takeError(err *C.wasmtime_error_t) error {
	if err == nil {
		return nil
	}
	defer C.wasmtime_error_delete(err)
	var msg C.wasm_byte_vec_t
	C.wasmtime_error_message(err, &msg)
	e := &cError{msg: C.GoStringN(msg.data, C.int(msg.size))}
	C.wasm_byte_vec_delete(&msg)
	var status C.int
	if C.wasmtime_error_exit_status(err, &status) {
		e.status, e.hasStatus = int(status), true
	}
	return e
}

// componentEngine is a wasm_engine_t for components, configured as New
// configures the core engine (Cranelift, epoch interruption). It is not
// wasmtime-go's engine: wasmtime-go keeps its engine pointer unexported.
type componentEngine struct {
	ptr *C.wasm_engine_t
	// linker defines WASI preview 2 (wasi:cli/command's imports). It is
	// made once: a run only reads it.
	linker *C.wasmtime_component_linker_t
}

func newComponentEngine() (*componentEngine, error) {
	cfg := C.wasm_config_new()
	C.wasmtime_config_strategy_set(cfg, C.WASMTIME_STRATEGY_CRANELIFT)
	C.wasmtime_config_epoch_interruption_set(cfg, true)
	C.wasmtime_config_wasm_component_model_set(cfg, true)
	// The engine takes the config over.
	ptr := C.wasm_engine_new_with_config(cfg)
	if ptr == nil {
		return nil, errors.New("wasmtime: create component engine: no engine returned")
	}
	e := &componentEngine{ptr: ptr, linker: C.wasmtime_component_linker_new(ptr)}
	if err := takeError(C.wasmtime_component_linker_add_wasip2(e.linker)); err != nil {
		e.close()
		return nil, fmt.Errorf("wasmtime: define WASI preview 2 for components: %w", err)
	}
	if err := e.defineExit(); err != nil {
		e.close()
		return nil, fmt.Errorf("wasmtime: define wasi:cli/exit for components: %w", err)
	}
	return e, nil
}

// exitInterface is the wasi:cli/exit that wasmtime v39's WASI defines
// (semver-compatible with every 0.2.x a component imports).
const exitInterface = "wasi:cli/exit@0.2.6"

// defineExit replaces wasmtime's wasi:cli/exit with one that also has
// exit-with-code, the part of the interface that carries a status (behind
// the cli-exit-with-code feature gate in WASI 0.2, which wasmtime's
// add_wasip2 leaves out): its exit(ok) is 0 and exit(err) is 1, and
// exit-with-code(n) is n, as WASI preview 1's proc_exit(n) was.
func (e *componentEngine) defineExit() error {
	C.wasmtime_component_linker_allow_shadowing(e.linker, true)
	defer C.wasmtime_component_linker_allow_shadowing(e.linker, false)
	root := C.wasmtime_component_linker_root(e.linker)
	defer C.wasmtime_component_linker_instance_delete(root)
	name := C.CString(exitInterface)
	defer C.free(unsafe.Pointer(name))
	var inst *C.wasmtime_component_linker_instance_t
	if err := takeError(C.wasmtime_component_linker_instance_add_instance(root, name, C.size_t(len(exitInterface)), &inst)); err != nil {
		return err
	}
	defer C.wasmtime_component_linker_instance_delete(inst)
	for _, fn := range []string{"exit", "exit-with-code"} {
		cfn := C.CString(fn)
		err := takeError(C.wasmtime_component_linker_instance_add_func(inst, cfn, C.size_t(len(fn)),
			(C.wasmtime_component_func_callback_t)(C.enarxComponentExit), nil, nil))
		C.free(unsafe.Pointer(cfn))
		if err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
	}
	return nil
}

// exits holds the status a store's component passed to wasi:cli/exit, by
// the store's context pointer, until its run collects it (takeExit).
var exits sync.Map // uintptr → int

// errExited is the message of the error that unwinds a component's stack
// when it exits; the status is in exits.
const errExited = "enarx: the component exited through wasi:cli/exit"

// enarxComponentExit implements wasi:cli/exit's exit and exit-with-code: it
// records the status for the store and ends the run with an error, as
// wasmtime's own exit does.
//
//export enarxComponentExit
func enarxComponentExit(data unsafe.Pointer, ctx *C.wasmtime_context_t, ty *C.wasmtime_component_func_type_t,
	args *C.wasmtime_component_val_t, nargs C.size_t, results *C.wasmtime_component_val_t, nresults C.size_t) *C.wasmtime_error_t {
	status := 1
	if nargs == 1 {
		switch args.kind {
		case C.WASMTIME_COMPONENT_RESULT:
			if *(*C.bool)(unsafe.Pointer(&args.of)) {
				status = 0
			}
		case C.WASMTIME_COMPONENT_U8:
			status = int(*(*C.uint8_t)(unsafe.Pointer(&args.of)))
		}
	}
	exits.Store(uintptr(unsafe.Pointer(ctx)), status)
	msg := C.CString(errExited)
	defer C.free(unsafe.Pointer(msg))
	return C.wasmtime_error_new(msg)
}

// takeExit returns and forgets the status the store's component exited
// with, if it did.
func (s *cStore) takeExit() (int, bool) {
	v, ok := exits.LoadAndDelete(uintptr(unsafe.Pointer(s.ctx)))
	if !ok {
		return 0, false
	}
	return v.(int), true
}

func (e *componentEngine) close() {
	if e.linker != nil {
		C.wasmtime_component_linker_delete(e.linker)
		e.linker = nil
	}
	if e.ptr != nil {
		C.wasm_engine_delete(e.ptr)
		e.ptr = nil
	}
}

// IncrementEpoch interrupts the component runs whose deadline is the next tick.
func (e *componentEngine) IncrementEpoch() { C.wasmtime_engine_increment_epoch(e.ptr) }

// cComponent is a compiled component.
type cComponent struct {
	ptr *C.wasmtime_component_t
}

func (e *componentEngine) compile(wasm []byte) (*cComponent, error) {
	var out *C.wasmtime_component_t
	err := takeError(C.wasmtime_component_new(e.ptr, (*C.uint8_t)(unsafe.Pointer(&wasm[0])), C.size_t(len(wasm)), &out))
	runtime.KeepAlive(wasm)
	if err != nil {
		return nil, err
	}
	return &cComponent{ptr: out}, nil
}

func (e *componentEngine) deserializeFile(path string) (*cComponent, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var out *C.wasmtime_component_t
	if err := takeError(C.wasmtime_component_deserialize_file(e.ptr, cpath, &out)); err != nil {
		return nil, err
	}
	return &cComponent{ptr: out}, nil
}

func (c *cComponent) serialize() ([]byte, error) {
	var vec C.wasm_byte_vec_t
	if err := takeError(C.wasmtime_component_serialize(c.ptr, &vec)); err != nil {
		return nil, err
	}
	defer C.wasm_byte_vec_delete(&vec)
	return C.GoBytes(unsafe.Pointer(vec.data), C.int(vec.size)), nil
}

func (c *cComponent) close() {
	if c.ptr != nil {
		C.wasmtime_component_delete(c.ptr)
		c.ptr = nil
	}
}

// exportIndex is a wasmtime_component_export_index_t.
type exportIndex struct {
	ptr *C.wasmtime_component_export_index_t
}

// exportIndex looks up the export name inside parent (nil: the component's
// top level). wasmtime matches a versioned name semver-compatibly: a lookup
// of "wasi:cli/run@0.2.0" finds a component's "wasi:cli/run@0.2.12".
func (c *cComponent) exportIndex(parent *exportIndex, name string) (*exportIndex, bool) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var p *C.wasmtime_component_export_index_t
	if parent != nil {
		p = parent.ptr
	}
	idx := C.wasmtime_component_get_export_index(c.ptr, p, cname, C.size_t(len(name)))
	if idx == nil {
		return nil, false
	}
	return &exportIndex{ptr: idx}, true
}

func (x *exportIndex) close() {
	if x != nil && x.ptr != nil {
		C.wasmtime_component_export_index_delete(x.ptr)
		x.ptr = nil
	}
}

// cStore is a wasmtime_store_t of the component engine, with its WASI.
type cStore struct {
	ptr *C.wasmtime_store_t
	ctx *C.wasmtime_context_t
}

func (e *componentEngine) newStore() *cStore {
	s := C.wasmtime_store_new(e.ptr, nil, nil)
	return &cStore{ptr: s, ctx: C.wasmtime_store_context(s)}
}

func (s *cStore) close() {
	if s.ptr != nil {
		s.takeExit()
		C.wasmtime_store_delete(s.ptr)
		s.ptr, s.ctx = nil, nil
	}
}

// limit caps each linear memory at memory bytes (-1: none) and each table
// at tableElements.
func (s *cStore) limit(memory, tableElements int64) {
	C.wasmtime_store_limiter(s.ptr, C.int64_t(memory), C.int64_t(tableElements), -1, -1, -1)
}

// SetEpochDeadline arms the store's epoch deadline, ticks from now.
func (s *cStore) SetEpochDeadline(ticks uint64) {
	C.wasmtime_context_set_epoch_deadline(s.ctx, C.uint64_t(ticks))
}

// wasiSpec is what a component's WASI is made of; its strings were checked
// by validateRunOptions (no NUL bytes).
type wasiSpec struct {
	args               []string
	envKeys, envValues []string
	preopens           []wasiPreopen
}

type wasiPreopen struct {
	host, guest string
	readOnly    bool
}

// cStrings is a C array of C strings, freed by free.
type cStrings struct {
	ptrs []*C.char
	arr  **C.char
}

func newCStrings(ss []string) *cStrings {
	cs := &cStrings{ptrs: make([]*C.char, len(ss))}
	if len(ss) == 0 {
		return cs
	}
	cs.arr = (**C.char)(C.malloc(C.size_t(len(ss)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	arr := unsafe.Slice(cs.arr, len(ss))
	for i, s := range ss {
		cs.ptrs[i] = C.CString(s)
		arr[i] = cs.ptrs[i]
	}
	return cs
}

func (cs *cStrings) free() {
	for _, p := range cs.ptrs {
		C.free(unsafe.Pointer(p))
	}
	if cs.arr != nil {
		C.free(unsafe.Pointer(cs.arr))
	}
}

// setWASI gives the store its WASI context: argv, environment, preopens
// and the process's stdio.
func (s *cStore) setWASI(spec wasiSpec) error {
	wasi := C.wasi_config_new()
	argv := newCStrings(spec.args)
	defer argv.free()
	if !C.wasi_config_set_argv(wasi, C.size_t(len(spec.args)), argv.arr) {
		C.wasi_config_delete(wasi)
		return errors.New("wasmtime: component WASI: arguments are not valid UTF-8")
	}
	keys, values := newCStrings(spec.envKeys), newCStrings(spec.envValues)
	defer keys.free()
	defer values.free()
	if !C.wasi_config_set_env(wasi, C.size_t(len(spec.envKeys)), keys.arr, values.arr) {
		C.wasi_config_delete(wasi)
		return errors.New("wasmtime: component WASI: environment is not valid UTF-8")
	}
	for _, p := range spec.preopens {
		dirPerms, filePerms := C.size_t(C.WASMTIME_WASI_DIR_PERMS_READ|C.WASMTIME_WASI_DIR_PERMS_WRITE), C.size_t(C.WASMTIME_WASI_FILE_PERMS_READ|C.WASMTIME_WASI_FILE_PERMS_WRITE)
		if p.readOnly {
			dirPerms, filePerms = C.WASMTIME_WASI_DIR_PERMS_READ, C.WASMTIME_WASI_FILE_PERMS_READ
		}
		host, guest := C.CString(p.host), C.CString(p.guest)
		ok := C.wasi_config_preopen_dir(wasi, host, guest, dirPerms, filePerms)
		C.free(unsafe.Pointer(host))
		C.free(unsafe.Pointer(guest))
		if !ok {
			C.wasi_config_delete(wasi)
			return fmt.Errorf("wasmtime: preopen %s at %s: cannot open it (is it a directory the Keep can read?)", p.host, p.guest)
		}
	}
	C.wasi_config_inherit_stdin(wasi)
	C.wasi_config_inherit_stdout(wasi)
	C.wasi_config_inherit_stderr(wasi)
	// The context takes the config over, even when it fails.
	if err := takeError(C.wasmtime_context_set_wasi(s.ctx, wasi)); err != nil {
		return fmt.Errorf("wasmtime: component WASI: %w", err)
	}
	return nil
}

// cInstance is an instance of a component in a store. Instances have no
// destructor: the store owns them.
type cInstance struct {
	inst  C.wasmtime_component_instance_t
	store *cStore
}

func (e *componentEngine) instantiate(s *cStore, c *cComponent) (*cInstance, error) {
	i := &cInstance{store: s}
	if err := takeError(C.wasmtime_component_linker_instantiate(e.linker, s.ctx, c.ptr, &i.inst)); err != nil {
		return nil, err
	}
	return i, nil
}

// callResult calls the exported function at idx, which takes no parameters
// and returns a `result` with no payloads (wasi:cli/run's run), and reports
// whether it returned ok.
func (i *cInstance) callResult(idx *exportIndex) (bool, error) {
	var fn C.wasmtime_component_func_t
	if !C.wasmtime_component_instance_get_func(&i.inst, i.store.ctx, idx.ptr, &fn) {
		return false, errors.New("the export is not a function")
	}
	var res C.wasmtime_component_val_t
	if err := takeError(C.wasmtime_component_func_call(&fn, i.store.ctx, nil, 0, &res, 1)); err != nil {
		return false, err
	}
	defer C.wasmtime_component_val_delete(&res)
	if res.kind != C.WASMTIME_COMPONENT_RESULT {
		return false, fmt.Errorf("the function returned a value of kind %d, not a result", res.kind)
	}
	ok := bool(*(*C.bool)(unsafe.Pointer(&res.of)))
	if err := takeError(C.wasmtime_component_func_post_return(&fn, i.store.ctx)); err != nil {
		return false, err
	}
	return ok, nil
}
