// Package jumpthread threads branches through a dispatch loop in
// WebAssembly code before it is compiled.
//
// Go's WebAssembly port (GOOS=wasip1 and js) cannot jump between the basic
// blocks of a function directly: it wraps each function body in a loop that
// begins with a dispatch,
//
//	loop
//	  block block ... block
//	    local.get $PC_B
//	    br_table ...
//	  end
//	  ... the code of block 0 ...
//	  end
//	  ... the code of block 1 ...
//
// and a jump to another block sets the local and branches back to the loop:
//
//	i32.const 3
//	local.set $PC_B
//	br $loop
//
// Cranelift compiles that as written: every jump, forward ones too, goes
// back to the loop head and through the br_table's bounds check and indirect
// jump. A forward jump needs none of it, because the block the dispatch
// would pick is still open where the jump is: `br` to that block lands in
// the same place with the same locals. Thread rewrites such branches to do
// so. It is not specific to Go: it applies to any loop whose body begins
// with empty-typed blocks and a br_table on a local, reached by a `br`
// right after that local was set to a constant; everything else is left as
// it is.
//
// The rewrite is in place: the new label index is written in the bytes the
// old one took (a LEB128 may be padded, and the new index is the smaller),
// so that every code offset, and with it a trap's or a debugger's view of
// the module, stays as it was. A function is only changed when it was
// decoded to its last byte; a module this package cannot read, or a
// function with an instruction it does not know, is left unchanged.
package jumpthread

import (
	"encoding/binary"
	"errors"
)

// Version changes whenever Thread's output for some module does: native
// code compiled from a threaded module is cached under it.
const Version = 1

// Thread returns module with its branches through dispatch loops threaded
// (see the package documentation) and the number of branches it rewrote. It
// returns module itself when it rewrote none, a copy otherwise: module is
// never modified.
func Thread(module []byte) ([]byte, int) {
	bodies, ok := functionBodies(module)
	if !ok {
		return module, 0
	}
	var out []byte
	count := 0
	for _, b := range bodies {
		patches, ok := threadBody(module[b.start:b.end], b.start)
		if !ok || len(patches) == 0 {
			continue
		}
		if out == nil {
			out = append([]byte(nil), module...)
		}
		for _, p := range patches {
			putPaddedLEB(out[p.offset:p.offset+p.width], p.depth)
		}
		count += len(patches)
	}
	if out == nil {
		return module, 0
	}
	return out, count
}

// span is a function body's bytes in the module: its locals and code.
type span struct{ start, end int }

// errMalformed stops decoding: the input is not what this package reads.
var errMalformed = errors.New("malformed")

// functionBodies returns the function bodies of a core module's code
// section, or false when module is not a core module this package can read
// to its end, or has no code.
func functionBodies(module []byte) ([]span, bool) {
	if len(module) < 8 || string(module[:4]) != "\x00asm" || binary.LittleEndian.Uint32(module[4:8]) != 1 {
		return nil, false
	}
	r := reader{b: module, pos: 8}
	var bodies []span
	seen := false
	for r.pos < len(r.b) {
		id := r.byte()
		size := int(r.u32())
		if r.err != nil || size > len(r.b)-r.pos {
			return nil, false
		}
		end := r.pos + size
		if id != 10 {
			r.pos = end
			continue
		}
		if seen {
			return nil, false
		}
		seen = true
		n := r.u32()
		if r.err != nil || uint64(n) > uint64(size) {
			return nil, false
		}
		bodies = make([]span, 0, n)
		for i := uint32(0); i < n; i++ {
			bsize := int(r.u32())
			if r.err != nil || bsize > end-r.pos {
				return nil, false
			}
			bodies = append(bodies, span{r.pos, r.pos + bsize})
			r.pos += bsize
		}
		if r.pos != end {
			return nil, false
		}
	}
	// Every section's size added up to the module's: it is whole.
	return bodies, seen
}

// patch rewrites the label index of one `br`: width bytes at offset in the
// module get depth.
type patch struct {
	offset, width int
	depth         uint32
}

// frame is an open block, loop or if of the function being decoded.
type frame struct {
	// serial tells frames that take the same place on the stack apart.
	serial int
	// dispatch is set on a loop that begins with a dispatch.
	dispatch *dispatch
}

// dispatch is what a loop's opening block...br_table says.
type dispatch struct {
	local uint32
	// blocks is the number of blocks the loop opens before the br_table;
	// firstSerial is the serial of the outermost of them, which the
	// following ones count up from.
	blocks      int
	firstSerial int
	labels      []uint32
	defaultL    uint32
}

// instr is the little Thread remembers of a decoded instruction.
type instr struct {
	op  byte
	imm int64
}

// Opcodes this package looks at.
const (
	opBlock    = 0x02
	opLoop     = 0x03
	opIf       = 0x04
	opElse     = 0x05
	opEnd      = 0x0b
	opBr       = 0x0c
	opBrTable  = 0x0e
	opLocalGet = 0x20
	opLocalSet = 0x21
	opI32Const = 0x41
	emptyType  = 0x40
)

// threadBody decodes one function body (its locals and code; base is its
// offset in the module) and returns the patches that thread its branches,
// or false when it could not decode all of it.
func threadBody(body []byte, base int) ([]patch, bool) {
	r := reader{b: body}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, false
	}
	stack := []frame{{serial: 0}} // the function's own block
	serial := 1
	var patches []patch
	var prev [2]instr // the two instructions before this one, latest last
	for r.pos < len(r.b) && r.err == nil {
		op := r.byte()
		cur := instr{op: op}
		switch op {
		case opBlock, opIf:
			r.blockType()
			stack = append(stack, frame{serial: serial})
			serial++
		case opLoop:
			bt := r.blockType()
			f := frame{serial: serial}
			serial++
			if bt == emptyType {
				f.dispatch = r.peekDispatch(serial)
			}
			stack = append(stack, f)
		case opElse:
		case opEnd:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				if r.pos != len(r.b) {
					return nil, false
				}
				return patches, true
			}
		case opBr:
			at := r.pos
			l := r.u32()
			width := r.pos - at
			if p, ok := thread(stack, l, prev); ok && r.err == nil {
				patches = append(patches, patch{offset: base + at, width: width, depth: p})
			}
		case opLocalSet:
			cur.imm = int64(r.u32())
		case opI32Const:
			cur.imm = r.s32()
		default:
			if !r.skipImmediates(op) {
				return nil, false
			}
		}
		prev[0], prev[1] = prev[1], cur
	}
	return nil, false
}

// thread returns the label index a `br l` at the top of stack should have,
// preceded by prev, and true when it goes to a dispatch loop that the
// preceding `i32.const; local.set` settle and the block the dispatch would
// pick is still open.
func thread(stack []frame, l uint32, prev [2]instr) (uint32, bool) {
	top := len(stack) - 1
	if uint64(l) > uint64(top) {
		return 0, false
	}
	loopAt := top - int(l)
	d := stack[loopAt].dispatch
	if d == nil || prev[0].op != opI32Const || prev[1].op != opLocalSet || uint32(prev[1].imm) != d.local {
		return 0, false
	}
	index := uint32(prev[0].imm) // br_table reads its operand as unsigned
	label := d.defaultL
	if uint64(index) < uint64(len(d.labels)) {
		label = d.labels[index]
	}
	if uint64(label) >= uint64(d.blocks) {
		return 0, false // the loop itself or a label outside it
	}
	// At the br_table, label 0 is the innermost of the loop's blocks.
	nth := d.blocks - 1 - int(label)
	at := loopAt + 1 + nth
	if at > top || stack[at].serial != d.firstSerial+nth {
		return 0, false // that block has ended: the jump is backward
	}
	return uint32(top - at), true
}

// peekDispatch reports whether the code after a loop's block type begins
// with a dispatch (blocks of the empty type, local.get, br_table), without
// consuming it. firstSerial is the serial the first block will get.
func (r *reader) peekDispatch(firstSerial int) *dispatch {
	p := reader{b: r.b, pos: r.pos}
	blocks := 0
	for p.pos+1 < len(p.b) && p.b[p.pos] == opBlock && p.b[p.pos+1] == emptyType {
		p.pos += 2
		blocks++
	}
	if blocks == 0 || p.byte() != opLocalGet {
		return nil
	}
	local := p.u32()
	if p.byte() != opBrTable {
		return nil
	}
	n := p.u32()
	if p.err != nil || uint64(n) > uint64(len(p.b)-p.pos) {
		return nil
	}
	labels := make([]uint32, n)
	for i := range labels {
		labels[i] = p.u32()
	}
	def := p.u32()
	if p.err != nil {
		return nil
	}
	return &dispatch{local: local, blocks: blocks, firstSerial: firstSerial, labels: labels, defaultL: def}
}

// putPaddedLEB writes v as an unsigned LEB128 of exactly len(b) bytes.
func putPaddedLEB(b []byte, v uint32) {
	for i := range b {
		c := byte(v & 0x7f)
		v >>= 7
		if i < len(b)-1 {
			c |= 0x80
		}
		b[i] = c
	}
}
