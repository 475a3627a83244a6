package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// TestRootfsMountedByOthers runs Keeps on a root filesystem the shim did
// not mount, as Docker gives one (its own mount, no mounts in CreateTask)
// and as `ctr run --rootfs DIR` does: the container runs, deleting it
// leaves the mount alone, and a new task of the same container (Docker's
// restart: task exit, `shim delete`, create again on the same bundle
// without mounts) runs on it again.
func TestRootfsMountedByOthers(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		root := t.TempDir()
		if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=16m"); err != nil {
			t.Fatalf("mount a tmpfs on %s: %v", root, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
		wasm, err := os.ReadFile(buildGoWasm(t, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "app.wasm"), wasm, 0o755); err != nil {
			t.Fatal(err)
		}
		stillMounted := func(when string) {
			t.Helper()
			if mounted, err := mountinfo.Mounted(root); err != nil || !mounted {
				t.Fatalf("%s: the tmpfs at %s is no longer mounted (%v): the shim unmounted a root filesystem it did not mount", when, root, err)
			}
			if _, err := os.Stat(filepath.Join(root, "app.wasm")); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}

		id := uniqueID("rootfs")
		stdout, stderr, exit := d.ctr(t, ns, "run", "--rm", "--runtime", runtimeEnarx, "--rootfs", root, id, "/app.wasm")
		if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
			t.Fatalf("ctr run --rootfs: exit %d, stdout %q, stderr %s\n%s", exit, stdout, stderr, d.LogTail(30))
		}
		stillMounted("after ctr run --rm --rootfs")
		assertNoLeftovers(t, id)

		// A restart: the same container, a second task on the same bundle.
		id = uniqueID("restart")
		d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, "--rootfs", root, id, "/app.wasm")
		waitStatus(t, d, ns, id, "STOPPED")
		d.mustCtr(t, ns, "tasks", "delete", id)
		stillMounted("after the first task's delete")
		// ctr tasks start (attached) waits for the task and deletes it.
		stdout, stderr, exit = d.ctr(t, ns, "tasks", "start", id)
		if exit != 0 || !strings.Contains(stdout, "Hello from a Keep!") {
			t.Fatalf("second task of %s: exit %d, stdout %q, stderr %s\n%s", id, exit, stdout, stderr, d.LogTail(30))
		}
		d.mustCtr(t, ns, "containers", "delete", id)
		stillMounted("after the second task's delete")
		assertNoLeftovers(t, id)
	})
}
