package test

// Hostile workloads (issue 8): each is contained, ends with a clear status
// and message, and leaves the node — the shim, its other containers, the
// daemon's disk — unharmed. What other tests already cover is referenced,
// not repeated: a busy loop stopped by SIGTERM (TestKill), a Go program
// allocating past its memory limit (TestResources), "..", absolute paths and
// symbolic links of the image leading out of the preopens (TestFilesEscape).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/keep/host"
)

// Bounds the hostile tests assert.
const (
	// maxShimRSS is the most resident memory a shim may have, in KiB,
	// whatever its containers do (it idles at about 12 MiB).
	maxShimRSS = 100 << 10
	// maxDiskGrowth is how much the daemon's root and state directories
	// may grow, in bytes, while a workload floods its stdout.
	maxDiskGrowth = 16 << 20
	// defaultFloodMiB is what the flood fixture writes to its stdout
	// unless HOSTILE_FLOOD_MIB says otherwise.
	defaultFloodMiB = 2048
	envFloodMiB     = "HOSTILE_FLOOD_MIB"
)

// groupOpt is the `ctr run` option that puts a container in group's shim.
func groupOpt(group string) []string {
	return []string{"--annotation", annotationSandboxID + "=" + group}
}

// procStatusKiB reads a "Name: N kB" (or a plain count) field of
// /proc/PID/status: VmRSS, VmHWM, Threads.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// openFDs counts the open file descriptors of pid.
func openFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// shimServing returns the PID of our shim server serving group (the
// container ID, or the pod's sandbox ID), 0 if there is none.
func shimServing(group string) int {
	for _, p := range findProcesses("-id " + group + " ") {
		if strings.Contains(p.Cmdline, serverBinary) && strings.HasSuffix(p.Cmdline, " serve") {
			return p.PID
		}
	}
	return 0
}

// keepOf returns the PID of the Keep of container id, 0 if there is none:
// the process the shim started as a Keep of id (host.IsProcessOf; a Keep
// started ahead has a flag after its ID), not a pod's sandbox.
func keepOf(id string) int {
	for _, p := range findProcesses(" keep -id " + id) {
		if host.IsProcessOf(p.PID, id) && !strings.HasSuffix(p.Cmdline, " -pause") {
			return p.PID
		}
	}
	return 0
}

// peakSampler calls sample every interval until stopped, and keeps the
// largest value each key reached.
type peakSampler struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	peak  map[string]int64
	n     int
}

func startSampler(interval time.Duration, sample func(record func(key string, v int64))) *peakSampler {
	s := &peakSampler{stopc: make(chan struct{}), done: make(chan struct{}), peak: map[string]int64{}}
	record := func(key string, v int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if old, ok := s.peak[key]; !ok || v > old {
			s.peak[key] = v
		}
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			sample(record)
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peaks and the number of samples.
func (s *peakSampler) stop() (map[string]int64, int) {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.n
}

// diskUsage is the space the files under dirs take, in bytes, without
// crossing into other file systems (a container's mounted root filesystem).
func diskUsage(dirs ...string) int64 {
	var total int64
	for _, dir := range dirs {
		var st syscall.Stat_t
		if syscall.Lstat(dir, &st) != nil {
			continue
		}
		dev := st.Dev
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			var st syscall.Stat_t
			if syscall.Lstat(path, &st) != nil {
				return nil
			}
			if st.Dev != dev {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			total += st.Blocks * 512
			return nil
		})
	}
	return total
}

// ctrStdoutDiscarded runs ctr with its stdout on /dev/null (a flood would
// fill a buffer), and returns its stderr and exit status.
func ctrStdoutDiscarded(t *testing.T, d *Daemon, ns string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Ctr, append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	began := time.Now()
	err := cmd.Run()
	t.Logf("%s: ctr -n %s %s (stdout discarded): %v in %v", d.Name, ns, strings.Join(args, " "), err, time.Since(began).Round(time.Millisecond))
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s: ctr %s: timed out after %v\nstderr: %s", d.Name, strings.Join(args, " "), timeout, tailLines(stderr.String(), 20))
	case errors.As(err, &ee):
		return stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: ctr %s: %v", d.Name, strings.Join(args, " "), err)
	}
	return stderr.String(), 0
}

// TestHostileWorkloadLoop runs a module that spins forever next to a
// sleeping container in the same shim (a pod's): SIGTERM stops it within
// the grace with 143 (TestKill covers this alone), the shim's memory stays
// bounded, and its neighbour keeps running.
func TestHostileWorkloadLoop(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		sleepRef := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		loopRef := importWasmImage(t, d, ns, "docker.io/enarx-test/loop-wat:latest", buildWat(t, "loop"), false)
		group := uniqueID("hostile-pod")
		neighbour := uniqueID("neighbour")
		d.mustCtr(t, ns, append(append([]string{"run", "-d", "--runtime", runtimeEnarx}, groupOpt(group)...), sleepRef, neighbour, "/app.wasm", "1h")...)
		waitStatus(t, d, ns, neighbour, "RUNNING")
		shim := shimServing(group)
		if shim == 0 {
			t.Fatalf("no shim serves group %s", group)
		}

		id := uniqueID("loop")
		var exit int
		var stderr string
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, stderr, exit = runWasm(t, d, ns, groupOpt(group), loopRef, id)
		}()
		waitStatus(t, d, ns, id, "RUNNING")
		if k := keepOf(id); k == 0 || parentPID(k) != shim {
			t.Fatalf("the loop's Keep (pid %d) is not a child of the group's shim %d", k, shim)
		}
		sampler := startSampler(20*time.Millisecond, func(record func(string, int64)) {
			if rss, err := procStatusKiB(shim, "VmRSS"); err == nil {
				record("shim", rss)
			}
		})
		time.Sleep(time.Second) // a second of spinning
		began := time.Now()
		d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGTERM", id)
		<-done
		stopped := time.Since(began)
		peak, _ := sampler.stop()
		t.Logf("SIGTERM to the end of ctr run: %v; shim peak RSS %d KiB", stopped.Round(time.Millisecond), peak["shim"])
		if exit != 143 {
			t.Errorf("loop: exit %d, want 143; stderr: %s", exit, stderr)
		}
		// The Keep exits 50 ms after the signal (its grace); the rest
		// is ctr's and containerd's round trip.
		if stopped > 5*time.Second {
			t.Errorf("the loop took %v to stop after SIGTERM", stopped)
		}
		if peak["shim"] == 0 || peak["shim"] > maxShimRSS {
			t.Errorf("shim peak RSS %d KiB, want (0, %d]", peak["shim"], maxShimRSS)
		}
		if got := taskStatus(t, d, ns, neighbour); got != "RUNNING" {
			t.Errorf("the neighbour is %s after the loop was killed, want RUNNING", got)
		}
		if got := shimServing(group); got != shim {
			t.Errorf("the group's shim is now %d, want %d still", got, shim)
		}
		assertNoLeftovers(t, id)

		d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGKILL", neighbour)
		waitStatus(t, d, ns, neighbour, "STOPPED")
		d.mustCtr(t, ns, "tasks", "rm", neighbour)
		d.mustCtr(t, ns, "containers", "rm", neighbour)
		assertNoLeftovers(t, group)
		assertNoLeftovers(t, neighbour)
	})
}

// cgroupMemory reads the memory figures of a container's cgroup, in bytes:
// its kernel limit and the peak usage (v1: memory.max_usage_in_bytes; v2:
// memory.peak where the kernel has it, else the current usage).
func cgroupMemory(path string) (limit, peak int64, err error) {
	dir := cgroupDir(path)
	read := func(name string) (int64, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 1 << 62, nil
		}
		return strconv.ParseInt(s, 10, 64)
	}
	if _, err := os.Stat(filepath.Join(dir, "memory.max")); err == nil {
		if limit, err = read("memory.max"); err != nil {
			return 0, 0, err
		}
		if peak, err = read("memory.peak"); err != nil {
			peak, err = read("memory.current")
		}
		return limit, peak, err
	}
	if limit, err = read("memory.limit_in_bytes"); err != nil {
		return 0, 0, err
	}
	peak, err = read("memory.max_usage_in_bytes")
	return limit, peak, err
}

// watMemoryBomb grows its memory one page at a time, writing to each new
// page, until memory.grow is refused, then writes past the end: a trap.
const watMemoryBomb = `(module
  (memory (export "memory") 1)
  (func (export "_start") (local $page i32)
    (loop $grow
      (local.set $page (memory.grow (i32.const 1)))
      (if (i32.ne (local.get $page) (i32.const -1))
        (then
          (i32.store (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1))
          (br $grow))))
    (i32.store (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))))`

// watTableBomb grows a table 100,000 elements at a time until table.grow
// is refused, then traps.
const watTableBomb = `(module
  (memory (export "memory") 1)
  (table 1 funcref)
  (func (export "_start")
    (loop $grow
      (br_if $grow (i32.ne (table.grow (ref.null func) (i32.const 100000)) (i32.const -1))))
    unreachable))`

// watMultiMemoryBomb fills four memories, each up to the engine's cap,
// writing to every 4 KiB page: each is within the cap, together they are
// four times it, more than the kernel's limit of the Keep's cgroup.
var watMultiMemoryBomb = func() string {
	var b strings.Builder
	b.WriteString("(module\n  (memory (export \"memory\") 1) (memory $m1 1) (memory $m2 1) (memory $m3 1)\n")
	b.WriteString("  (func (export \"_start\") (local $p i32) (local $a i32)\n")
	for m := 0; m < 4; m++ {
		fmt.Fprintf(&b, `    (loop $grow%[1]d
      (local.set $p (memory.grow %[1]d (i32.const 1)))
      (if (i32.ne (local.get $p) (i32.const -1))
        (then
          (local.set $a (i32.mul (local.get $p) (i32.const 65536)))
          (loop $touch%[1]d
            (i32.store %[1]d (local.get $a) (i32.const 1))
            (local.set $a (i32.add (local.get $a) (i32.const 4096)))
            (br_if $touch%[1]d (i32.rem_u (local.get $a) (i32.const 65536))))
          (br $grow%[1]d))))
`, m)
	}
	b.WriteString("))")
	return b.String()
}()

// writeWat translates WAT text to a module in dir and returns its path.
func writeWat(t *testing.T, dir, name, text string) string {
	t.Helper()
	wasm, err := wasmtime.Wat2Wasm(text)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p := filepath.Join(dir, name+".wasm")
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileWorkloadMemoryBomb runs modules that take all the memory
// they can under `ctr run --memory-limit` (TestResources covers a Go
// program doing so): each ends with a clear status and message, the kernel
// limit of the Keep's cgroup holds, and the shim's memory stays bounded.
//
//   - growing the linear memory: refused at the limit, 137 and "memory
//     limit N bytes exceeded", and the shim publishes /tasks/oom as for
//     an OOM kill;
//   - growing a table: refused at its cap (a 16th of the limit), 134 and the
//     trap;
//   - filling four memories (multi-memory), each within the limit: the
//     kernel kills the Keep at its cgroup's limit, 137, and the shim
//     publishes /tasks/oom (the CRI plugin's OOMKilled).
func TestHostileWorkloadMemoryBomb(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, wasm string
		status     int
		stderr     []string
		oom        bool
	}{
		{"memory-grow", writeWat(t, dir, "memory-bomb", watMemoryBomb), 137,
			[]string{"memory limit " + strconv.Itoa(memoryLimit) + " bytes exceeded", "memory.grow refused", "docker run --memory"}, true},
		{"table-grow", writeWat(t, dir, "table-bomb", watTableBomb), 134, []string{"unreachable"}, false},
		{"multi-memory", writeWat(t, dir, "multi-memory-bomb", watMultiMemoryBomb), 137, nil, true},
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ref := importWasmImage(t, d, ns, "docker.io/enarx-test/"+c.name+":latest", c.wasm, false)
				id := uniqueID("bomb")
				events := watchEvents(t, d, ns)
				cgroup := "/" + ns + "/" + id
				var shim int
				sampler := startSampler(20*time.Millisecond, func(record func(string, int64)) {
					if _, peak, err := cgroupMemory(cgroup); err == nil {
						record("peak", peak)
					}
					if shim == 0 {
						shim = shimServing(id)
					}
					if rss, err := procStatusKiB(shim, "VmRSS"); shim != 0 && err == nil {
						record("shim", rss)
					}
				})
				// Detached, so that the stopped task keeps its cgroup until
				// it is deleted: its limit is read then, not raced.
				logFile := filepath.Join(t.TempDir(), id+".log")
				began := time.Now()
				runKeep(t, d, ns, "", []string{"--memory-limit", strconv.Itoa(memoryLimit), "--log-uri", "file://" + logFile}, ref, id)
				waitStatus(t, d, ns, id, "STOPPED")
				took := time.Since(began)
				peak, n := sampler.stop()
				limit, final, err := cgroupMemory(cgroup)
				if err != nil {
					t.Fatalf("the stopped task's cgroup %s: %v", cgroup, err)
				}
				peak["limit"], peak["peak"] = limit, max(peak["peak"], final)
				exit := deleteTask(t, d, ns, id)
				d.mustCtr(t, ns, "containers", "rm", id)
				logged, _ := os.ReadFile(logFile)
				stderr := string(logged)
				t.Logf("exit %d in %v; cgroup limit %d, peak usage %d bytes; shim peak RSS %d KiB (%d samples); stderr: %s",
					exit, took.Round(time.Millisecond), peak["limit"], peak["peak"], peak["shim"], n, tailLines(stderr, 3))
				if exit != c.status {
					t.Errorf("exit %d, want %d; stderr: %s", exit, c.status, tailLines(stderr, 10))
				}
				for _, w := range c.stderr {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr does not say %q: %s", w, tailLines(stderr, 10))
					}
				}
				// The kernel's limit: the container's, what the Keep used
				// before its workload ran (a few tens of MiB for a WAT
				// module) and the headroom; the usage never above it.
				if peak["limit"] < memoryLimit || peak["limit"] > memoryLimit+256<<20 {
					t.Errorf("cgroup memory limit %d bytes, want a little above %d", peak["limit"], memoryLimit)
				}
				if peak["peak"] > peak["limit"] {
					t.Errorf("cgroup peak usage %d bytes above its limit %d", peak["peak"], peak["limit"])
				}
				if peak["shim"] > maxShimRSS {
					t.Errorf("shim peak RSS %d KiB, want at most %d", peak["shim"], maxShimRSS)
				}
				if got := events.seen(id, TopicOOM, 5*time.Second, c.oom); got != c.oom {
					t.Errorf("/tasks/oom published: %v, want %v\n%s", got, c.oom, events.String())
				}
				assertNoLeftovers(t, id)
				assertNoTaskState(t, d, ns, id)
			})
		}
	})
}

// TopicOOM is the topic of the event containerd's shims publish when the
// kernel killed a container for want of memory.
const TopicOOM = "/tasks/oom"

// String is everything the watch printed so far.
func (w *eventWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// seen reports whether an event of topic naming id has been printed,
// waiting up to wait for it when want is true (and as long for a /tasks/delete
// of id otherwise, after which nothing more comes).
func (w *eventWatch) seen(id, topic string, wait time.Duration, want bool) bool {
	deadline := time.Now().Add(wait)
	for {
		found, deleted := false, false
		for _, line := range readLines(w.String()) {
			if strings.Contains(line, id) {
				found = found || strings.Contains(line, " "+topic+" ")
				deleted = deleted || strings.Contains(line, " /tasks/delete ")
			}
		}
		if found || (!want && deleted) || time.Now().After(deadline) {
			return found
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostileWorkloadStdoutFlood runs a module that writes 2 GiB
// (HOSTILE_FLOOD_MIB) to its stdout as fast as it can, through `ctr run` whose own stdout is
// discarded: it completes, the shim's memory stays bounded (the Keep
// writes into the container's FIFO itself; the shim copies nothing), and
// nothing is written under the daemon's root or state directories. A flood
// whose reader is gone (`ctr run -d`: nobody reads the FIFO) blocks, and is
// still stopped by SIGTERM.
func TestHostileWorkloadStdoutFlood(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/flood:latest", buildGoWasm(t, "flood"), false)
		floodMiB := envInt(t, envFloodMiB, defaultFloodMiB)

		t.Run("read", func(t *testing.T) {
			id := uniqueID("flood")
			diskBefore := diskUsage(d.Root, d.State)
			var shim, keepPID int
			sampler := startSampler(100*time.Millisecond, func(record func(string, int64)) {
				if shim == 0 {
					shim = shimServing(id)
				}
				if keepPID == 0 {
					keepPID = keepOf(id)
				}
				if rss, err := procStatusKiB(shim, "VmRSS"); shim != 0 && err == nil {
					record("shim", rss)
				}
				if rss, err := procStatusKiB(keepPID, "VmRSS"); keepPID != 0 && err == nil {
					record("keep", rss)
				}
				record("disk", diskUsage(d.Root, d.State)-diskBefore)
			})
			began := time.Now()
			stderr, exit := ctrStdoutDiscarded(t, d, ns, 10*time.Minute, "run", "--rm", "--runtime", runtimeEnarx, ref, id, "/app.wasm", strconv.Itoa(floodMiB))
			took := time.Since(began)
			peak, n := sampler.stop()
			t.Logf("%d MiB in %v (%.0f MiB/s); peak RSS: shim %d KiB, Keep %d KiB; disk growth %d bytes (%d samples)",
				floodMiB, took.Round(time.Millisecond), float64(floodMiB)/took.Seconds(), peak["shim"], peak["keep"], peak["disk"], n)
			if exit != 0 || !strings.Contains(stderr, fmt.Sprintf("flood: wrote %d MiB", floodMiB)) {
				t.Errorf("exit %d, stderr %q; want 0 and the fixture's summary", exit, tailLines(stderr, 5))
			}
			if peak["shim"] == 0 || peak["shim"] > maxShimRSS {
				t.Errorf("shim peak RSS %d KiB, want (0, %d]", peak["shim"], maxShimRSS)
			}
			if peak["disk"] > maxDiskGrowth {
				t.Errorf("the daemon's directories grew by %d bytes during the flood, want at most %d", peak["disk"], maxDiskGrowth)
			}
			assertNoLeftovers(t, id)
			assertNoTaskState(t, d, ns, id)
		})

		t.Run("no-reader", func(t *testing.T) {
			id := uniqueID("flood")
			d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", strconv.Itoa(floodMiB))
			waitStatus(t, d, ns, id, "RUNNING")
			time.Sleep(500 * time.Millisecond) // the FIFO fills, the write blocks
			if shim := shimServing(id); shim != 0 {
				if rss, err := procStatusKiB(shim, "VmRSS"); err != nil || rss > maxShimRSS {
					t.Errorf("shim RSS %d KiB (%v), want at most %d", rss, err, maxShimRSS)
				}
			}
			began := time.Now()
			d.mustCtr(t, ns, "tasks", "kill", id)
			waitStatus(t, d, ns, id, "STOPPED")
			t.Logf("a flood blocked on its stdout: SIGTERM to STOPPED in %v", time.Since(began).Round(time.Millisecond))
			_, stderr, exit := d.ctr(t, ns, "tasks", "rm", id)
			if exit != 0 || !strings.Contains(stderr, "exit code 143") {
				t.Errorf("tasks rm: exit %d, stderr %q; want a warning of the status 143", exit, stderr)
			}
			d.mustCtr(t, ns, "containers", "rm", id)
			assertNoLeftovers(t, id)
		})
	})
}

// TestHostileWorkloadFileEscape has the workload make its own ways out of
// its preopens, where TestFilesEscape tries the image's: symbolic links it
// creates (absolute, and relative ones that lead to a real host file beside
// its mount), then follows to read and write; hard links to a file outside.
// Every attempt fails, and the host's file is neither read, written nor
// linked.
func TestHostileWorkloadFileEscape(t *testing.T) {
	base := t.TempDir()
	secret := "host secret " + randomHex(8)
	secretPath := filepath.Join(base, "secret")
	writeHostFile(t, secretPath, secret)
	shared := filepath.Join(base, "shared")
	out := filepath.Join(base, "out")
	for _, dir := range []string{shared, out} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeHostFile(t, filepath.Join(shared, "a.txt"), "shared")
	up := strings.Repeat("../", 20)
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-escape:latest")
		mounts := []string{
			"--mount", "type=bind,src=" + shared + ",dst=/data,options=rbind:ro",
			"--mount", "type=bind,src=" + out + ",dst=/out,options=rbind:rw",
		}
		n := randomHex(3)
		links := map[string]string{
			"/out/abs-" + n:     secretPath,          // the host path
			"/out/rel-" + n:     "../secret",         // beside the mount on the host; /secret in the container
			"/out/etc-" + n:     "/etc",              // the root of the host
			"/out/up-" + n:      up + "etc",          // far above the mount
			"/scratch-up-" + n:  up + "etc",          // in the root filesystem
			"/scratch-sec-" + n: up + secretPath[1:], // the same, to the host file
		}
		// Create every link (whether the runtime allows creating it does
		// not matter), then use each to read, write and hard link.
		args := []string{"/app.wasm"}
		through := map[string][]string{} // link -> what uses it
		var attempts []string
		for link, target := range links {
			args = append(args, "symlink", target, link)
			through[link] = []string{"read " + link, "write " + link + " pwned", "append " + link + " pwned", "link " + link + "/x " + link + "-hard"}
			attempts = append(attempts, through[link]...)
		}
		attempts = append(attempts,
			"read /out/etc-"+n+"/hostname", "ls /out/etc-"+n, "ls /out/up-"+n,
			"link /data/../secret /out/hard-"+n, "link /out/../secret /out/hard2-"+n,
			"openat 3 out/etc-"+n+"/hostname",
		)
		for _, a := range attempts {
			args = append(args, strings.Fields(a)...)
		}
		args = append(args, "read", "/data/a.txt")
		stdout, stderr, exit := runWasm(t, d, ns, mounts, ref, uniqueID("escape"), args...)
		if exit != 3 {
			t.Errorf("exit %d, want 3 (attempts failed); stderr: %s", exit, stderr)
		}
		got := probeResults(stdout)
		// What goes through a link the runtime refused to create acts on
		// a path of the mount (a write creates a file there): only the
		// links it created must lead nowhere.
		want := map[string]string{"read /data/a.txt": "ok: shared"}
		created := 0
		for link, target := range links {
			result := got["symlink "+target+" "+link]
			t.Logf("symlink %s -> %s: %s", link, target, result)
			if link == "/out/rel-"+n {
				// In the container's view ../secret from /out is the
				// container's /secret, which its process may write as
				// runc's may: what matters is that the host's secret
				// beside the mount is not reached (checked below).
				for _, a := range through[link] {
					delete(want, strings.TrimSuffix(a, " pwned"))
				}
				continue
			}
			if !strings.HasPrefix(result, "ok") {
				for _, a := range through[link] {
					delete(want, strings.TrimSuffix(a, " pwned"))
				}
				continue
			}
			created++
			for _, a := range through[link] {
				want[strings.TrimSuffix(a, " pwned")] = "error"
			}
		}
		for _, a := range attempts[len(links)*4:] {
			want[a] = "error"
		}
		if created == 0 {
			t.Errorf("the workload could create none of its links: nothing was tried\n%s", stdout)
		}
		expectProbe(t, stdout, stderr, want)
		if strings.Contains(stdout, secret) {
			t.Errorf("the workload read the host's secret:\n%s", stdout)
		}
		if hostname, _ := os.ReadFile("/etc/hostname"); len(bytes.TrimSpace(hostname)) > 0 && strings.Contains(stdout, ": ok: "+string(bytes.TrimSpace(hostname))) {
			t.Errorf("the workload read the host's /etc/hostname:\n%s", stdout)
		}
		b, err := os.ReadFile(secretPath)
		if err != nil || string(b) != secret {
			t.Errorf("the host's secret is now %q (%v), want it untouched", b, err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(secretPath, &st); err != nil || st.Nlink != 1 {
			t.Errorf("the host's secret has %d links (%v), want 1: the workload linked it", st.Nlink, err)
		}
		for _, name := range []string{"hard-" + n, "hard2-" + n} {
			if _, err := os.Lstat(filepath.Join(out, name)); err == nil {
				t.Errorf("the workload made %s in its mount", name)
			}
		}
	})
}

// wasmModule assembles a core module from its sections (id, contents).
func wasmModule(sections ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		m = append(m, s...)
	}
	return m
}

// wasmSection is a section: its id, its size, its contents.
func wasmSection(id byte, contents ...[]byte) []byte {
	body := bytes.Join(contents, nil)
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// wasmName is a name (a string) in the binary format.
func wasmName(s string) []byte { return append(uleb(uint64(len(s))), s...) }

// giantFunctionModule is a module whose function $f has n times
// "global.set 0 (i32.add (global.get 0) (i32.const k))" (7 bytes each),
// and whose _start does nothing: it is valid, and compiling $f takes
// Cranelift about 300 bytes of memory per byte of code.
func giantFunctionModule(n int) []byte {
	body := []byte{0} // no locals
	for i := 0; i < n; i++ {
		body = append(body, 0x23, 0, 0x41, byte(i%64), 0x6a, 0x24, 0)
	}
	body = append(body, 0x0b)
	empty := []byte{0, 0x0b}
	return wasmModule(
		wasmSection(1, uleb(1), []byte{0x60, 0, 0}),                             // type 0: [] -> []
		wasmSection(3, uleb(2), []byte{0, 0}),                                   // functions 0 and 1: type 0
		wasmSection(6, uleb(1), []byte{0x7f, 1, 0x41, 0, 0x0b}),                 // global 0: mut i32 = 0
		wasmSection(7, uleb(1), wasmName("_start"), []byte{0}, uleb(1)),         // export _start = function 1
		wasmSection(10, uleb(2), uleb(uint64(len(body))), body, uleb(2), empty), // code
	)
}

// TestHostileWorkloadModules runs modules made to break the runtime
// rather than the workload's own limits: the container's creation, or its
// start, fails fast with an error that names the module and the problem,
// and the Keep leaves nothing behind.
//
//   - thousands of imports the host does not provide: creation fails,
//     naming the first ten and the count;
//   - a table of more elements than a table may have: the start fails;
//   - a 4 GiB memory (65536 pages): runs without a limit (only what it
//     touches is memory), and with one fails "memory limit N bytes exceeded";
//   - a 3.5 MB function, which takes Cranelift GBs to compile: the Keep is
//     killed at the node policy's compile_memory_limit (128 MiB here),
//     and the creation fails saying so.
func TestHostileWorkloadModules(t *testing.T) {
	dir := t.TempDir()
	imports := func(module func(i int) string) string {
		var b strings.Builder
		b.WriteString("(module\n")
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&b, "(import %q %q (func))\n", module(i), fmt.Sprintf("not_wasi_%d", i))
		}
		b.WriteString(`(func (export "_start")))`)
		return b.String()
	}
	giant := filepath.Join(dir, "giant.wasm")
	if err := os.WriteFile(giant, giantFunctionModule(500_000), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "compile-128m.toml")
	writeHostFile(t, policy, fmt.Sprintf("compile_memory_limit = %d\nmodule_cache = \"off\"\n", 128<<20))
	limit := []string{"--memory-limit", strconv.Itoa(memoryLimit)}
	cases := []struct {
		name, wasm string
		opts       []string
		status     int      // 0: the run succeeds; -1: the creation fails
		want       []string // in stderr, besides the module's name
	}{
		{"wasi-imports", writeWat(t, dir, "wasi-imports", imports(func(int) string { return "wasi_snapshot_preview1" })), nil, -1,
			[]string{`"wasi_snapshot_preview1"."not_wasi_0"`, "and 4990 more (5000 imports in all)", "which the host does not provide"}},
		{"unknown-modules", writeWat(t, dir, "unknown-modules", imports(func(i int) string { return fmt.Sprintf("evil_%d", i) })), nil, -1,
			[]string{`"evil_0"."not_wasi_0"`, "and 4990 more (5000 imports in all)"}},
		{"table-10m-plus-1", writeWat(t, dir, "table", `(module (table 10000001 funcref) (func (export "_start")))`), nil, 1,
			[]string{"table minimum size of 10000001 elements exceeds table limits", "at most 10000000 elements"}},
		{"table-4g", writeWat(t, dir, "table-4g", `(module (table 4294967295 funcref) (func (export "_start")))`), nil, 1,
			[]string{"table minimum size of 4294967295 elements exceeds table limits"}},
		{"memory-4gib", writeWat(t, dir, "memory-4g", `(module (memory 65536) (func (export "_start")))`), nil, 0, nil},
		{"memory-4gib-limited", writeWat(t, dir, "memory-4g", `(module (memory 65536) (func (export "_start")))`), limit, 137,
			[]string{"memory limit " + strconv.Itoa(memoryLimit) + " bytes exceeded (the module's initial memory is larger", "memory minimum size of 65536 pages"}},
		{"giant-function", giant, []string{"--runtime-config-path", policy}, -1,
			[]string{"for want of memory", "compile_memory_limit", strconv.Itoa(128 << 20)}},
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ref := importWasmImage(t, d, ns, "docker.io/enarx-test/hostile-"+c.name+":latest", c.wasm, false)
				id := uniqueID("module")
				began := time.Now()
				_, stderr, exit := runWasm(t, d, ns, c.opts, ref, id)
				took := time.Since(began)
				t.Logf("exit %d in %v: %s", exit, took.Round(time.Millisecond), tailLines(stderr, 3))
				switch {
				case c.status == -1 && exit == 0:
					t.Errorf("the container ran, want its creation to fail")
				case c.status >= 0 && exit != c.status:
					t.Errorf("exit %d, want %d; stderr: %s", exit, c.status, stderr)
				}
				want := c.want
				if c.status != 0 && c.status != 134 && c.status != 137 {
					// Not the workload's trap nor its memory: the module
					// could not run.
					want = append(want, "app.wasm")
				}
				for _, w := range want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr does not contain %q: %s", w, tailLines(stderr, 10))
					}
				}
				if len(stderr) > 8<<10 {
					t.Errorf("stderr is %d bytes: an error should stay readable", len(stderr))
				}
				if took > 30*time.Second {
					t.Errorf("took %v, want a prompt answer", took)
				}
				assertNoLeftovers(t, id)
				if c.status == -1 {
					// ctr run --rm leaves the container of a failed creation.
					d.ctr(t, ns, "containers", "rm", id)
				}
				assertNoTaskState(t, d, ns, id)
			})
		}
	})
}
