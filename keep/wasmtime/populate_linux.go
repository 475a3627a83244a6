package wasmtime

import (
	"encoding/binary"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// A page fault costs 11-15 µs on the CI machine class (a guest whose
// every exception goes through its hypervisor), and making a page present
// with MADV_POPULATE_WRITE about 1 µs: a Go program's start writes some 150
// pages of its linear memory, one fault each, the same ones every run. A
// run is given the pages an earlier run of its module wrote
// (engine.RunOptions.Populate, from Touched) and makes them present in a
// few system calls before the module's code runs.

const (
	osPage = 4096
	// maxProfiled is how much of a memory, from its start, Touched looks
	// at: the pages a program's start writes are at the bottom of its
	// memory, and the page map of a large memory is large (8 bytes a
	// page).
	maxProfiled = 64 << 20
)

// openPageMap opens this process's page map, which Touched reads after the
// run: before the run, since a Keep's seccomp filter allows no open then.
func openPageMap() *os.File {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	return f
}

// populate makes the pages of mem in ranges present and writable, as the
// module's own writes would, without a fault each (MADV_POPULATE_WRITE,
// Linux 5.14). Ranges are clipped to mem; a kernel that refuses stops it.
func populate(mem []byte, ranges []engine.MemoryRange) {
	for i, r := range ranges {
		if i == engine.MaxMemoryRanges {
			return
		}
		start := r.Offset &^ (osPage - 1)
		end := min(r.Offset+r.Length, uint64(len(mem)))
		if r.Length == 0 || r.Offset+r.Length < r.Offset || start >= end {
			continue
		}
		if err := unix.Madvise(mem[start:end], unix.MADV_POPULATE_WRITE); err != nil {
			return
		}
	}
}

// Page map entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent   = 1 << 63
	pmFile      = 1 << 61 // a file page, or shared anonymous
	pmExclusive = 1 << 56 // mapped by this process only
)

// touchedRanges reports the pages of mem (the first maxProfiled bytes) that
// this process wrote: present, anonymous and its own, which a page of the
// memory becomes on the first write to it, whether it was zero or a copy of
// the module's data (a page only read stays the file's, or the shared zero
// page). nil when the page map cannot be read.
func touchedRanges(pageMap *os.File, mem []byte) []engine.MemoryRange {
	if pageMap == nil || len(mem) == 0 {
		return nil
	}
	n := min(len(mem), maxProfiled) / osPage
	buf := make([]byte, n*8)
	first := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))) / osPage
	if got, err := pageMap.ReadAt(buf, int64(first*8)); err != nil || got != len(buf) {
		return nil
	}
	var out []engine.MemoryRange
	for i := 0; i < n; i++ {
		e := binary.LittleEndian.Uint64(buf[i*8:])
		if e&pmPresent == 0 || e&pmFile != 0 || e&pmExclusive == 0 {
			continue
		}
		off := uint64(i) * osPage
		if k := len(out) - 1; k >= 0 && out[k].Offset+out[k].Length == off {
			out[k].Length += osPage
			continue
		}
		if len(out) == engine.MaxMemoryRanges {
			break
		}
		out = append(out, engine.MemoryRange{Offset: off, Length: osPage})
	}
	return out
}
