package test

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// importFsprobeImageAs is importFsprobeImage of an image whose config
// names the user its process runs as (Dockerfile USER).
func importFsprobeImageAs(t *testing.T, d *Daemon, ns, ref, user string, extra ...tarFile) string {
	t.Helper()
	wasm, err := os.ReadFile(buildGoWasm(t, "fsprobe"))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := tarFiles(append([]tarFile{{Name: "app.wasm", Mode: 0o644, Data: wasm}}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "fsprobe.tar")
	if err := writeLayerImageConfig(archive, ref, layer, ocispec.ImageConfig{Entrypoint: []string{"/app.wasm"}, User: user}); err != nil {
		t.Fatal(err)
	}
	importArchive(t, d, ns, ref, archive)
	return ref
}

// TestConfinementUserAndDevices: a Keep opens files as the image's user,
// and only the devices its devices cgroup allows, as runc's process would:
// an image with User 1000:1000 cannot read a root-only file nor write a
// root-owned directory, what it creates is owned by 1000; a device node
// shipped in the image cannot be opened, one the container is given
// (ctr run --device, a linux.devices entry with its rule) can.
func TestConfinementUserAndDevices(t *testing.T) {
	out := t.TempDir()
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	image := []tarFile{
		{Name: "secret.txt", Mode: 0o600, Data: []byte("root only")},
		{Name: "rootdir", Type: tar.TypeDir, Mode: 0o755},
		{Name: "dev-kmsg", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 11},
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		mount := []string{"--mount", "type=bind,src=" + out + ",dst=/out,options=rbind:rw"}

		root := importFsprobeImageAs(t, d, ns, "docker.io/enarx-test/fsprobe-root:latest", "", image...)
		stdout, stderr, _ := runWasm(t, d, ns, mount, root, uniqueID("dev"), "/app.wasm",
			"read", "/secret.txt", "write", "/dev-kmsg", "enarx-test", "write", "/dev/null", "x")
		expectProbe(t, stdout, stderr, map[string]string{
			"read /secret.txt": "ok: root only",
			"write /dev-kmsg":  "error",
			"write /dev/null":  "ok",
		})
		stdout, stderr, _ = runWasm(t, d, ns, append(mount, "--device", "/dev/kmsg"), root, uniqueID("device"), "/app.wasm",
			"write", "/dev/kmsg", "enarx-test: a device the container is given")
		expectProbe(t, stdout, stderr, map[string]string{"write /dev/kmsg": "ok"})

		user := importFsprobeImageAs(t, d, ns, "docker.io/enarx-test/fsprobe-user:latest", "1000:1000", image...)
		name := "mine-" + randomHex(4)
		stdout, stderr, exit := runWasm(t, d, ns, mount, user, uniqueID("user"), "/app.wasm",
			"read", "/secret.txt", "write", "/rootdir/x", "y", "write", "/out/"+name, "by 1000")
		if exit != 3 {
			t.Errorf("exit %d, want 3 (refusals); stderr: %s", exit, stderr)
		}
		expectProbe(t, stdout, stderr, map[string]string{
			"read /secret.txt":   "error",
			"write /rootdir/x":   "error",
			"write /out/" + name: "ok",
		})
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(out, name), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("the file the workload made: owner %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
		}
	})
}

// TestConfinementUserNamespace: a container with a user namespace (ctr run
// --uidmap/--gidmap, as Docker's userns-remap) runs its workload as root of
// that namespace only: the image's files (which ctr remaps) are its own, a
// file of the host's root in a bind mount is not, what it creates is owned
// by the mapped IDs on the host, and it sees its mapping.
func TestConfinementUserNamespace(t *testing.T) {
	out := t.TempDir()
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	writeHostFile(t, filepath.Join(out, "host-root.txt"), "the host's root's")
	image := []tarFile{{Name: "secret.txt", Mode: 0o600, Data: []byte("the container's root's")}}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importFsprobeImageAs(t, d, ns, "docker.io/enarx-test/fsprobe-userns:latest", "", image...)
		// --device of a node every container has (/dev/null) lists it a
		// second time: in a user namespace the host's node is bound once.
		opts := []string{"--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
			"--mount", "type=bind,src=" + out + ",dst=/out,options=rbind:rw", "--device", "/dev/null"}
		name := "mine-" + randomHex(4)
		stdout, stderr, exit := runWasm(t, d, ns, opts, ref, uniqueID("userns"), "/app.wasm",
			"read", "/secret.txt", "read", "/out/host-root.txt", "write", "/out/host-root.txt", "overwritten",
			"write", "/out/"+name, "by the container's root", "read", "/proc/self/uid_map", "write", "/dev/null", "x")
		if exit != 3 {
			t.Errorf("exit %d, want 3 (one refusal); stderr: %s", exit, stderr)
		}
		expectProbe(t, stdout, stderr, map[string]string{
			"read /secret.txt":         "ok: the container's root's",
			"read /out/host-root.txt":  "ok: the host's root's",
			"write /out/host-root.txt": "error",
			"write /out/" + name:       "ok",
			"read /proc/self/uid_map":  "ok: 0     100000      65536",
			"write /dev/null":          "ok",
		})
		if b, _ := os.ReadFile(filepath.Join(out, "host-root.txt")); string(b) != "the host's root's" {
			t.Errorf("the host's file now holds %q", b)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(out, name), &st); err != nil || st.Uid != 100000 || st.Gid != 100000 {
			t.Errorf("the file the workload made: owner %d:%d (%v), want 100000:100000", st.Uid, st.Gid, err)
		}

		// A running one: the process that runs the workload is in the user
		// namespace with no capability on the host; SIGTERM ends it with
		// 143, and nothing of it is left.
		sleep := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep-userns:latest", buildGoWasm(t, "sleep"), false)
		id := uniqueID("userns-sleep")
		bg := runWasmBackground(t, d, ns, opts[:4], sleep, id, "/app.wasm", "1h")
		var inner process
		for _, p := range findProcesses(id) {
			if strings.HasSuffix(p.Cmdline, " -inner") {
				inner = p
			}
		}
		if inner.PID == 0 {
			t.Fatalf("no inner Keep of %s among %v", id, findProcesses(id))
		}
		if m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", inner.PID)); err != nil || strings.Join(strings.Fields(string(m)), " ") != "0 100000 65536" {
			t.Errorf("the inner Keep's uid_map: %q, %v", m, err)
		}
		// Start answers once it has told the Keep to run, as runc start
		// does once the container's process may go on: the inner Keep
		// puts up its own filter just before the workload's first
		// instruction, a moment later.
		var status []byte
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			status, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", inner.PID))
			if err != nil || strings.Contains(string(status), "\nSeccomp:\t2\n") || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || !strings.Contains(string(status), "\nUid:\t100000\t100000\t100000\t100000\n") ||
			!strings.Contains(string(status), "\nSeccomp:\t2\n") {
			t.Errorf("the inner Keep's status, seen from the host (%v):\n%s", err, status)
		}
		d.ctr(t, ns, "tasks", "kill", id)
		if res, ended := bg.wait(30 * time.Second); !ended || res.exit != 143 {
			t.Errorf("after SIGTERM: ended %v, exit %d, want 143 (stderr %s)", ended, res.exit, res.stderr)
		}
		stopTask(t, d, ns, id, bg)
	})
}

// TestConfinementMounts: the workload sees the container's view as runc
// builds it: single-file bind mounts, read-only and read-write, a tmpfs,
// a recursively read-only mount, the masked paths of containerd's default
// spec; the Keep is in a mount namespace of its own, and every thread of it
// is filtered by the seccomp profile ctr run --seccomp gives.
func TestConfinementMounts(t *testing.T) {
	host := t.TempDir()
	writeHostFile(t, filepath.Join(host, "app.conf"), "from a ConfigMap")
	writeHostFile(t, filepath.Join(host, "state.txt"), "before")
	rro := filepath.Join(host, "rro")
	sub := filepath.Join(rro, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m,mode=777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe:latest",
			tarFile{Name: "etc/app/app.conf", Mode: 0o644, Data: []byte("in the image")})
		mounts := []string{
			"--mount", "type=bind,src=" + filepath.Join(host, "app.conf") + ",dst=/etc/app/app.conf,options=rbind:ro",
			"--mount", "type=bind,src=" + filepath.Join(host, "state.txt") + ",dst=/state.txt,options=rbind:rw",
			"--mount", "type=tmpfs,src=tmpfs,dst=/scratch,options=mode=1777",
			"--mount", "type=bind,src=" + rro + ",dst=/rro,options=rbind:rro",
		}
		id := uniqueID("mounts")
		stdout, stderr, _ := runWasm(t, d, ns, mounts, ref, id, "/app.wasm",
			"read", "/etc/app/app.conf", "write", "/etc/app/app.conf", "x",
			"write", "/state.txt", "after", "write", "/scratch/t.txt", "in tmpfs", "read", "/scratch/t.txt",
			"write", "/rro/sub/x", "y", "ls", "/sys/firmware", "read", "/proc/timer_list")
		expectProbe(t, stdout, stderr, map[string]string{
			"read /etc/app/app.conf":  "ok: from a ConfigMap",
			"write /etc/app/app.conf": "error",
			"write /state.txt":        "ok",
			"write /scratch/t.txt":    "ok",
			"read /scratch/t.txt":     "ok: in tmpfs",
			"write /rro/sub/x":        "error",
		})
		// Masked: an empty directory, an empty file.
		got := probeResults(stdout)
		if r := got["ls /sys/firmware"]; r != "ok" {
			t.Errorf("ls /sys/firmware (masked): %q, want an empty directory", r)
		}
		if r := got["read /proc/timer_list"]; r != "ok" {
			t.Errorf("read /proc/timer_list (masked): %q, want an empty file", r)
		}
		if b, err := os.ReadFile(filepath.Join(host, "state.txt")); err != nil || string(b) != "after" {
			t.Errorf("the read-write file mount on the host: %q, %v", b, err)
		}

		// The Keep is in a mount namespace of its own, and PID 1 of its
		// own PID namespace; every thread of it is in its own network
		// namespace (it is made in it: keep.Config.MadeInNewNetNS), whose
		// loopback is up.
		sleepRef := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		sid := uniqueID("ns")
		runKeep(t, d, ns, "", []string{"--seccomp"}, sleepRef, sid, "/app.wasm", "1h")
		waitStatus(t, d, ns, sid, "RUNNING")
		pid := taskPID(t, d, ns, sid)
		for _, kind := range []string{"mnt", "pid", "net"} {
			mine, _ := os.Readlink("/proc/self/ns/" + kind)
			keeps, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + kind)
			if err != nil || keeps == mine {
				t.Errorf("the Keep's %s namespace %q (%v) is the host's %q", kind, keeps, err, mine)
			}
		}
		keepNet, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
		threads, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, task := range threads {
			if n, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/ns/net"); err == nil && n != keepNet {
				t.Errorf("thread %s of the Keep is in network namespace %s, not the Keep's %s", task.Name(), n, keepNet)
			}
		}
		if fib, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/fib_trie"); err != nil || !strings.Contains(string(fib), "127.0.0.1") {
			t.Errorf("the loopback of the Keep's network namespace is not up (no 127.0.0.1 in its fib_trie): %v\n%s", err, fib)
		}
		status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil || !strings.Contains(string(status), "\nNSpid:\t"+strconv.Itoa(pid)+"\t1\n") {
			t.Errorf("the Keep is not PID 1 of its own PID namespace: %v\n%s", err, status)
		}
		// ctr run --seccomp: containerd's default profile, on every thread.
		if !strings.Contains(string(status), "\nSeccomp:\t2\n") {
			t.Errorf("the Keep has no seccomp filter:\n%s", status)
		}
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, task := range tasks {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/status"); err == nil && !strings.Contains(string(b), "\nSeccomp:\t2\n") {
				t.Errorf("thread %s of the Keep has no seccomp filter", task.Name())
			}
		}
		d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGKILL", sid)
		waitStatus(t, d, ns, sid, "STOPPED")
		deleteTask(t, d, ns, sid)
		d.mustCtr(t, ns, "containers", "rm", sid)

		// Without a profile in the spec, the Keep's own filter and
		// no_new_privs are there all the same, on every thread.
		sid = uniqueID("own")
		runKeep(t, d, ns, "", nil, sleepRef, sid, "/app.wasm", "1h")
		waitStatus(t, d, ns, sid, "RUNNING")
		pid = taskPID(t, d, ns, sid)
		// RUNNING is reported once the Keep is told to run: it loads its
		// filter a moment later, just before the workload starts.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err != nil || strings.Contains(string(b), "\nSeccomp:\t2\n") {
				break
			}
		}
		tasks, _ = os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/status")
			if err == nil && (!strings.Contains(string(b), "\nSeccomp:\t2\n") || !strings.Contains(string(b), "\nNoNewPrivs:\t1\n")) {
				t.Errorf("thread %s of a Keep without a seccomp profile in its spec lacks the Keep's own filter or no_new_privs", task.Name())
			}
		}
		if len(tasks) == 0 {
			t.Errorf("no threads of the Keep %d", pid)
		}
		d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGKILL", sid)
		waitStatus(t, d, ns, sid, "STOPPED")
		deleteTask(t, d, ns, sid)
		d.mustCtr(t, ns, "containers", "rm", sid)
	})
}

// TestConfinementSharedPropagation: ctr run --rootfs-propagation rshared,
// with an rshared bind of a shared host directory (what Kubernetes gives a
// Bidirectional volume). As with runc the Keep starts, its root is shared,
// a mount the host makes in the directory later reaches it, and the
// container's root filesystem is bound on the host only once, by the shim:
// the Keep's own bind of it did not propagate back.
func TestConfinementSharedPropagation(t *testing.T) {
	vol := sharedDir(t)
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		sleepRef := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		id := uniqueID("rshared")
		runKeep(t, d, ns, "", []string{"--rootfs-propagation", "rshared",
			"--mount", "type=bind,src=" + vol + ",dst=/vol,options=rbind:rshared"}, sleepRef, id, "/app.wasm", "1h")
		waitStatus(t, d, ns, id, "RUNNING")
		late := mountLater(t, vol)
		propagation, keeps := mountPropagation(t, taskPID(t, d, ns, id))
		if propagation["/"] != "shared" {
			t.Errorf("the Keep's root is %q, want shared:\n%s", propagation["/"], keeps)
		}
		if _, ok := propagation["/vol/"+late]; !ok {
			t.Errorf("a mount the host made in the rshared volume did not reach the Keep:\n%s", keeps)
		}
		binds, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
			return !strings.HasSuffix(m.Mountpoint, "/"+id+"/rootfs"), false
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(binds) != 1 {
			t.Errorf("the container's root filesystem is mounted %d times on the host, want once (the shim's)", len(binds))
		}
		d.mustCtr(t, ns, "tasks", "kill", "--signal", "SIGKILL", id)
		waitStatus(t, d, ns, id, "STOPPED")
		deleteTask(t, d, ns, id)
		d.mustCtr(t, ns, "containers", "rm", id)
	})
}

// mountPropagation is the propagation of each mount point of process pid,
// as it sees them (shared, slave or private), and its mount points and
// optional fields, one per line, for a test's message.
func mountPropagation(t *testing.T, pid int) (map[string]string, string) {
	t.Helper()
	mounts, err := mountinfo.PidMountInfo(pid)
	if err != nil {
		t.Fatal(err)
	}
	propagation := map[string]string{}
	var lines strings.Builder
	for _, m := range mounts {
		propagation[m.Mountpoint] = "private"
		for _, opt := range strings.Fields(m.Optional) {
			switch tag, _, _ := strings.Cut(opt, ":"); {
			case tag == "shared":
				propagation[m.Mountpoint] = "shared"
			case tag == "master" && propagation[m.Mountpoint] == "private":
				propagation[m.Mountpoint] = "slave"
			}
		}
		fmt.Fprintf(&lines, "%s %s\n", m.Mountpoint, m.Optional)
	}
	return propagation, lines.String()
}

// sharedDir is a directory bound on itself and made a shared mount, as a
// Bidirectional volume's host path must be, until the test ends.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountLater mounts a tmpfs at a new directory in dir, as the host would
// after a container started, until the test ends, and returns its name.
func mountLater(t *testing.T, dir string) string {
	t.Helper()
	name := uniqueID("late")
	late := filepath.Join(dir, name)
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(late, unix.MNT_DETACH) })
	return name
}

// TestConfinementHooks: the OCI hooks of a spec (ctr run --config) run at
// runc's points with the container's state on stdin: prestart and
// createRuntime in the runtime's namespaces at create, createContainer in
// the container's before pivot_root, poststart after start, poststop after
// delete; a failing createRuntime hook fails the create and leaves nothing.
func TestConfinementHooks(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		// ctr run --config takes no image: the root filesystem is a
		// directory holding the module.
		rootfs := t.TempDir()
		wasm, err := os.ReadFile(buildGoWasm(t, "fsprobe"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, "app.wasm"), wasm, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(rootfs, 0o755); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		spec := func(t *testing.T, failing bool) string {
			stdout, stderr, exit := d.ctr(t, ns, "oci", "spec")
			if exit != 0 {
				t.Fatalf("ctr oci spec: %s", stderr)
			}
			var s specs.Spec
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatal(err)
			}
			s.Process.Args = []string{"/app.wasm", "read", "/image-hook-absent"}
			s.Root = &specs.Root{Path: rootfs}
			hook := func(kind string) specs.Hook {
				return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(out, kind+".json")}}
			}
			s.Hooks = &specs.Hooks{
				Prestart: []specs.Hook{hook("prestart")}, CreateRuntime: []specs.Hook{hook("createRuntime")},
				CreateContainer: []specs.Hook{hook("createContainer")}, Poststart: []specs.Hook{hook("poststart")},
				Poststop: []specs.Hook{hook("poststop")},
			}
			if failing {
				s.Hooks.CreateRuntime = []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 3"}}}
			}
			b, err := json.Marshal(&s)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}

		id := uniqueID("hooks")
		_, stderr, exit := d.ctr(t, ns, "run", "--rm", "--runtime", runtimeEnarx, "--config", spec(t, false), id)
		if exit != 3 {
			t.Fatalf("ctr run --config: exit %d (want the probe's 3), stderr %s", exit, stderr)
		}
		for _, kind := range []string{"prestart", "createRuntime", "createContainer", "poststart", "poststop"} {
			b, err := os.ReadFile(filepath.Join(out, kind+".json"))
			if err != nil {
				t.Errorf("%s hook did not run: %v", kind, err)
				continue
			}
			var st specs.State
			if err := json.Unmarshal(b, &st); err != nil || st.ID != id || st.Pid == 0 && kind != "poststop" {
				t.Errorf("%s hook's state: %s (%v)", kind, b, err)
			}
		}

		failed := uniqueID("hookfail")
		_, stderr, exit = d.ctr(t, ns, "run", "--rm", "--runtime", runtimeEnarx, "--config", spec(t, true), failed)
		if exit == 0 || !strings.Contains(stderr, "createRuntime") {
			t.Errorf("a failing createRuntime hook: exit %d, stderr %q; want the create refused naming the hook", exit, stderr)
		}
		d.ctr(t, ns, "containers", "rm", failed)
		assertNoLeftovers(t, failed)
	})
}
