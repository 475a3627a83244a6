package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/keeptest"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// startTestKeep starts a Keep (this test binary) for container id, created
// but not running, and kills it when the test ends.
func startTestKeep(t *testing.T, id string) *host.Process {
	t.Helper()
	module := filepath.Join(t.TempDir(), "app.wasm")
	if err := os.WriteFile(module, keeptest.Module("exit 0"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := host.Start(ctx, host.StartOptions{Executable: os.Args[0], Config: keep.Config{ID: id, Workload: workload.Workload{Module: module, Args: []string{"app.wasm"}}}})
	if err != nil {
		t.Fatalf("start keep: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
	})
	return p
}

func TestIsKeepOf(t *testing.T) {
	if host.IsProcessOf(os.Getpid(), "x") {
		t.Error("the test process is taken for a Keep")
	}
	id := fmt.Sprintf("iskeepof-%d", os.Getpid())
	p := startTestKeep(t, id)
	if !host.IsProcessOf(p.Pid(), id) {
		t.Errorf("the Keep of %s (pid %d) is not recognised", id, p.Pid())
	}
	if host.IsProcessOf(p.Pid(), id+"-other") {
		t.Errorf("the Keep of %s is taken for the Keep of another task", id)
	}
	if host.IsProcessOf(p.Pid(), "") {
		t.Error("the Keep is taken for the Keep of an empty ID")
	}
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
	if host.IsProcessOf(p.Pid(), id) {
		t.Error("a reaped Keep is still recognised")
	}
}

// readDeleteResponse checks that out is exactly one DeleteResponse of a
// Keep killed by SIGKILL.
func readDeleteResponse(t *testing.T, out []byte) *taskapi.DeleteResponse {
	t.Helper()
	return readDeleteResponseStatus(t, out, 137)
}

// readDeleteResponseStatus checks that out is exactly one DeleteResponse
// with the exit status want.
func readDeleteResponseStatus(t *testing.T, out []byte, want uint32) *taskapi.DeleteResponse {
	t.Helper()
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(out, &resp); err != nil {
		t.Fatalf("delete output %q is not a DeleteResponse: %v", out, err)
	}
	if len(resp.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("delete output %q holds more than a DeleteResponse", out)
	}
	if resp.ExitStatus != want {
		t.Errorf("ExitStatus = %d, want %d", resp.ExitStatus, want)
	}
	if resp.ExitedAt == nil {
		t.Error("ExitedAt not set")
	}
	return &resp
}

func writePIDFile(t *testing.T, bundle string, pid int) {
	t.Helper()
	if err := os.WriteFile(oci.Bundle{Dir: bundle}.KeepPID(), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCleanupKillsTheKeep(t *testing.T) {
	id := fmt.Sprintf("cleanup-%d", os.Getpid())
	p := startTestKeep(t, id)
	bundle := t.TempDir()
	writePIDFile(t, bundle, p.Pid())
	// A socket left by a dead shim server.
	stale := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte("unix://"+stale), 0o600); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := cleanup(context.Background(), launcher.Flags{ID: id, Namespace: "default", Bundle: bundle}, &out); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	resp := readDeleteResponse(t, out.Bytes())
	if resp.Pid != uint32(p.Pid()) {
		t.Errorf("Pid = %d, want %d", resp.Pid, p.Pid())
	}
	select {
	case <-p.Done():
		if status, _ := p.Status(); status != 137 {
			t.Errorf("keep status = %d, want 137 (SIGKILL)", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cleanup left the Keep running")
	}
	if _, err := os.Stat(oci.Bundle{Dir: bundle}.KeepPID()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket left: %v", err)
	}
}

func TestCleanupSparesOtherProcesses(t *testing.T) {
	id := fmt.Sprintf("cleanup-spare-%d", os.Getpid())
	other := startTestKeep(t, id+"-other")

	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	sleepDone := make(chan struct{})
	go func() { _ = sleep.Wait(); close(sleepDone) }()
	t.Cleanup(func() { _ = sleep.Process.Kill(); <-sleepDone })

	for _, tc := range []struct {
		name string
		pid  int
		done <-chan struct{}
	}{
		{"a process that is no Keep (recycled pid)", sleep.Process.Pid, sleepDone},
		{"the Keep of another task", other.Pid(), other.Done()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			writePIDFile(t, bundle, tc.pid)
			var out bytes.Buffer
			if err := cleanup(context.Background(), launcher.Flags{ID: id, Namespace: "default", Bundle: bundle}, &out); err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			readDeleteResponse(t, out.Bytes())
			select {
			case <-tc.done:
				t.Fatalf("cleanup killed pid %d", tc.pid)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

func TestCleanupWithoutPIDFile(t *testing.T) {
	var out bytes.Buffer
	if err := cleanup(context.Background(), launcher.Flags{ID: "gone", Namespace: "default", Bundle: t.TempDir()}, &out); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if resp := readDeleteResponse(t, out.Bytes()); resp.Pid != 0 {
		t.Errorf("Pid = %d, want 0", resp.Pid)
	}
}

// TestCleanupReportsTheRecordedExit is `shim delete` after a shim died with
// a task whose Keep had already exited: the status the shim recorded, not
// a SIGKILL; and nothing is killed.
func TestCleanupReportsTheRecordedExit(t *testing.T) {
	id := fmt.Sprintf("cleanup-exited-%d", os.Getpid())
	// A live Keep of the same ID: were the recorded exit ignored, it would
	// be killed.
	p := startTestKeep(t, id)
	bundle := t.TempDir()
	writePIDFile(t, bundle, p.Pid())
	at := time.Now().Add(-time.Minute).Round(time.Microsecond)
	if err := writeExitRecord(oci.Bundle{Dir: bundle}, 3, at); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cleanup(context.Background(), launcher.Flags{ID: id, Namespace: "default", Bundle: bundle}, &out); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	resp := readDeleteResponseStatus(t, out.Bytes(), 3)
	if !resp.ExitedAt.AsTime().Equal(at) {
		t.Errorf("ExitedAt = %v, want the recorded %v", resp.ExitedAt.AsTime(), at)
	}
	select {
	case <-p.Done():
		t.Fatal("cleanup killed a Keep whose task had a recorded exit")
	case <-time.After(200 * time.Millisecond):
	}
	for _, f := range []string{oci.Bundle{Dir: bundle}.KeepPID(), oci.Bundle{Dir: bundle}.KeepExit()} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
}

func TestExitFile(t *testing.T) {
	bundle := t.TempDir()
	if _, _, ok := readExitRecord(oci.Bundle{Dir: bundle}); ok {
		t.Error("an exit read where none was recorded")
	}
	at := time.Unix(1700000000, 123456789)
	if err := writeExitRecord(oci.Bundle{Dir: bundle}, 143, at); err != nil {
		t.Fatal(err)
	}
	if status, got, ok := readExitRecord(oci.Bundle{Dir: bundle}); !ok || status != 143 || !got.Equal(at) {
		t.Errorf("readExitFile = %d %v %v, want 143 %v", status, got, ok, at)
	}
	for _, bad := range []string{"", "3", "x 1", "3 y", "-1 5", "1 2 3"} {
		if err := os.WriteFile(oci.Bundle{Dir: bundle}.KeepExit(), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if status, _, ok := readExitRecord(oci.Bundle{Dir: bundle}); ok {
			t.Errorf("%q read as status %d", bad, status)
		}
	}
}

// TestCleanupUnmountsOnlyItsOwnRootfs is `shim delete` on a bundle whose
// root filesystem someone else mounted (Docker mounts its own and gives the
// shim no mounts; so does `ctr run --rootfs DIR`): the mount stays. A root
// filesystem the shim recorded as its own mount is unmounted.
func TestCleanupUnmountsOnlyItsOwnRootfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	mountTmpfs := func(t *testing.T, dir string) {
		t.Helper()
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", dir, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}
	bundleWithRoot := func(t *testing.T) (string, string) {
		bundle, root := t.TempDir(), t.TempDir()
		b, _ := json.Marshal(specs.Spec{Version: specs.Version, Process: &specs.Process{Args: []string{"/app.wasm"}}, Root: &specs.Root{Path: root}})
		if err := os.WriteFile(oci.Bundle{Dir: bundle}.Config(), b, 0o644); err != nil {
			t.Fatal(err)
		}
		mountTmpfs(t, root)
		return bundle, root
	}

	t.Run("theirs", func(t *testing.T) {
		bundle, root := bundleWithRoot(t)
		var out bytes.Buffer
		if err := cleanup(context.Background(), launcher.Flags{ID: "theirs", Namespace: "default", Bundle: bundle}, &out); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
		if mounted, err := mountinfo.Mounted(root); err != nil || !mounted {
			t.Errorf("the root filesystem someone else mounted at %s: mounted %v (%v) after shim delete, want it left alone", root, mounted, err)
		}
	})
	t.Run("ours", func(t *testing.T) {
		bundle, root := bundleWithRoot(t)
		if err := os.WriteFile(oci.Bundle{Dir: bundle}.RootfsMount(), []byte(root), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := cleanup(context.Background(), launcher.Flags{ID: "ours", Namespace: "default", Bundle: bundle}, &out); err != nil {
			t.Fatalf("cleanup: %v", err)
		}
		if mounted, err := mountinfo.Mounted(root); err != nil || mounted {
			t.Errorf("the root filesystem the shim mounted at %s: mounted %v (%v) after shim delete, want it unmounted", root, mounted, err)
		}
		if _, err := os.Stat(oci.Bundle{Dir: bundle}.RootfsMount()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the mount record is left: %v", err)
		}
	})
}
