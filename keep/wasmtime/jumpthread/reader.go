package jumpthread

// reader decodes the binary format. Errors stick: after one, every read
// returns zero and err stays set.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || r.pos >= len(r.b) {
		r.err = errMalformed
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// leb reads an LEB128 of at most bits bits and returns its raw value and
// the number of bits read, for the signed readers to extend.
func (r *reader) leb(bits uint) (uint64, uint) {
	var v uint64
	var shift uint
	for {
		c := r.byte()
		if r.err != nil {
			return 0, 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v, shift
		}
		if shift >= bits {
			r.err = errMalformed
			return 0, 0
		}
	}
}

func (r *reader) u32() uint32 {
	v, _ := r.leb(32)
	if v > 1<<32-1 {
		r.err = errMalformed
		return 0
	}
	return uint32(v)
}

func (r *reader) signed(bits uint) int64 {
	v, shift := r.leb(bits)
	if shift < 64 && v&(1<<(shift-1)) != 0 {
		v |= ^uint64(0) << shift
	}
	return int64(v)
}

func (r *reader) s32() int64 { return r.signed(32) }

func (r *reader) skip(n int) {
	if r.err != nil || n > len(r.b)-r.pos {
		r.err = errMalformed
		return
	}
	r.pos += n
}

// Reference types that a heap type follows (the GC proposal's
// `ref null ht` and `ref ht`).
const (
	refNull = 0x63
	ref     = 0x64
)

// valType reads a value type.
func (r *reader) valType() {
	switch r.byte() {
	case refNull, ref:
		r.signed(33) // the heap type
	}
}

// blockType reads a block type and returns emptyType for the empty one,
// 0 for any other.
func (r *reader) blockType() byte {
	if r.err != nil || r.pos >= len(r.b) {
		r.err = errMalformed
		return 0
	}
	c := r.b[r.pos]
	switch {
	case c == emptyType:
		r.pos++
		return emptyType
	case c == refNull || c == ref:
		r.valType()
	case c >= 0x40 && c < 0x80:
		r.pos++ // a one-byte value type
	default:
		r.signed(33) // a type index
	}
	return 0
}

// memarg reads a memory access's alignment (with a memory index when its
// bit 6 is set, multi-memory) and offset.
func (r *reader) memarg() {
	align := r.u32()
	if align&(1<<6) != 0 {
		r.u32()
	}
	r.leb(64)
}

// skipImmediates reads the immediates of op, any opcode but those
// threadBody handles itself (blocks and branches among them), and returns
// false for an opcode it does not
// know: the function is then left as it is.
func (r *reader) skipImmediates(op byte) bool {
	switch {
	case op == 0x00 || op == 0x01 || op == 0x0f || op == 0x1a || op == 0x1b:
		// unreachable, nop, return, drop, select
	case op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15:
		// call, return_call, call_ref, return_call_ref
		r.u32()
	case op == 0x11 || op == 0x13:
		// call_indirect, return_call_indirect: type and table
		r.u32()
		r.u32()
	case op == 0x1c: // select with types
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.valType()
		}
	case op >= 0x20 && op <= 0x26:
		// local.get/set/tee, global.get/set, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x42:
		r.signed(64)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op >= 0x45 && op <= 0xc4: // numeric, sign extension
	case op == 0xd0: // ref.null
		r.signed(33)
	case op == 0xd1 || op == 0xd3 || op == 0xd4:
		// ref.is_null, ref.eq, ref.as_non_null
	case op == 0xd2: // ref.func
		r.u32()
	case op == 0xfc:
		return r.skipFC()
	case op == 0xfd:
		return r.skipSIMD()
	case op == 0xfe:
		return r.skipAtomic()
	default:
		// Exception handling, GC and anything newer.
		return false
	}
	return r.err == nil
}

// skipFC reads an 0xFC-prefixed instruction: saturating truncations, bulk
// memory and table instructions.
func (r *reader) skipFC() bool {
	sub := r.u32()
	switch {
	case sub <= 7: // trunc_sat
	case sub == 8 || sub == 10 || sub == 12 || sub == 14:
		// memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
		// data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		return false
	}
	return r.err == nil
}

// skipSIMD reads an 0xFD-prefixed (fixed-width SIMD) instruction.
func (r *reader) skipSIMD() bool {
	sub := r.u32()
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.skip(1)
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.skip(1)
	case sub <= 275: // the rest take no immediates (relaxed SIMD included)
	default:
		return false
	}
	return r.err == nil
}

// skipAtomic reads an 0xFE-prefixed (threads) instruction.
func (r *reader) skipAtomic() bool {
	sub := r.u32()
	switch {
	case sub == 3: // atomic.fence
		r.skip(1)
	case sub <= 2 || (sub >= 0x10 && sub <= 0x4e):
		r.memarg()
	default:
		return false
	}
	return r.err == nil
}
