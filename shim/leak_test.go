package shim

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
)

// serviceFigures is what TestServiceNoLeaks watches of this process.
type serviceFigures struct {
	goroutines, fds int
	heap            uint64 // bytes in use after a GC
}

func measureService(t *testing.T) serviceFigures {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return serviceFigures{goroutines: runtime.NumGoroutine(), fds: len(entries), heap: ms.HeapInuse}
}

// TestServiceNoLeaks runs containers through the service again and again,
// each way a container's life goes (stdin and stdout through FIFOs, killed
// while running, deleted before it starts, a creation that fails), and
// checks that goroutines, file descriptors and heap come back to where
// they were: the long-lived shim of a pod serves thousands of containers.
// The end-to-end soak (test/load_test.go) sees the shim process from
// outside; this sees its goroutines.
func TestServiceNoLeaks(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cycles := []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"stdio", func(t *testing.T) error {
			r, out := h.stdinTask(t)
			writeStdin(t, r, "x\n")
			got := readStdout(t, out)
			out.Close() // containerd's end, not the shim's
			if got != "x\n" {
				return fmt.Errorf("stdout %q", got)
			}
			h.wait(t, r.ID)
			_, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID})
			return err
		}},
		{"killed", func(t *testing.T) error {
			r, _ := h.create(t, "spin")
			if _, err := h.svc.Start(ctx, &taskapi.StartRequest{ID: r.ID}); err != nil {
				return err
			}
			if _, err := h.svc.Kill(ctx, &taskapi.KillRequest{ID: r.ID, Signal: uint32(syscall.SIGTERM)}); err != nil {
				return err
			}
			if w := h.wait(t, r.ID); w.ExitStatus != 143 {
				return fmt.Errorf("status %d", w.ExitStatus)
			}
			_, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID})
			return err
		}},
		{"deleted-created", func(t *testing.T) error {
			r, _ := h.create(t, "exit 0")
			_, err := h.svc.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID})
			return err
		}},
		{"create-fails", func(t *testing.T) error {
			bundle, _ := newBundle(t, "compile-error")
			if _, err := h.svc.Create(ctx, &taskapi.CreateTaskRequest{ID: fmt.Sprintf("fails-%d", time.Now().UnixNano()), Bundle: bundle}); err == nil {
				return fmt.Errorf("Create of a module that does not compile succeeded")
			}
			return nil
		}},
	}
	round := func(t *testing.T) {
		for _, c := range cycles {
			if err := c.run(t); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		// What the fakes of containerd keep of every container is the
		// test's memory, not the shim's.
		h.events.mu.Lock()
		h.events.events, h.events.attestations = nil, nil
		h.events.mu.Unlock()
		h.containerd.mu.Lock()
		h.containerd.labels, h.containerd.ns = nil, nil
		h.containerd.mu.Unlock()
	}
	for i := 0; i < 3; i++ {
		round(t)
	}
	before := measureService(t)
	rounds := 40
	if n := os.Getenv("SHIM_LEAK_ROUNDS"); n != "" {
		fmt.Sscan(n, &rounds)
	}
	for i := 0; i < rounds; i++ {
		round(t)
	}
	// Goroutines that publish the last events and close the last control
	// sockets end a little after the calls return.
	var after serviceFigures
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = measureService(t)
		if (after.goroutines <= before.goroutines && after.fds <= before.fds) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after %d containers: goroutines %d -> %d, fds %d -> %d, heap in use %d -> %d KiB",
		rounds*len(cycles), before.goroutines, after.goroutines, before.fds, after.fds, before.heap>>10, after.heap>>10)
	if after.goroutines > before.goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after %d containers: a leak\n%s", before.goroutines, after.goroutines, rounds*len(cycles), buf[:runtime.Stack(buf, true)])
	}
	if after.fds > before.fds {
		t.Errorf("open files: %d before, %d after %d containers: a leak", before.fds, after.fds, rounds*len(cycles))
	}
	if after.heap > before.heap+4<<20 {
		t.Errorf("heap in use: %d KiB before, %d KiB after %d containers", before.heap>>10, after.heap>>10, rounds*len(cycles))
	}
}
