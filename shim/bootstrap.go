// Package shim is the containerd runtime shim's server (the enarx-shim
// binary): the ttrpc task service that manages Keeps, and the whole `shim
// delete`. What containerd executes for every task, start and delete, is the
// launcher's (package shim/launcher, the containerd-shim-enarx-v1 binary),
// which starts this server. It runs no WebAssembly (the engine is behind
// package keep, in the Keep process), but it is not TEE-blind: it chooses a
// Keep's backend under the node policy (asking package keep which TEEs the
// node offers), publishes what the Keep attested as labels (parsing its
// certificate), and serves fresh evidence from a running Keep (package
// attestapi).
package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// RuntimeName is the name users give containerd for this runtime.
const RuntimeName = launcher.RuntimeName

// Run is the shim server's binary (enarx-shim): `serve`, which the
// launcher's start executes, and the whole `delete`, which the launcher
// executes when the server left something to clean up; start, -info and -v
// as the launcher does them, so that the server binary alone is a shim too.
// It returns the process exit status.
func Run(ctx context.Context, args []string) int {
	return launcher.Main(args, launcher.Actions{
		Start: func(f launcher.Flags) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own executable: %w", err)
			}
			return launcher.Start(f, os.Stdin, os.Stdout, exe)
		},
		Delete: func(f launcher.Flags, _ []string) error { return cleanup(ctx, f, os.Stdout) },
		Serve:  func(f launcher.Flags, _ []string) error { return serve(ctx, f) },
		Usage: fmt.Sprintf("%s: the server of the containerd runtime shim for %s; the shim, containerd-shim-enarx-v1, runs it (actions: serve, start, delete; flags -info, -v)",
			launcher.ServerBinary, RuntimeName),
	})
}

// cleanup is `shim delete`: containerd runs it in the bundle after the shim
// is gone (or after it crashed) to remove what the task left. It kills a
// Keep left running and reports the task as killed (137), or reports the
// status of a Keep that had exited before the shim went.
func cleanup(ctx context.Context, f launcher.Flags, out io.Writer) error {
	// containerd reads only the DeleteResponse on stdout; keep stderr quiet.
	logrus.SetOutput(io.Discard)
	dir := f.Bundle
	if dir == "" {
		dir, _ = os.Getwd()
	}
	bundle := oci.Bundle{Dir: dir}
	var pid int
	if b, err := os.ReadFile(bundle.KeepPID()); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	// A Keep the shim saw exit has its status recorded; a Keep still
	// running is killed, and gone before its root filesystem is unmounted
	// (it may hold files in it) and its cgroup removed.
	status, exitedAt, exited := readExitRecord(bundle)
	if !exited {
		status, exitedAt = 128+int(syscall.SIGKILL), time.Now()
		if pid > 0 && host.IsProcessOf(pid, f.ID) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, processGoneTimeout)
			exitedAt = time.Now()
		}
	}
	launcher.RemoveStaleSocket(bundle)
	// The same cleanup as Delete: the rootfs only if Create mounted it.
	var cg *cgroup.Cgroup
	if spec, err := bundle.Spec(); err == nil {
		cg = loadCgroup(ctx, spec)
	}
	t := &task{id: f.ID, bundle: bundle, rootfs: mountedRootfs(bundle), cgroup: cg}
	t.cleanup(ctx)
	_, err := out.Write(launcher.DeleteResponse(uint32(pid), uint32(status), exitedAt))
	return err
}

// processGoneTimeout bounds how long `shim delete` waits for a Keep it
// killed to be gone.
const processGoneTimeout = 5 * time.Second

// waitGone waits until pid has exited (it is a zombie or gone): the Keep of
// a dead shim is no child of ours to wait for.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !running(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running reports whether pid exists and has not exited.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
