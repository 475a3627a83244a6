//go:build linux

package wasmtime

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// TestTouchedAndPopulate: a run reports the pages of its memory it wrote
// (Touched), within the memory and page-aligned; a run given them
// (Populate) ends as one without them does, and faults fewer pages in.
func TestTouchedAndPopulate(t *testing.T) {
	m := goModuleWith(t, "testdata/hello", KeepOptions())
	// Page faults taken as exceptions (the perf software event counts
	// those, unlike getrusage, which counts MADV_POPULATE_WRITE's too), of
	// this thread, which runs the module (a cgo call) and its host calls.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	faultsFD, err := unix.PerfEventOpen(&unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_PAGE_FAULTS,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
	}, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		faultsFD = -1
		t.Logf("no page fault counter (%v): the fault counts are not checked", err)
	} else {
		defer unix.Close(faultsFD)
	}
	count := func() int64 {
		if faultsFD < 0 {
			return 0
		}
		var b [8]byte
		if _, err := unix.Read(faultsFD, b[:]); err != nil {
			t.Fatalf("read the page fault counter: %v", err)
		}
		return int64(*(*uint64)(unsafe.Pointer(&b[0])))
	}
	run := func(opts engine.RunOptions) (status int, faults int64) {
		t.Helper()
		before := count()
		status, err := m.Run(context.Background(), opts)
		after := count()
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return status, after - before
	}
	base := engine.RunOptions{Args: []string{"hello"}, Env: []string{"EXIT_CODE=7"}}

	var touched []engine.MemoryRange
	calls := 0
	opts := base
	opts.Touched = func(r []engine.MemoryRange) { touched, calls = r, calls+1 }
	if status, _ := run(opts); status != 7 {
		t.Fatalf("status %d, want 7", status)
	}
	if calls != 1 || len(touched) == 0 {
		t.Fatalf("Touched called %d times with %d ranges, want once with some", calls, len(touched))
	}
	pages := uint64(0)
	for i, r := range touched {
		if r.Offset%osPage != 0 || r.Length == 0 || r.Length%osPage != 0 || r.Offset+r.Length > maxProfiled {
			t.Fatalf("range %d %+v: not whole pages within the profiled memory", i, r)
		}
		if i > 0 && r.Offset <= touched[i-1].Offset+touched[i-1].Length {
			t.Fatalf("ranges %d and %d %+v %+v: not sorted and apart", i-1, i, touched[i-1], r)
		}
		pages += r.Length / osPage
	}

	// Each in turn, so that what the process has mapped by then is the
	// same for both.
	var plain, populated []int64
	for i := 0; i < 3; i++ {
		_, f := run(base)
		plain = append(plain, f)
		opts := base
		opts.Populate = touched
		status, f := run(opts)
		if status != 7 {
			t.Fatalf("populated run: status %d, want 7", status)
		}
		populated = append(populated, f)
	}
	least := func(v []int64) int64 { return min(v[0], v[1], v[2]) }
	if faultsFD >= 0 && least(populated)+int64(pages)/2 > least(plain) {
		t.Errorf("populated runs faulted %v pages, plain runs %v: want at least %d fewer (half the %d populated)", populated, plain, pages/2, pages)
	}
	t.Logf("%d pages in %d ranges; faults plain %v, populated %v", pages, len(touched), plain, populated)

	// Ranges past the memory, empty or wrapping around are left out.
	opts = base
	opts.Populate = []engine.MemoryRange{{Offset: 1 << 40, Length: osPage}, {Offset: osPage, Length: 0}, {Offset: ^uint64(0) - 10, Length: 100}}
	if status, _ := run(opts); status != 7 {
		t.Fatalf("run with ranges out of the memory: status %d, want 7", status)
	}
}

// watInputBoundary writes a page, asks for random numbers (which tell it
// nothing of its container), writes another, asks for its arguments'
// sizes (which do), and writes a third; with EXIT it also exits first.
const watInputBoundary = `(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (func (export "_start")
    (i32.store (i32.const 0x10000) (i32.const 1))
    (drop (call $random (i32.const 0x11000) (i32.const 8)))
    (i32.store (i32.const 0x20000) (i32.const 2))
    (drop (call $args (i32.const 0x21000) (i32.const 0x21004)))
    (i32.store (i32.const 0x30000) (i32.const 3))))`

// TestTouchedBeforeInput: what a run reports is what it wrote before its
// first host call that tells it something of its container, so that no
// container's inputs reach another's run; a run that makes none reports
// all it wrote.
func TestTouchedBeforeInput(t *testing.T) {
	e, err := NewWithOptions(KeepOptions())
	if err != nil {
		t.Fatal(err)
	}
	covers := func(rs []engine.MemoryRange, off uint64) bool {
		for _, r := range rs {
			if off >= r.Offset && off < r.Offset+r.Length {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		name, wat string
		want      map[uint64]bool
	}{
		{"input at the end", watInputBoundary, map[uint64]bool{0x10000: true, 0x20000: true, 0x30000: false}},
		{"no input", strings.Replace(watInputBoundary, `(drop (call $args (i32.const 0x21000) (i32.const 0x21004)))`, "", 1),
			map[uint64]bool{0x10000: true, 0x20000: true, 0x30000: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileWAT(t, e, tc.wat)
			var got []engine.MemoryRange
			calls := 0
			status, err := m.Run(context.Background(), engine.RunOptions{Args: []string{"w"}, Touched: func(r []engine.MemoryRange) { got, calls = r, calls+1 }})
			if err != nil || status != 0 || calls != 1 {
				t.Fatalf("Run = %d, %v; Touched called %d times, want 0, nil, once", status, err, calls)
			}
			for off, want := range tc.want {
				if covers(got, off) != want {
					t.Errorf("page at %#x reported: %t, want %t (ranges %+v)", off, !want, want, got)
				}
			}
		})
	}
}
