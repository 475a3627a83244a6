package attestation

import (
	"bytes"
	"context"
	"crypto/sha512"
	"fmt"
	"strings"
)

// RuntimeRTMR is the TDX runtime measurement register a Keep extends with
// its runtime digest. TDX firmware and the Linux boot path measure into
// RTMR0 to RTMR2 (firmware configuration, boot loader and kernel, command
// line and initrd); RTMR3 is left to software that runs later.
const RuntimeRTMR = 3

// RuntimeEventPrefix starts the event a Keep extends its RTMR with:
// RuntimeEventPrefix + "sha256:<hex>" of the runtime binary.
const RuntimeEventPrefix = "enarx-runtime "

// Bounds of an event log in evidence: a node runs a handful of runtime
// builds between two boots, each measured once.
const (
	MaxRuntimeEvents   = 64
	maxRuntimeEventLen = 256
)

// RuntimeEvent is one extension of a TDX runtime measurement register, as
// the event log in evidence records it: the register became
// SHA-384(register || SHA-384(Event)). A verifier replays the log and
// compares the result with the register in the hardware-signed quote, so
// the log needs no signature of its own.
type RuntimeEvent struct {
	// RTMR is the register's index, 2 or 3.
	RTMR int `json:"rtmr"`
	// Event is what was measured, e.g. RuntimeEventPrefix + digest.
	Event string `json:"event"`
}

// RuntimeEventFor returns the event that measures the runtime whose
// binary has the digest runtimeDigest ("sha256:<hex>") into RuntimeRTMR.
func RuntimeEventFor(runtimeDigest string) RuntimeEvent {
	return RuntimeEvent{RTMR: RuntimeRTMR, Event: RuntimeEventPrefix + runtimeDigest}
}

// Digest returns the SHA-384 of e.Event: what the register is extended
// with.
func (e RuntimeEvent) Digest() [48]byte {
	return sha512.Sum384([]byte(e.Event))
}

// check verifies that e is an event evidence may carry.
func (e RuntimeEvent) check() error {
	if e.RTMR != 2 && e.RTMR != 3 {
		return fmt.Errorf("rtmr %d: only RTMR2 and RTMR3 are extended at run time", e.RTMR)
	}
	if e.Event == "" || len(e.Event) > maxRuntimeEventLen {
		return fmt.Errorf("event of %d bytes: want 1 to %d", len(e.Event), maxRuntimeEventLen)
	}
	for _, r := range e.Event {
		if r < 0x20 || r > 0x7e {
			return fmt.Errorf("event %q: only printable ASCII", truncate(e.Event))
		}
	}
	return nil
}

// ReplayRTMR returns the value register rtmr holds after the events of log
// that name it, starting from zero, its value when the TD launched.
func ReplayRTMR(log []RuntimeEvent, rtmr int) [48]byte {
	var reg [48]byte
	for _, e := range log {
		if e.RTMR != rtmr {
			continue
		}
		d := e.Digest()
		reg = sha512.Sum384(append(reg[:], d[:]...))
	}
	return reg
}

// CheckRuntimeEvents checks log's structure (see RuntimeEvent) and that
// the registers it names hold, in rtmrs (the quote's RTMR0 to RTMR3), what
// the log replays to. It returns the runtime digests the log measured, in
// order.
func CheckRuntimeEvents(log []RuntimeEvent, rtmrs [][]byte) ([]string, error) {
	if len(log) > MaxRuntimeEvents {
		return nil, fmt.Errorf("event log of %d events, more than %d", len(log), MaxRuntimeEvents)
	}
	named := map[int]bool{}
	var runtimes []string
	for i, e := range log {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("event log[%d]: %w", i, err)
		}
		named[e.RTMR] = true
		if d, ok := strings.CutPrefix(e.Event, RuntimeEventPrefix); ok && e.RTMR == RuntimeRTMR {
			runtimes = append(runtimes, d)
		}
	}
	for _, r := range []int{2, 3} {
		if !named[r] {
			continue
		}
		if r >= len(rtmrs) {
			return nil, fmt.Errorf("the report has no RTMR%d", r)
		}
		if want := ReplayRTMR(log, r); !bytes.Equal(rtmrs[r], want[:]) {
			return nil, fmt.Errorf("RTMR%d is %x, the event log replays to %x", r, rtmrs[r], want)
		}
	}
	return runtimes, nil
}

// RuntimeMeasurer is a Provider that can measure the runtime into a
// hardware register at run time (TDX RTMR3 through configfs-tsm), so that
// the register in its reports, replayed from the event log, shows which
// runtime builds ran on the node since it booted.
type RuntimeMeasurer interface {
	// MeasureRuntime makes sure the register holds RuntimeEventFor
	// (runtimeDigest), extending it once per boot, and returns the event
	// log of the register; nil when the platform cannot measure at run
	// time.
	MeasureRuntime(ctx context.Context, runtimeDigest string) ([]RuntimeEvent, error)
}
