package test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHarness proves the harness on both daemons without our shim: a native
// hello in a locally built image, run with runc.
func TestHarness(t *testing.T) {
	bin := buildNative(t, "nativehello")
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		t.Logf("%s %s (%s): started in %v, pid %d, config %s", d.Name, d.Version, d.Binary, d.StartTime.Round(time.Millisecond), d.PID, d.Config)
		requireRuncShim(t, d)
		ns := newNamespace(t, d)
		ref := importNativeImage(t, d, ns, "localhost/enarx-e2e/native-hello:latest", bin)
		id := uniqueID("hello")

		began := time.Now()
		stdout, stderr, exit := d.ctr(t, ns, "run", "--rm", "--runtime", runtimeRunc, ref, id)
		t.Logf("ctr run --rm (runc) took %v", time.Since(began).Round(time.Millisecond))
		if exit != 0 {
			t.Fatalf("ctr run: exit %d, stderr: %s", exit, stderr)
		}
		if stdout != "Hello from runc!\n" {
			t.Errorf("ctr run: stdout %q, want %q (stderr %q)", stdout, "Hello from runc!\n", stderr)
		}
		if left := strings.Fields(d.mustCtr(t, ns, "containers", "ls", "-q")); len(left) != 0 {
			t.Errorf("containers left after run --rm: %q", left)
		}
		assertNoLeftovers(t, id)

		// Exit codes pass through.
		stdout, _, exit = d.ctr(t, ns, "run", "--rm", ref, uniqueID("false"), "/hello-missing")
		if exit == 0 {
			t.Errorf("running a missing binary exited 0 (stdout %q)", stdout)
		}
	})
}

// TestHarnessLifecycle checks the harness's own cleanup on private daemons:
// a running task survives a daemon restart, and stopping a daemon whose
// namespace was left dirty (a running task, a container, an image) leaves
// no process, mount or directory behind.
func TestHarnessLifecycle(t *testing.T) {
	bin := buildNative(t, "sleep")
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			var d *Daemon
			// Registered first, so it runs after the daemon has been stopped.
			t.Cleanup(func() {
				if d == nil {
					return
				}
				if left := leftoverProcesses(t, d.Address); len(left) != 0 {
					t.Errorf("processes left after stop: %v", left)
				}
				if m := mountsUnder(d.Dir); len(m) != 0 {
					t.Errorf("mounts left after stop: %v", m)
				}
				if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
					t.Errorf("%s left after stop (%v)", d.Dir, err)
				}
			})
			d = startDaemon(t, kind)
			requireRuncShim(t, d)
			ns := newNamespace(t, d)
			ref := importNativeImage(t, d, ns, "localhost/enarx-e2e/sleep:latest", bin)
			id := uniqueID("sleeper")
			d.mustCtr(t, ns, "run", "-d", ref, id, "/hello", "1h")
			d.restart(t)
			t.Logf("%s restarted in %v", d.Name, d.StartTime.Round(time.Millisecond))
			if out := d.mustCtr(t, ns, "tasks", "ls"); !strings.Contains(out, id) || !strings.Contains(out, "RUNNING") {
				t.Errorf("after a restart, tasks ls:\n%s", out)
			}
			// A namespace nobody cleans: stop must.
			dirty := "dirty-" + randomHex(3)
			importNativeImage(t, d, dirty, ref, bin)
			d.mustCtr(t, dirty, "run", "-d", ref, uniqueID("dirty"), "/hello", "1h")
		})
	}
}

// TestFixtures builds every fixture, so a broken fixture source shows up
// here rather than in the test that first uses it.
func TestFixtures(t *testing.T) {
	wasmMagic := []byte("\x00asm")
	for _, name := range []string{"hello", "echo", "exit", "sleep", "loop"} {
		if data, err := os.ReadFile(buildGoWasm(t, name)); err != nil || !bytes.HasPrefix(data, wasmMagic) {
			t.Errorf("%s.wasm: not a wasm module (err %v)", name, err)
		}
	}
	for _, name := range []string{"trap", "loop"} {
		if data, err := os.ReadFile(buildWat(t, name)); err != nil || !bytes.HasPrefix(data, wasmMagic) {
			t.Errorf("%s.wat: not a wasm module (err %v)", name, err)
		}
	}
	buildNative(t, "nativehello")
}
