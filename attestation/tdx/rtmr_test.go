package tdx

import (
	"bytes"
	"context"
	"crypto/sha512"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/fakertmr"
	"github.com/google/go-configfs-tsm/rtmr"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

func rtmr3(t *testing.T, m *Measurer) []byte {
	t.Helper()
	r, err := rtmr.GetDigest(m.Client, attestation.RuntimeRTMR)
	if err != nil {
		t.Fatal(err)
	}
	return r.Digest
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// TestMeasurer: each runtime is measured into RTMR3 once per boot, the log
// replays to the register, Keeps measuring at once serialise on the log,
// an event written but not extended is dropped, and a register something
// else extended is refused.
func TestMeasurer(t *testing.T) {
	ctx := context.Background()
	m := &Measurer{Client: fakertmr.CreateRtmrSubsystem(t.TempDir()), Log: filepath.Join(t.TempDir(), "enarx", "rtmr3.log")}

	log, err := m.MeasureRuntime(ctx, digest('a'))
	if err != nil {
		t.Fatal(err)
	}
	first := rtmr3(t, m)
	d := attestation.RuntimeEventFor(digest('a')).Digest()
	if want := sha512.Sum384(append(make([]byte, 48), d[:]...)); !bytes.Equal(first, want[:]) || len(log) != 1 {
		t.Fatalf("RTMR3 %x, log %+v; want %x after one event", first, log, want)
	}
	if _, err := m.MeasureRuntime(ctx, digest('a')); err != nil || !bytes.Equal(rtmr3(t, m), first) {
		t.Errorf("the same runtime again: %v, RTMR3 changed: %v", err, !bytes.Equal(rtmr3(t, m), first))
	}

	var wg sync.WaitGroup
	for _, c := range []byte("bcdb") {
		wg.Go(func() {
			if _, err := m.MeasureRuntime(ctx, digest(c)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	log, err = m.MeasureRuntime(ctx, digest('a'))
	if err != nil {
		t.Fatal(err)
	}
	if replay := attestation.ReplayRTMR(log, attestation.RuntimeRTMR); len(log) != 4 || !bytes.Equal(rtmr3(t, m), replay[:]) {
		t.Errorf("log %+v (want 4 runtimes) replays to %x, RTMR3 is %x", log, replay, rtmr3(t, m))
	}
	if runtimes, err := attestation.CheckRuntimeEvents(log, [][]byte{nil, nil, nil, rtmr3(t, m)}); err != nil || len(runtimes) != 4 {
		t.Errorf("CheckRuntimeEvents: %v, %v", runtimes, err)
	}

	// A Keep that wrote its event and ended before it extended.
	f, err := os.OpenFile(m.Log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"rtmr":3,"event":"enarx-runtime ` + digest('e') + `"}` + "\n")
	f.Close()
	if log, err := m.MeasureRuntime(ctx, digest('a')); err != nil || len(log) != 4 {
		t.Errorf("after an event never extended: %+v, %v; want it dropped", log, err)
	}

	// Something else extends RTMR3: the log no longer explains it.
	foreign := sha512.Sum384([]byte("another agent"))
	if err := rtmr.ExtendDigest(m.Client, attestation.RuntimeRTMR, foreign[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.MeasureRuntime(ctx, digest('f')); err == nil || !strings.Contains(err.Error(), "something other than the enarx runtime") {
		t.Errorf("RTMR3 extended by another agent: %v", err)
	}
}

// TestMeasurerBadLog: a log that is not one JSON event per line is named.
func TestMeasurerBadLog(t *testing.T) {
	m := &Measurer{Client: fakertmr.CreateRtmrSubsystem(t.TempDir()), Log: filepath.Join(t.TempDir(), "rtmr3.log")}
	if err := os.WriteFile(m.Log, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.MeasureRuntime(context.Background(), digest('a')); err == nil || !strings.Contains(err.Error(), m.Log) {
		t.Errorf("bad log: %v, want an error naming it", err)
	}
}
