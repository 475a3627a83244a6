package wasmtime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// minGrowthWindow is the smallest growthWindow: the Go runtime grows a
// wasm heap in arenas of 4 MiB, and an allocation fails once the next one
// no longer fits.
const minGrowthWindow = 4 << 20

// memoryLimit caps the linear memory of one run (engine.RunOptions.MemoryLimit)
// and recognises a run that failed because of the cap.
//
// wasmtime-go v39 only offers wasmtime's fixed store limiter: a memory.grow
// past the cap returns -1, but nothing tells the host that it did. The
// module then fails in its own way — the Go runtime prints "out of memory"
// and exits with status 2, Rust and C programs abort with a trap — so a
// failed run is attributed to the cap when one of the instance's exported
// memories ended within growthWindow of it: the next growth a module
// typically asks for (an allocator's arena, a large buffer) no longer fits.
// A module that asks for one huge growth far below the cap fails with its
// own message only.
type memoryLimit struct {
	// bytes is the cap; 0 means none.
	bytes int64
}

// MaxTableElements is the most elements a table of a run may have, whether
// or not its memory is capped: the limit V8 sets. wasmtime sets none, and a
// table is memory outside the linear memory that the cap does not see (8
// bytes an element): a module that grows a table in a loop would otherwise
// take all the memory of the node, or be killed by the kernel at the
// cgroup's limit without a word.
const MaxTableElements = 10_000_000

// tableElements is the most elements a table may have: MaxTableElements,
// and with a cap, no more than a 16th of the cap's bytes at 8 bytes an
// element (2 MiB of a 64 MiB cap): what the Keep's cgroup allows beyond
// the cap (host.MemoryHeadroom) then covers a module's table.
func (l memoryLimit) tableElements() int64 {
	if l.bytes > 0 {
		return min(MaxTableElements, max(l.bytes/16/8, 1))
	}
	return MaxTableElements
}

// apply installs the cap on store. It applies to each linear memory of the
// store (modules have one), and tableElements to each table; instance,
// table and memory counts keep wasmtime's defaults.
func (l memoryLimit) apply(store *wasmtime.Store) {
	memory := l.bytes
	if memory <= 0 {
		memory = -1
	}
	store.Limiter(memory, l.tableElements(), -1, -1, -1)
}

// growthWindow is how close to the cap a memory must have grown for a
// failure to be attributed to the cap: 1/16 of it, at least minGrowthWindow,
// and never more than half of it.
func (l memoryLimit) growthWindow() int64 {
	return min(max(l.bytes/16, minGrowthWindow), l.bytes/2)
}

// instantiateError turns the failure of instantiating a module whose
// initial memory is above the cap, or whose initial table is above
// tableElements, into an error that says so; it returns nil for any other
// failure.
func (l memoryLimit) instantiateError(err error) error {
	if err == nil {
		return nil
	}
	msg := errorText(err)
	// wasmtime: "table minimum size of N elements exceeds table limits".
	if strings.Contains(msg, "exceeds table limits") {
		return fmt.Errorf("wasmtime: instantiate module: %s: a table may have at most %d elements here (the runtime's cap of %d, lowered by a memory limit to a 16th of it at 8 bytes an element)",
			lastLine(msg), l.tableElements(), MaxTableElements)
	}
	// wasmtime: "memory minimum size of N pages exceeds memory limits".
	if l.bytes <= 0 || !strings.Contains(msg, "exceeds memory limits") {
		return nil
	}
	return l.exceeded("the module's initial memory is larger", lastLine(msg))
}

// explain passes a run's result through, unless the run failed (a trap or
// a non-zero exit status) with a memory at the cap: then it returns the
// cap's error.
func (l memoryLimit) explain(store *wasmtime.Store, inst *wasmtime.Instance, status int, err error) (int, error) {
	if l.bytes <= 0 || inst == nil {
		return status, err
	}
	var trap *engine.TrapError
	var cause string
	switch {
	case err == nil && status == 0:
		return status, err
	case err == nil:
		cause = fmt.Sprintf("the module exited with status %d", status)
	case errors.As(err, &trap):
		cause = trap.Message
	default:
		// Interrupted, or the host failed: not the module's memory.
		return status, err
	}
	used, ok := l.atCap(store, inst)
	if !ok {
		return status, err
	}
	return 0, l.exceeded(fmt.Sprintf("%d bytes in use, memory.grow refused", used), cause)
}

// atCap reports whether an exported memory of inst has grown to within
// growthWindow of the cap, and its size.
func (l memoryLimit) atCap(store *wasmtime.Store, inst *wasmtime.Instance) (int64, bool) {
	for _, ex := range inst.Exports(store) {
		mem := ex.Memory()
		if mem == nil {
			continue
		}
		if size := int64(mem.DataSize(store)); size+l.growthWindow() > l.bytes {
			return size, true
		}
	}
	return 0, false
}

// exceeded is the error of a run that needed more linear memory than the
// cap: what was in use, then what the module did about it. It is a trap
// marked OutOfMemory: the Keep ends as a process the kernel kills at its
// memory limit does (137, and the shim's OOM event).
func (l memoryLimit) exceeded(state, cause string) error {
	return &engine.TrapError{OutOfMemory: true, Message: fmt.Sprintf("memory limit %d bytes exceeded (%s); raise the container's memory limit "+
		"(docker run --memory, nerdctl run --memory, a pod's resources.limits.memory, ctr run --memory-limit, enarx run --memory): %s", l.bytes, state, cause)}
}

// lastLine is the last line of a wasmtime error: its cause, after the
// context wasmtime-go puts first.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[i+1:])
	}
	return s
}
