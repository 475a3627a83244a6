package jumpthread

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/internal/wasmfixture"
)

// fixtures builds the Go programs the tests thread; TestMain removes them.
var fixtures wasmfixture.Cache

func TestMain(m *testing.M) {
	code := m.Run()
	if err := fixtures.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// watDispatch has functions shaped as Go's WebAssembly port makes them: a
// loop that begins with blocks and a br_table on a local, and jumps that
// set the local and branch back to the loop.
//
// $walk visits blocks 0, 1 and 2 in an order its arguments choose and
// returns a number that records the path; $forward does too, with forward
// jumps only, so that only its entry goes through its dispatch; $other has
// branches that must stay as they are.
const watDispatch = `(module
  (func $walk (export "walk") (param $pc i32) (param $x i32) (result i32)
    (local $acc i32)
    (loop $L
      (block $b2 (block $b1 (block $b0
        (br_table $b0 $b1 $b2 $b2 (local.get $pc)))
        ;; block 0: to block 2 when x > 5 (threaded, from inside an if),
        ;; to block 1 otherwise (threaded)
        (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 10)) (i32.const 1)))
        (if (i32.gt_s (local.get $x) (i32.const 5)) (then
          (i32.const 2) (local.set $pc) (br $L)))
        (i32.const 1) (local.set $pc) (br $L))
      ;; block 1: to block 2 through the default label (threaded)
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 10)) (i32.const 2)))
      (i32.const -1) (local.set $pc) (br $L))
    ;; block 2: back to block 0 while x > 0 (backward: not threaded)
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 10)) (i32.const 3)))
    (local.set $x (i32.sub (local.get $x) (i32.const 2)))
    (if (i32.gt_s (local.get $x) (i32.const 0)) (then
      (i32.const 0) (local.set $pc) (br $L))))
    (local.get $acc))

  (func $forward (export "forward") (param $pc i32) (param $x i32) (result i32)
    (local $acc i32)
    (loop $L
      (block $b2 (block $b1 (block $b0
        (br_table $b0 $b1 $b2 (local.get $pc)))
        ;; block 0: to block 2 when x > 0, to block 1 otherwise
        (local.set $acc (i32.const 1))
        (if (i32.gt_s (local.get $x) (i32.const 0)) (then
          (i32.const 2) (local.set $pc) (br $L)))
        (i32.const 1) (local.set $pc) (br $L))
      ;; block 1
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 10)) (i32.const 2))))
    ;; block 2
    (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 10)) (i32.const 3))))
    (local.get $acc))

  (func $other (export "other") (param $pc i32) (param $x i32) (result i32)
    (local $y i32)
    (block $out
      (loop $L
        (block $b1 (block $b0
          (br_table $b0 $b1 $out (local.get $pc)))
          ;; another local set before the branch: not threaded
          (if (i32.eqz (local.get $x)) (then
            (local.set $x (i32.const 2))
            (i32.const 1) (local.set $y) (br $L)))
          ;; a constant whose label is outside the loop: not threaded
          (if (i32.eq (local.get $x) (i32.const 1)) (then
            (local.set $x (i32.const 3))
            (i32.const 2) (local.set $pc) (br $L)))
          ;; something between local.set and br: not threaded
          (if (i32.eq (local.get $x) (i32.const 2)) (then
            (i32.const 1) (local.set $pc) (nop) (br $L)))
          (return (i32.const 100)))
        (return (i32.add (i32.const 200) (local.get $x)))))
    (i32.add (i32.const 300) (local.get $x))))`

func compile(t testing.TB, wat string) []byte {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// call runs an exported function of module with i32 arguments.
func call(t *testing.T, module []byte, name string, args ...any) int32 {
	t.Helper()
	return caller(t, wasmtime.NewEngine(), module, name)(args...)
}

// caller compiles module and returns a function that calls its export name
// with i32 arguments, each time in a new instance.
func caller(t *testing.T, engine *wasmtime.Engine, module []byte, name string) func(args ...any) int32 {
	t.Helper()
	mod, err := wasmtime.NewModule(engine, module)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return func(args ...any) int32 {
		t.Helper()
		store := wasmtime.NewStore(engine)
		defer store.Close()
		inst, err := wasmtime.NewInstance(store, mod, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := inst.GetFunc(store, name).Call(store, args...)
		if err != nil {
			t.Fatalf("%s%v: %v", name, args, err)
		}
		return v.(int32)
	}
}

func TestThreadKeepsResults(t *testing.T) {
	module := compile(t, watDispatch)
	threaded, n := Thread(module)
	// $walk's three forward jumps and $forward's two, none of $other's;
	// the test of $forward's dispatch, the only one no branch goes back
	// to.
	if n != 6 {
		t.Fatalf("rewrote %d branches and dispatches, want 6", n)
	}
	if len(threaded) != len(module)+5 {
		t.Fatalf("threading made the module %d bytes from %d, want a test of 5 bytes more", len(threaded), len(module))
	}
	for _, c := range []struct {
		name string
		a, b int32
		want int32
	}{
		{"walk", 0, 6, 13123123}, // 0→2, x=4: 0→1→2, x=2: 0→1→2, x=0
		{"walk", 0, 3, 123123},   // 0→1→2, x=1: 0→1→2
		{"walk", 0, -4, 123},     // 0→1→2 once
		{"walk", 1, 0, 23},       // entered at block 1
		{"walk", 2, 0, 3},        // entered at block 2
		{"walk", 7, 0, 3},        // the default label
		{"forward", 0, 1, 13},
		{"forward", 0, 0, 123},
		{"forward", 1, 0, 23},
		{"forward", 2, 5, 3},
		{"forward", 9, 0, 3},
		{"other", 0, 0, 202}, // y set, x = 2: block 0 again, then 1
		{"other", 0, 1, 303}, // x = 3, out of the loop
		{"other", 0, 2, 202}, // the nop: block 1
		{"other", 0, 5, 100},
		{"other", 1, 9, 209}, // entered at block 1
	} {
		got := call(t, threaded, c.name, c.a, c.b)
		orig := call(t, module, c.name, c.a, c.b)
		if got != orig {
			t.Errorf("%s(%d, %d) = %d threaded, %d as it came", c.name, c.a, c.b, got, orig)
		}
		if got != c.want {
			t.Errorf("%s(%d, %d) = %d, want %d", c.name, c.a, c.b, got, c.want)
		}
	}
	if again, n := Thread(threaded); n != 0 || !bytes.Equal(again, threaded) {
		t.Errorf("threading a threaded module rewrote %d more branches", n)
	}
}

// TestThreadInPlace threads a module with DWARF, whose code offsets must
// stay: the branches in place, the dispatches as they are.
func TestThreadInPlace(t *testing.T) {
	module := compile(t, watDispatch)
	name := ".debug_line"
	payload := []byte{1, 2, 3}
	custom := append([]byte{0, byte(1 + len(name) + len(payload)), byte(len(name))}, name...)
	module = append(append([]byte(nil), module...), append(custom, payload...)...)
	threaded, n := Thread(module)
	if n != 5 || len(threaded) != len(module) {
		t.Fatalf("rewrote %d, module %d bytes from %d; want the 5 branches in place", n, len(threaded), len(module))
	}
	for _, c := range [][]int32{{0, 6}, {0, 3}, {1, 0}, {7, 0}} {
		for _, name := range []string{"walk", "forward"} {
			if got, want := call(t, threaded, name, c[0], c[1]), call(t, module, name, c[0], c[1]); got != want {
				t.Errorf("%s%v = %d threaded, %d as it came", name, c, got, want)
			}
		}
	}
}

// TestThreadWideLabel threads a branch whose label index takes two bytes:
// the new, smaller index is written padded into both.
func TestThreadWideLabel(t *testing.T) {
	const depth = 140
	var wat strings.Builder
	wat.WriteString(`(module (func (export "f") (param $pc i32) (result i32) (loop $L (block $b1 (block $b0 (br_table $b0 $b1 (local.get $pc))) `)
	// Block 0 opens `depth` blocks and jumps to block 1 from inside them.
	wat.WriteString(strings.Repeat("(block ", depth))
	wat.WriteString(`(i32.const 1) (local.set $pc) (br $L)`)
	wat.WriteString(strings.Repeat(")", depth))
	wat.WriteString(`) (return (i32.const 1))) (i32.const 0)))`)
	module := compile(t, wat.String())
	threaded, n := Thread(module)
	if n != 2 {
		t.Fatalf("rewrote %d, want the branch and the dispatch", n)
	}
	// The branch to $L (index depth+1, two bytes) became one to $b1
	// (index depth): 0x0c, then depth as a two-byte LEB128.
	want := []byte{0x0c, depth&0x7f | 0x80, depth >> 7}
	old := []byte{0x0c, (depth+1)&0x7f | 0x80, (depth + 1) >> 7}
	if !bytes.Contains(module, old) || bytes.Contains(threaded, old) || !bytes.Contains(threaded, want) {
		t.Fatalf("the branch %x is not %x in the threaded module", old, want)
	}
	if got := call(t, threaded, "f", int32(0)); got != 1 {
		t.Fatalf("f(0) = %d, want 1", got)
	}
}

func TestPutPaddedLEB(t *testing.T) {
	for _, c := range []struct {
		v    uint32
		want []byte
	}{
		{0, []byte{0x00}},
		{5, []byte{0x85, 0x00}},
		{200, []byte{0xc8, 0x01}},
		{3, []byte{0x83, 0x80, 0x80, 0x80, 0x00}},
	} {
		b := make([]byte, len(c.want))
		putPaddedLEB(b, c.v)
		if !bytes.Equal(b, c.want) {
			t.Errorf("putPaddedLEB(%d) in %d bytes = %x, want %x", c.v, len(b), b, c.want)
		}
		r := reader{b: b}
		if got := r.u32(); got != c.v || r.pos != len(b) {
			t.Errorf("%x reads back as %d in %d bytes", b, got, r.pos)
		}
	}
}

// TestThreadLeavesAlone checks inputs Thread must return as they are.
func TestThreadLeavesAlone(t *testing.T) {
	module := compile(t, watDispatch)
	component := append([]byte("\x00asm\x0d\x00\x01\x00"), module[8:]...)
	cases := map[string][]byte{
		"empty":     nil,
		"not wasm":  []byte("#!/bin/sh\necho hello\n"),
		"component": component,
		"no code":   compile(t, `(module (memory 1))`),
	}
	engine := wasmtime.NewEngine()
	for i := 0; i < len(module); i += 7 {
		if wasmtime.ModuleValidate(engine, module[:i]) != nil { // not a cut between sections
			cases[fmt.Sprintf("cut at %d", i)] = module[:i]
		}
	}
	for name, in := range cases {
		out, n := Thread(in)
		if n != 0 || !bytes.Equal(out, in) {
			t.Errorf("%s: threaded %d branches, want the input as it is", name, n)
		}
	}
}

// TestThreadUnknownInstruction leaves a function with an instruction the
// package does not decode as it is, and threads the others.
func TestThreadUnknownInstruction(t *testing.T) {
	body := []byte{0x00, // no locals
		0x03, 0x40, 0x02, 0x40, 0x02, 0x40, 0x20, 0x00, 0x0e, 0x01, 0x00, 0x01, 0x0b, // loop, 2 blocks, br_table
		0x41, 0x01, 0x21, 0x00, 0x0c, 0x01, // i32.const 1, local.set 0, br $L
		0x0b, 0x0b, 0x0b}
	patches, inserts, ok := threadBody(body, 0)
	if !ok || len(patches) != 1 || patches[0].depth != 0 || patches[0].offset != 19 {
		t.Fatalf("threadBody = %+v, %t; want one patch of the label at 19 to 0", patches, ok)
	}
	// local.get 0, i32.eqz, br_if 0 (the table's label for 0), before
	// the local.get at 7.
	if len(inserts) != 1 || inserts[0].offset != 7 || !bytes.Equal(inserts[0].code, []byte{0x20, 0x00, 0x45, 0x0d, 0x00}) {
		t.Fatalf("threadBody inserts %+v, want the dispatch's test at 7", inserts)
	}
	for _, op := range []byte{0x06, 0x08, 0x1f, 0xfb} { // try, throw, try_table, GC
		unknown := append(append(append([]byte(nil), body[:14]...), op), body[14:]...)
		if patches, inserts, ok := threadBody(unknown, 0); ok || patches != nil || inserts != nil {
			t.Errorf("opcode %#x: threadBody = %+v, %+v, %t; want the function left as it is", op, patches, inserts, ok)
		}
	}
	// A body with bytes after its end.
	if _, _, ok := threadBody(append(append([]byte(nil), body...), 0x01), 0); ok {
		t.Error("threadBody decoded a body with a byte after its end")
	}
}

// TestThreadGoModule threads a Go program (the engine's fixture) and
// checks that wasmtime takes the result.
func TestThreadGoModule(t *testing.T) {
	module, err := os.ReadFile(fixtures.Wasm(t, "../testdata/hello"))
	if err != nil {
		t.Fatal(err)
	}
	threaded, n := Thread(module)
	if n < 1000 {
		t.Errorf("threaded %d branches of a Go hello, want thousands", n)
	}
	if err := wasmtime.ModuleValidate(wasmtime.NewEngine(), threaded); err != nil {
		t.Fatalf("the threaded Go module is not valid: %v", err)
	}
}

func BenchmarkThread(b *testing.B) {
	module, err := os.ReadFile(fixtures.Wasm(b, "../testdata/hello"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(module)))
	for b.Loop() {
		Thread(module)
	}
}

// FuzzThread checks that Thread never fails on any input, and keeps a valid
// module valid.
func FuzzThread(f *testing.F) {
	f.Add(compile(f, watDispatch))
	f.Add(compile(f, `(module (func (local i32) (loop $L (block (block (br_table 0 1 (local.get 0)))) (i32.const 1) (local.set 0) (br $L))))`))
	engine := wasmtime.NewEngine()
	f.Fuzz(func(t *testing.T, module []byte) {
		in := append([]byte(nil), module...)
		out, n := Thread(module)
		if !bytes.Equal(module, in) {
			t.Fatal("Thread modified its input")
		}
		if len(out) < len(module) || (n == 0 && !bytes.Equal(out, module)) {
			t.Fatalf("Thread returned %d bytes for %d, %d branches", len(out), len(module), n)
		}
		if n > 0 && wasmtime.ModuleValidate(engine, module) == nil {
			if err := wasmtime.ModuleValidate(engine, out); err != nil {
				t.Fatalf("the module is valid, the threaded one not: %v", err)
			}
		}
	})
}

// dispatchWAT builds, from arbitrary bytes, a function shaped as Go's are
// (see watDispatch) with jumps between its blocks that the bytes choose:
// forward and backward, through labels in and out of the table, from
// inside nested blocks and ifs, some with something between the local.set
// and the br. Fuel ends every path.
func dispatchWAT(seed []byte) string {
	next := func() int {
		if len(seed) == 0 {
			return 0
		}
		c := seed[0]
		seed = seed[1:]
		return int(c)
	}
	blocks := 1 + next()%6
	var w strings.Builder
	w.WriteString(`(module (func (export "f") (param $pc i32) (param $x i32) (result i32) (local $acc i32) (local $fuel i32) (local $y i32)
  (local.set $fuel (i32.const 50))
  (block $out (loop $L `)
	for i := blocks - 1; i >= 0; i-- {
		fmt.Fprintf(&w, "(block $b%d ", i)
	}
	w.WriteString("(br_table")
	for i, n := 0, next()%(blocks+2); i < n; i++ {
		fmt.Fprintf(&w, " %s", label(next(), blocks))
	}
	fmt.Fprintf(&w, " %s (local.get $pc))", label(next(), blocks))
	for i := 0; i < blocks; i++ {
		fmt.Fprintf(&w, `)
  ;; block %d
  (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (i32.const %d)))
  (local.set $fuel (i32.sub (local.get $fuel) (i32.const 1)))
  (if (i32.le_s (local.get $fuel) (i32.const 0)) (then (return (local.get $acc))))
`, i, i+1)
		for j, n := 0, next()%4; j < n; j++ {
			kind, target, nest := next(), next()-64, next()%3
			w.WriteString(strings.Repeat("(block ", nest))
			if kind&1 != 0 {
				fmt.Fprintf(&w, "(if (i32.and (i32.add (local.get $acc) (local.get $x)) (i32.const %d)) (then ", 1+kind>>4)
			}
			set := "$pc"
			if kind&2 != 0 {
				set = "$y"
			}
			between := ""
			if kind&4 != 0 {
				between = "(nop) "
			}
			fmt.Fprintf(&w, "(i32.const %d) (local.set %s) %s(br $L)", target, set, between)
			if kind&1 != 0 {
				w.WriteString("))")
			}
			w.WriteString(strings.Repeat(")", nest))
		}
	}
	w.WriteString(`(return (i32.add (local.get $acc) (local.get $y)))))
  (i32.sub (local.get $acc) (local.get $y))))`)
	return w.String()
}

// label names the label a br_table entry goes to: one of the dispatch's
// blocks, mostly, else the block around the loop. (Not the loop itself: the
// dispatch would spin, taking no fuel.)
func label(c, blocks int) string {
	if n := c % (blocks + 1); n < blocks {
		return fmt.Sprintf("$b%d", n)
	}
	return "$out"
}

// FuzzThreadDispatch runs functions of dispatchWAT's shape as they are and
// threaded, and checks that both return the same for the same arguments.
func FuzzThreadDispatch(f *testing.F) {
	f.Add([]byte{3, 4, 0, 1, 2, 2, 0, 2, 1, 66, 0, 1, 67, 1, 3, 5, 65, 2, 1, 2, 64, 0})
	f.Add([]byte{5, 7, 0, 1, 2, 3, 4, 5, 6, 3, 0, 70, 1, 1, 68, 2, 2, 65, 0, 3, 66, 1, 1, 64, 0, 2, 67, 2})
	engine := wasmtime.NewEngine()
	f.Fuzz(func(t *testing.T, seed []byte) {
		wat := dispatchWAT(seed)
		module, err := wasmtime.Wat2Wasm(wat)
		if err != nil {
			t.Fatalf("%v\n%s", err, wat)
		}
		threaded, n := Thread(module)
		if n == 0 {
			return
		}
		if err := wasmtime.ModuleValidate(engine, threaded); err != nil {
			t.Fatalf("threaded module not valid: %v\n%s", err, wat)
		}
		got, want := caller(t, engine, threaded, "f"), caller(t, engine, module, "f")
		for _, pc := range []int32{0, 1, 2, 5, -1} {
			for _, x := range []int32{0, 1, 6} {
				if got, want := got(pc, x), want(pc, x); got != want {
					t.Fatalf("f(%d, %d) = %d threaded, %d as it came\n%s", pc, x, got, want, wat)
				}
			}
		}
	})
}
