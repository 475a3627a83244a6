package tdx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/rtmr"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// DefaultEventLog is where a node keeps the log of what Keeps measured
// into RuntimeRTMR. /run is a tmpfs: it starts empty at each boot, as the
// register starts at zero.
const DefaultEventLog = "/run/enarx/tdx-rtmr3.log"

// ConfigfsRTMRs is the configfs-tsm directory of the RTMR extension
// interface (go-configfs-tsm's rtmr package); kernels without it measure
// at launch only.
const ConfigfsRTMRs = "/sys/kernel/config/tsm/rtmrs"

// Measurer extends attestation.RuntimeRTMR with the runtime digest of the
// Keeps that start on the node, once per runtime build and boot, and keeps
// the event log that replays to the register. Keeps of the node share the
// log; a lock on it orders their extensions.
type Measurer struct {
	// Client reaches configfs-tsm: linuxtsm.MakeClient() on a node,
	// go-configfs-tsm's fakertmr in tests.
	Client configfsi.Client
	// Log is the event log's path, DefaultEventLog on a node.
	Log string
}

// MeasureRuntime implements attestation.RuntimeMeasurer. It refuses to
// extend a register whose value the log does not explain (another agent
// extends it), since its evidence could not be verified.
func (m *Measurer) MeasureRuntime(ctx context.Context, runtimeDigest string) ([]attestation.RuntimeEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(m.Log), 0o700); err != nil {
		return nil, fmt.Errorf("tdx: RTMR event log: %w", err)
	}
	f, err := os.OpenFile(m.Log, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tdx: RTMR event log: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("tdx: lock the RTMR event log %s: %w", m.Log, err)
	}
	events, err := readEventLog(f)
	if err != nil {
		return nil, fmt.Errorf("tdx: RTMR event log %s: %w", m.Log, err)
	}
	reg, err := rtmr.GetDigest(m.Client, attestation.RuntimeRTMR)
	if err != nil {
		return nil, fmt.Errorf("tdx: read RTMR%d: %w", attestation.RuntimeRTMR, err)
	}
	if replayed := attestation.ReplayRTMR(events, attestation.RuntimeRTMR); !bytes.Equal(reg.Digest, replayed[:]) {
		// A Keep that wrote its event and ended before extending leaves
		// one event too many: drop it.
		last := len(events) - 1
		var before [48]byte
		if last >= 0 {
			before = attestation.ReplayRTMR(events[:last], attestation.RuntimeRTMR)
		}
		if last < 0 || !bytes.Equal(reg.Digest, before[:]) {
			return nil, fmt.Errorf("tdx: RTMR%d is %x, but the event log %s replays to %x: something other than the enarx runtime extends it", attestation.RuntimeRTMR, reg.Digest, m.Log, replayed)
		}
		events = events[:last]
		if err := writeEventLog(f, events); err != nil {
			return nil, fmt.Errorf("tdx: RTMR event log %s: %w", m.Log, err)
		}
	}
	ev := attestation.RuntimeEventFor(runtimeDigest)
	if slices.Contains(events, ev) {
		return events, nil
	}
	if len(events) >= attestation.MaxRuntimeEvents {
		return nil, fmt.Errorf("tdx: the RTMR event log %s holds %d events, the most evidence carries: restart the node to measure another runtime", m.Log, len(events))
	}
	// The event is on disk before the register holds it: the repair above
	// covers an end between the two.
	events = append(events, ev)
	if err := writeEventLog(f, events); err != nil {
		return nil, fmt.Errorf("tdx: RTMR event log %s: %w", m.Log, err)
	}
	d := ev.Digest()
	if err := rtmr.ExtendDigest(m.Client, attestation.RuntimeRTMR, d[:]); err != nil {
		_ = writeEventLog(f, events[:len(events)-1])
		return nil, fmt.Errorf("tdx: extend RTMR%d: %w", attestation.RuntimeRTMR, err)
	}
	return events, nil
}

// readEventLog reads a log of one JSON RuntimeEvent per line.
func readEventLog(r io.ReadSeeker) ([]attestation.RuntimeEvent, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var events []attestation.RuntimeEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e attestation.RuntimeEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(events)+1, err)
		}
		events = append(events, e)
	}
	return events, sc.Err()
}

// writeEventLog replaces the log's content with events and syncs it.
func writeEventLog(f *os.File, events []attestation.RuntimeEvent) error {
	var b bytes.Buffer
	for _, e := range events {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b.Bytes(), 0); err != nil {
		return err
	}
	return f.Sync()
}

// rtmrsAvailable reports whether the kernel offers RTMR extension through
// configfs-tsm.
func rtmrsAvailable() bool {
	fi, err := os.Stat(ConfigfsRTMRs)
	return err == nil && fi.IsDir()
}
