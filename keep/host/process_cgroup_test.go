package host_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	"github.com/enarx/containerd-shim-enarx/keep/host"
)

// TestStartInCgroup starts a Keep in a cgroup of its own: it is there
// before it is ready, the memory limit is applied when it runs, with room
// for the Keep itself, and the cgroup outlives the Keep until deleted.
func TestStartInCgroup(t *testing.T) {
	cgrouptest.Require(t)
	path := cgrouptest.Path(t, "keep")
	memDir, limitFile := cgrouptest.MemoryDir(path), cgrouptest.MemoryLimitFile()

	limit := int64(16 << 20)
	opts := startOptions(t, "exit 7")
	opts.Cgroup = path
	opts.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	p := startKeep(t, opts)
	if p.Cgroup() == nil || p.Cgroup().Path() != path {
		t.Fatalf("Cgroup() = %v, want the cgroup %s", p.Cgroup(), path)
	}
	t.Cleanup(func() { _ = p.Cgroup().Delete() })
	procs, err := os.ReadFile(filepath.Join(memDir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(p.Pid())+"\n") {
		t.Errorf("cgroup.procs %q does not list the Keep, pid %d", procs, p.Pid())
	}

	if err := p.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(memDir, limitFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", limitFile, raw, err)
	}
	// The container's limit, what the Keep used and the headroom; far less
	// than unlimited.
	if got < limit+host.MemoryHeadroom || got > limit+host.MemoryHeadroom+(1<<30) {
		t.Errorf("%s = %d, want the limit %d plus the Keep's use plus %d", limitFile, got, limit, host.MemoryHeadroom)
	}
	if status := exitStatus(t, p, 10*time.Second); status != 7 {
		t.Errorf("exit status %d, want 7", status)
	}
	if _, err := os.Stat(memDir); err != nil {
		t.Errorf("the cgroup is gone with the Keep: %v", err)
	}
	if err := p.Cgroup().Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Stat(memDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup %s after Delete: %v", memDir, err)
	}
}

// TestStartCgroupRefused fails to start a Keep in a systemd cgroup where
// systemd cannot be reached, and starts nothing.
func TestStartCgroupRefused(t *testing.T) {
	if _, err := os.Stat("/run/systemd/private"); err == nil {
		t.Skip("systemd runs here")
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+t.TempDir()+"/no-bus")
	opts := startOptions(t, "exit 0")
	opts.Cgroup = "system.slice:enarx:test"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := host.Start(ctx, opts)
	if err == nil {
		_ = p.Signal(9)
		t.Fatal("Start succeeded in a systemd cgroup")
	}
	if !strings.Contains(err.Error(), "systemd cannot be reached") {
		t.Errorf("error %q does not say why", err)
	}
}

// TestStartCompileMemory bounds a Keep's memory until its workload runs
// (the node policy's compile_memory_limit): a module that takes memory
// while it compiles fails Start with the reason, and the bound is lifted
// when the workload of a container without a memory limit runs.
func TestStartCompileMemory(t *testing.T) {
	cgrouptest.Require(t)
	parent := cgrouptest.Parent(t) // removed with /bomb and /ok below it
	const bound = 64 << 20

	t.Run("bomb", func(t *testing.T) {
		opts := startOptions(t, "compile-bomb")
		opts.Cgroup, opts.CompileMemory = parent+"/bomb", bound
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		began := time.Now()
		p, err := host.Start(ctx, opts)
		if err == nil {
			_ = p.Signal(9)
			t.Fatal("Start of a Keep that takes unbounded memory compiling succeeded")
		}
		t.Logf("refused in %v: %v", time.Since(began).Round(time.Millisecond), err)
		for _, w := range []string{"for want of memory", "compile_memory_limit", strconv.Itoa(bound), opts.Config.Module} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error does not contain %q", w)
			}
		}
		if dir := cgrouptest.MemoryDir(parent + "/bomb"); dirExists(dir) {
			t.Errorf("cgroup %s left behind", dir)
		}
	})

	t.Run("lifted", func(t *testing.T) {
		opts := startOptions(t, "exit 0")
		opts.Cgroup, opts.CompileMemory = parent+"/ok", bound
		p := startKeep(t, opts)
		t.Cleanup(func() { _ = p.Cgroup().Delete() })
		dir, file := cgrouptest.MemoryDir(parent+"/ok"), cgrouptest.MemoryLimitFile()
		if got := readLimit(t, filepath.Join(dir, file)); got != bound {
			t.Errorf("%s before Run = %d, want the compile bound %d", file, got, bound)
		}
		if err := p.Run(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := readLimit(t, filepath.Join(dir, file)); got < 1<<60 {
			t.Errorf("%s after Run = %d, want no limit (the container has none)", file, got)
		}
		exitStatus(t, p, 10*time.Second)
	})
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// readLimit reads a cgroup memory limit file; "max" is math.MaxInt64.
func readLimit(t *testing.T, path string) int64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" {
		return math.MaxInt64
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", path, raw, err)
	}
	return n
}
