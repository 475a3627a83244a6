package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// watGrowThen grows its memory one page at a time until memory.grow
// returns -1, then runs the instructions growModule puts at THEN.
const watGrowThen = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (block $refused
      (loop $grow
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $grow)))
    THEN))`

// growModule is watGrowThen ending with then.
func growModule(then string) string { return strings.Replace(watGrowThen, "THEN", then, 1) }

func TestMemoryLimit(t *testing.T) {
	const limit = 1 << 20 // 16 pages
	e := newEngine(t)
	for _, tc := range []struct {
		name  string
		wat   string
		limit int64
		// wantStatus is checked when wantErr is empty.
		wantStatus int
		// wantErr lists what the *engine.TrapError's message must contain.
		wantErr []string
	}{
		{
			// The cap is exact: the module gets 16 pages and no more.
			name:  "grow up to the cap and return",
			wat:   growModule(`(if (i32.ne (memory.size) (i32.const 16)) (then (call $exit (i32.const 1))))`),
			limit: limit,
		},
		{
			name:    "trap after a refused grow",
			wat:     growModule(`unreachable`),
			limit:   limit,
			wantErr: []string{"memory limit 1048576 bytes exceeded", "1048576 bytes in use", "unreachable"},
		},
		{
			name:    "exit after a refused grow",
			wat:     growModule(`(call $exit (i32.const 2))`),
			limit:   limit,
			wantErr: []string{"memory limit 1048576 bytes exceeded", "exited with status 2"},
		},
		{
			name: "initial memory above the cap",
			wat: `(module
			  (memory (export "memory") 32)
			  (func (export "_start")))`,
			limit:   limit,
			wantErr: []string{"memory limit 1048576 bytes exceeded", "initial memory"},
		},
		{
			// Far below the cap, a trap is the module's own.
			name:    "trap below the cap",
			wat:     watUnreachable,
			limit:   64 << 20,
			wantErr: []string{"unreachable"},
		},
		{
			name:       "exit below the cap",
			wat:        watExit42,
			limit:      64 << 20,
			wantStatus: 42,
		},
		{
			// Without a cap, growing stops at wasm32's 4 GiB; a bounded
			// loop shows that nothing small stops it.
			name: "no cap",
			wat: `(module
			  (memory (export "memory") 1)
			  (func (export "_start")
			    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))))`,
		},
	} {
		for _, withSocket := range []bool{false, true} {
			name, opts := tc.name, engine.RunOptions{MemoryLimit: tc.limit}
			if withSocket {
				// hostwasi's WASI instead of wasmtime's: the cap is the store's.
				sock, _ := listenSocket(t, "web")
				name, opts.Sockets = name+"/with a socket", []engine.Socket{sock}
			}
			t.Run(name, func(t *testing.T) {
				m := compileWAT(t, e, tc.wat)
				status, err := m.Run(context.Background(), opts)
				if len(tc.wantErr) == 0 {
					if err != nil || status != tc.wantStatus {
						t.Fatalf("Run = %d, %v; want %d, nil", status, err, tc.wantStatus)
					}
					return
				}
				var trap *engine.TrapError
				if !errors.As(err, &trap) {
					t.Fatalf("Run = %d, %v; want a *engine.TrapError", status, err)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(trap.Message, want) {
						t.Errorf("trap message %q does not contain %q", trap.Message, want)
					}
				}
				if strings.Contains(trap.Message, "memory limit") != strings.Contains(tc.wantErr[0], "memory limit") {
					t.Errorf("trap message %q: attributed to the cap wrongly", trap.Message)
				}
			})
		}
	}
}

func TestMemoryLimitGrowthWindow(t *testing.T) {
	for _, tc := range []struct{ limit, want int64 }{
		{1 << 20, 512 << 10},      // half of a tiny cap
		{64 << 20, 4 << 20},       // the Go runtime's arena
		{1 << 30, (1 << 30) / 16}, // 1/16 of a large one
	} {
		if got := (memoryLimit{bytes: tc.limit}).growthWindow(); got != tc.want {
			t.Errorf("growthWindow(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestMemoryLimitGo runs a Go program that allocates until it runs out: the
// Go runtime exits with status 2 when memory.grow is refused, and Run turns
// that into the cap's error.
func TestMemoryLimitGo(t *testing.T) {
	wasm := fixtures.Wasm(t, "../../test/fixtures/alloc")
	t.Run("allocate until refused", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{Args: []string{"alloc"}, MemoryLimit: 32 << 20}, "")
		if r.status != helperFailure {
			t.Fatalf("exit status %d, want the helper's failure %d; stderr: %s", r.status, helperFailure, r.stderr)
		}
		if !strings.Contains(r.stderr, "helper: wasm trap: memory limit 33554432 bytes exceeded") {
			t.Errorf("stderr does not report the memory limit:\n%s", r.stderr)
		}
		if !strings.Contains(r.stdout, "allocated 20 MiB") {
			t.Errorf("the module stopped early:\n%s", r.stdout)
		}
	})
	t.Run("allocate within the cap", func(t *testing.T) {
		t.Parallel()
		r := runChild(t, wasm, engine.RunOptions{Args: []string{"alloc", "8"}, MemoryLimit: 32 << 20}, "")
		if r.status != 0 || !strings.Contains(r.stdout, "done, holding 8 blocks") {
			t.Fatalf("exit status %d, want 0\nstdout: %s\nstderr: %s", r.status, r.stdout, r.stderr)
		}
	})
}

// watTableGrow grows its table by 100,000 elements until table.grow
// returns -1, then exits with status 0 when the table has exactly WANT
// elements, 1 otherwise.
const watTableGrow = `(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (table 1 funcref)
  (func (export "_start")
    (loop $grow
      (br_if $grow (i32.ne (table.grow (ref.null func) (i32.const 100000)) (i32.const -1))))
    (if (i32.lt_u (table.size) (i32.sub (i32.const WANT) (i32.const 100000))) (then (call $exit (i32.const 1))))
    (if (i32.gt_u (table.size) (i32.const WANT)) (then (call $exit (i32.const 1))))))`

// TestTableLimit checks that tables are capped, with or without a memory
// limit: a table is memory the linear memory's cap does not see, and
// wasmtime sets no cap of its own, so a module growing one in a loop would
// take the node's memory.
func TestTableLimit(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name  string
		limit int64
		want  int64
	}{
		{"no memory limit", 0, MaxTableElements},
		{"memory limit 16 MiB", 16 << 20, (16 << 20) / 16 / 8},
	} {
		t.Run("grow/"+tc.name, func(t *testing.T) {
			m := compileWAT(t, e, strings.Replace(watTableGrow, "WANT", fmt.Sprint(tc.want), 2))
			if status, err := m.Run(context.Background(), engine.RunOptions{MemoryLimit: tc.limit}); status != 0 || err != nil {
				t.Errorf("Run = %d, %v; want the table capped near %d elements (0, nil)", status, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		elements int64
		limit    int64
		want     string
	}{
		{"above the cap", MaxTableElements + 1, 0, "at most 10000000 elements"},
		{"above the memory limit's", 200_000, 16 << 20, "at most 131072 elements"},
		{"wasm32's largest", 1<<32 - 1, 0, "table minimum size of 4294967295 elements exceeds table limits"},
	} {
		t.Run("declared/"+tc.name, func(t *testing.T) {
			m := compileWAT(t, e, fmt.Sprintf(`(module (table %d funcref) (func (export "_start")))`, tc.elements))
			_, err := m.Run(context.Background(), engine.RunOptions{MemoryLimit: tc.limit})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("table minimum size of %d elements", tc.elements)) {
				t.Errorf("Run: %v; want an error saying %q", err, tc.want)
			}
		})
	}
}
