//go:build linux

package hostwasi

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
)

// TestTrampolineCAPILayout compiles a C check of trampoline.go's copied
// declarations against wasmtime's own headers (in wasmtime-go's module
// directory): the raw value and the extern, read by offset, must be laid
// out as wasmtime lays them out.
func TestTrampolineCAPILayout(t *testing.T) {
	if unsafe.Sizeof(rawVal{}) != sizeofRaw {
		t.Fatalf("rawVal is %d bytes, hostwasi_raw_t %d", unsafe.Sizeof(rawVal{}), sizeofRaw)
	}
	asserts := fmt.Sprintf(`_Static_assert(sizeof(wasmtime_val_raw_t) == %d, "wasmtime_val_raw_t");
_Static_assert(offsetof(wasmtime_extern_t, of) == 8, "wasmtime_extern_t.of");
_Static_assert(sizeof(wasmtime_extern_t) <= %d, "wasmtime_extern_t");
_Static_assert(_Alignof(wasmtime_extern_t) <= 8, "wasmtime_extern_t alignment");
_Static_assert(WASMTIME_EXTERN_MEMORY == %d, "WASMTIME_EXTERN_MEMORY");
_Static_assert(WASM_I32 == %d && WASM_I64 == %d, "wasm_valkind_t");
_Static_assert(sizeof(wasm_valkind_t) == 1, "wasm_valkind_t size");
_Static_assert(sizeof(wasm_valtype_vec_t) == 2 * sizeof(void *), "wasm_valtype_vec_t");
`, sizeofRaw, sizeofExtern, externMemory, valKindI32, valKindI64)
	wasmfixture.CheckWasmtimeHeaders(t, "trampoline.go", asserts)
}
