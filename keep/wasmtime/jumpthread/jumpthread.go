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
// Cranelift compiles that as written: every call enters through the
// br_table's bounds check and indirect jump, and every jump, forward ones
// too, goes back to the loop head and through it again. Thread does two
// things about it:
//
//   - A forward jump needs none of it, because the block the dispatch would
//     pick is still open where the jump is: `br` to that block lands in the
//     same place with the same locals. Thread rewrites such branches to do
//     so, in place: the new label index is written in the bytes the old one
//     took (a LEB128 may be padded, and the new index is the smaller).
//   - A call enters with the local at 0 (Go's resume point of a function's
//     start). Where no branch goes back to the loop once the forward ones
//     are threaded, so that calls are what goes through the dispatch,
//     Thread puts `local.get $x; i32.eqz; br_if` to the label the br_table
//     has for 0 before the br_table: a test and a branch the processor
//     predicts, where the br_table was a bounds check and an indirect jump.
//     (In a function with a loop, every turn would pay for the test: sha256
//     was 5 % slower with it.) This grows the code section, so it is left
//     out when a custom section refers to code offsets (DWARF, branch
//     hints): only the in-place rewrite is made then.
//
// Neither is specific to Go: they apply to any loop whose body begins with
// empty-typed blocks and a br_table on a local, and to a `br` to it right
// after that local was set to a constant; everything else is left as it
// is. A function is only changed when it was decoded to its last byte; a
// module this package cannot read, or a function with an instruction it
// does not know, is left unchanged.
package jumpthread

import (
	"encoding/binary"
	"errors"
	"sort"
	"strings"
)

// Version changes whenever Thread's output for some module does: native
// code compiled from a threaded module is cached under it.
const Version = 2

// Thread returns module with its branches through dispatch loops threaded
// and its dispatches' first entries tested first (see the package
// documentation), and the number of branches and dispatches it rewrote. It
// returns module itself when it rewrote none, a copy otherwise: module is
// never modified.
func Thread(module []byte) ([]byte, int) {
	l, ok := readLayout(module)
	if !ok {
		return module, 0
	}
	edits := make([]bodyEdits, len(l.bodies))
	count, inserted := 0, 0
	for i, b := range l.bodies {
		patches, inserts, ok := threadBody(module[b.start:b.end], b.start)
		if !ok {
			continue
		}
		if l.offsetsMatter {
			inserts = nil
		}
		e := bodyEdits{patches: patches, inserts: inserts}
		for _, in := range inserts {
			e.grow += len(in.code)
		}
		edits[i] = e
		count += len(patches) + len(inserts)
		inserted += e.grow
	}
	if count == 0 {
		return module, 0
	}
	if inserted == 0 {
		out := append([]byte(nil), module...)
		for _, e := range edits {
			e.patch(out, 0)
		}
		return out, count
	}
	// The code section grows: it is written anew, the sections around it
	// as they are.
	sizes := make([]int, len(l.bodies))
	codeSize := ulebLen(uint32(len(l.bodies)))
	for i, b := range l.bodies {
		sizes[i] = b.end - b.start + edits[i].grow
		codeSize += ulebLen(uint32(sizes[i])) + sizes[i]
	}
	out := make([]byte, 0, len(module)+inserted+len(l.bodies)+8)
	out = append(out, module[:l.codeStart]...)
	out = append(out, sectionCode)
	out = appendULEB(out, uint32(codeSize))
	out = appendULEB(out, uint32(len(l.bodies)))
	for i, b := range l.bodies {
		out = appendULEB(out, uint32(sizes[i]))
		out = edits[i].appendBody(out, module, b)
	}
	out = append(out, module[l.codeEnd:]...)
	return out, count
}

// bodyEdits are the changes Thread makes to one function body.
type bodyEdits struct {
	patches []patch
	inserts []insertion
	// grow is the bytes the inserts add.
	grow int
}

// patch writes the edits' patches into b, which holds the module's bytes
// from offset from on.
func (e bodyEdits) patch(b []byte, from int) {
	for _, p := range e.patches {
		putPaddedLEB(b[p.offset-from:p.offset-from+p.width], p.depth)
	}
}

// appendBody appends the body at b in module to out, with the edits made.
func (e bodyEdits) appendBody(out, module []byte, b span) []byte {
	start := len(out)
	at := b.start
	for _, in := range e.inserts {
		out = append(out, module[at:in.offset]...)
		out = append(out, in.code...)
		at = in.offset
	}
	out = append(out, module[at:b.end]...)
	for _, p := range e.patches {
		// The patch moved by the code inserted before it.
		moved := 0
		for _, in := range e.inserts {
			if in.offset <= p.offset {
				moved += len(in.code)
			}
		}
		o := start + p.offset - b.start + moved
		putPaddedLEB(out[o:o+p.width], p.depth)
	}
	return out
}

// span is a function body's bytes in the module: its locals and code.
type span struct{ start, end int }

// layout is where a module's code is.
type layout struct {
	bodies []span
	// codeStart is the code section's id byte, codeEnd the end of its
	// last body.
	codeStart, codeEnd int
	// offsetsMatter is set when a custom section refers to code offsets
	// (DWARF, branch hints): the code may not move.
	offsetsMatter bool
}

// Section ids this package looks at.
const (
	sectionCustom = 0
	sectionCode   = 10
)

// errMalformed stops decoding: the input is not what this package reads.
var errMalformed = errors.New("malformed")

// readLayout returns where a core module's code is, or false when module
// is not a core module this package can read to its end, or has no code.
func readLayout(module []byte) (layout, bool) {
	var l layout
	if len(module) < 8 || string(module[:4]) != "\x00asm" || binary.LittleEndian.Uint32(module[4:8]) != 1 {
		return l, false
	}
	r := reader{b: module, pos: 8}
	seen := false
	for r.pos < len(r.b) {
		start := r.pos
		id := r.byte()
		size := int(r.u32())
		if r.err != nil || size > len(r.b)-r.pos {
			return l, false
		}
		end := r.pos + size
		switch id {
		case sectionCustom:
			c := reader{b: module[:end], pos: r.pos}
			n := c.u32()
			if c.err != nil || uint64(n) > uint64(end-c.pos) {
				return l, false
			}
			name := string(module[c.pos : c.pos+int(n)])
			if strings.HasPrefix(name, ".debug_") || strings.HasPrefix(name, "metadata.code.") || strings.HasPrefix(name, "external_debug_info") || strings.HasPrefix(name, "sourceMappingURL") {
				l.offsetsMatter = true
			}
		case sectionCode:
			if seen {
				return l, false
			}
			seen = true
			l.codeStart, l.codeEnd = start, end
			n := r.u32()
			if r.err != nil || uint64(n) > uint64(size) {
				return l, false
			}
			l.bodies = make([]span, 0, n)
			for i := uint32(0); i < n; i++ {
				bsize := int(r.u32())
				if r.err != nil || bsize > end-r.pos {
					return l, false
				}
				l.bodies = append(l.bodies, span{r.pos, r.pos + bsize})
				r.pos += bsize
			}
			if r.pos != end {
				return l, false
			}
		}
		r.pos = end
	}
	// Every section's size added up to the module's: it is whole.
	return l, seen
}

// ulebLen is the length of v as an unsigned LEB128.
func ulebLen(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendULEB appends v as an unsigned LEB128.
func appendULEB(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// patch rewrites the label index of one `br`: width bytes at offset in the
// module get depth.
type patch struct {
	offset, width int
	depth         uint32
}

// insertion puts code before the byte at offset in the module.
type insertion struct {
	offset int
	code   []byte
}

// frame is an open block, loop or if of the function being decoded.
type frame struct {
	// serial tells frames that take the same place on the stack apart.
	serial int
	// dispatch is set on a loop that begins with a dispatch.
	dispatch *dispatch
	// branched is set when a branch that was not threaded goes to it.
	branched bool
}

// dispatch is what a loop's opening block...br_table says.
type dispatch struct {
	// getAt is the offset of its local.get in the function body.
	getAt int
	local uint32
	// blocks is the number of blocks the loop opens before the br_table;
	// firstSerial is the serial of the outermost of them, which the
	// following ones count up from.
	blocks      int
	firstSerial int
	labels      []uint32
	defaultL    uint32
}

// label returns the label the dispatch's br_table takes for index.
func (d *dispatch) label(index uint32) uint32 {
	if uint64(index) < uint64(len(d.labels)) {
		return d.labels[index]
	}
	return d.defaultL
}

// entryTest returns the code that takes the dispatch's first entry before
// its br_table: `local.get $x; i32.eqz; br_if` to the label of 0.
func (d *dispatch) entryTest() []byte {
	code := appendULEB([]byte{opLocalGet}, d.local)
	code = append(code, opI32Eqz, opBrIf)
	return appendULEB(code, d.label(0))
}

// instr is the little Thread remembers of a decoded instruction.
type instr struct {
	op  byte
	imm int64
}

// Opcodes this package looks at.
const (
	opBlock       = 0x02
	opLoop        = 0x03
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opBrTable     = 0x0e
	opBrOnNull    = 0xd5
	opBrOnNonNull = 0xd6
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opI32Const    = 0x41
	opI32Eqz      = 0x45
	emptyType     = 0x40
)

// threadBody decodes one function body (its locals and code; base is its
// offset in the module) and returns the patches that thread its branches
// and the insertions that test its dispatches' first entries, or false
// when it could not decode all of it.
func threadBody(body []byte, base int) ([]patch, []insertion, bool) {
	r := reader{b: body}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()
		r.valType()
	}
	if r.err != nil {
		return nil, nil, false
	}
	stack := []frame{{serial: 0}} // the function's own block
	serial := 1
	var patches []patch
	var inserts []insertion
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
			// The dispatch's test goes in where only the function's
			// entry, not a branch back to the loop, goes through it:
			// a loop's every turn would pay for it.
			f := stack[len(stack)-1]
			if d := f.dispatch; d != nil && !f.branched && uint64(d.label(0)) < uint64(d.blocks) {
				inserts = append(inserts, insertion{offset: base + d.getAt, code: d.entryTest()})
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				if r.pos != len(r.b) {
					return nil, nil, false
				}
				// Inner loops end first.
				sort.Slice(inserts, func(i, j int) bool { return inserts[i].offset < inserts[j].offset })
				return patches, inserts, true
			}
		case opBr:
			at := r.pos
			l := r.u32()
			width := r.pos - at
			if p, ok := thread(stack, l, prev); ok && r.err == nil {
				patches = append(patches, patch{offset: base + at, width: width, depth: p})
			} else {
				branchTo(stack, l)
			}
		case opBrIf, opBrOnNull, opBrOnNonNull:
			branchTo(stack, r.u32())
		case opBrTable:
			n := r.u32()
			for i := uint32(0); i <= n && r.err == nil; i++ {
				branchTo(stack, r.u32())
			}
		case opLocalSet:
			cur.imm = int64(r.u32())
		case opI32Const:
			cur.imm = r.s32()
		default:
			if !r.skipImmediates(op) {
				return nil, nil, false
			}
		}
		prev[0], prev[1] = prev[1], cur
	}
	return nil, nil, false
}

// branchTo marks the frame that label l at the top of stack names as one
// a branch goes to.
func branchTo(stack []frame, l uint32) {
	if top := len(stack) - 1; uint64(l) <= uint64(top) {
		stack[top-int(l)].branched = true
	}
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
	label := d.label(uint32(prev[0].imm)) // br_table reads its operand as unsigned
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
	getAt := p.pos
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
	return &dispatch{getAt: getAt, local: local, blocks: blocks, firstSerial: firstSerial, labels: labels, defaultL: def}
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
