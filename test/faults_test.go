package test

// Fault tests (docs/reliability.md): containerd restarts while Keeps
// run, the shim is SIGKILLed, a Keep crashes. Each runs on both daemons and
// checks the statuses containerd reports and that nothing is left behind.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
)

// annotationSandboxID groups containers in one shim, as the CRI plugin does
// for the containers of a pod.
const annotationSandboxID = "io.kubernetes.cri.sandbox-id"

// faultImages imports the images the fault tests run: sleep (sleeps for
// its argument) and exit (exits with its first argument once the file
// named by its second exists).
func faultImages(t *testing.T, d *Daemon, ns string) (sleep, exit string) {
	t.Helper()
	sleep = importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
	exit = importWasmImage(t, d, ns, "docker.io/enarx-test/exit:latest", buildGoWasm(t, "exit"), false)
	return sleep, exit
}

// runKeep starts a container detached (`ctr run -d`), in the shim of group
// when group is not empty.
func runKeep(t *testing.T, d *Daemon, ns, group string, opts []string, ref, id string, args ...string) {
	t.Helper()
	cmd := []string{"run", "-d", "--runtime", runtimeEnarx}
	if group != "" {
		cmd = append(cmd, "--annotation", annotationSandboxID+"="+group)
	}
	cmd = append(append(cmd, opts...), ref, id)
	d.mustCtr(t, ns, append(cmd, args...)...)
}

// trigger is a directory mounted into an exit container at /trigger: the
// workload exits once the test creates the file it waits for.
type trigger struct{ dir string }

func newTrigger(t *testing.T) trigger { return trigger{dir: t.TempDir()} }

// mount is the ctr option that mounts the trigger directory.
func (tr trigger) mount() []string {
	return []string{"--mount", "type=bind,src=" + tr.dir + ",dst=/trigger,options=rbind:rw"}
}

// args are the exit workload's arguments: exit with status once name exists.
func (tr trigger) args(status int, name string) []string {
	return []string{"/app.wasm", strconv.Itoa(status), "/trigger/" + name}
}

func (tr trigger) fire(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tr.dir, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// taskPID is the PID `ctr tasks ls` shows for id (0 if absent).
func taskPID(t testing.TB, d *Daemon, ns, id string) int {
	t.Helper()
	for _, line := range readLines(d.mustCtr(t, ns, "tasks", "ls")) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid
		}
	}
	return 0
}

// deleteExit matches the warning `ctr tasks delete` prints for a non-zero status.
var deleteExit = regexp.MustCompile(`exit with non-zero exit code (\d+)`)

// deleteTask runs `ctr tasks delete id` and returns the exit status it reports.
func deleteTask(t testing.TB, d *Daemon, ns, id string) int {
	t.Helper()
	_, stderr, exit := d.ctr(t, ns, "tasks", "delete", id)
	if exit != 0 {
		t.Fatalf("%s: ctr tasks delete %s: exit %d: %s", d.Name, id, exit, stderr)
	}
	if m := deleteExit.FindStringSubmatch(stderr); m != nil {
		status, _ := strconv.Atoi(m[1])
		return status
	}
	return 0
}

// waitGone waits until pid has exited, and fails the test otherwise.
func waitGone(t testing.TB, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still running", what, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRetired waits until the shim server pid, whose tasks are all
// deleted, has exited or is the spare of its daemon (its command line then
// names no container, and ends in "spare"), and fails the test otherwise.
func waitRetired(t testing.TB, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"); args[len(args)-1] == "spare" && !slices.Contains(args, "-id") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still serving: %q", what, pid, cmdline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventWatch is `ctr events` running for the length of a test.
type eventWatch struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (w *eventWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// watchEvents starts `ctr events` on d, returns once it receives events of
// namespace ns, and stops it (by its PID) when the test ends.
func watchEvents(t *testing.T, d *Daemon, ns string) *eventWatch {
	t.Helper()
	w := &eventWatch{}
	cmd := exec.Command(d.Ctr, "--address", d.Address, "events")
	cmd.Env = cleanEnv()
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	// `ctr events` says nothing of its subscription: label the namespace
	// (with a key of the tests' own under enarxdev.Prefix) until the watch
	// sees the label's event.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		mark := enarxdev.Prefix + "e2e-sync=" + strconv.Itoa(i)
		d.mustCtr(t, ns, "namespaces", "label", ns, mark)
		for wait := time.Now().Add(200 * time.Millisecond); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
			w.mu.Lock()
			seen := strings.Contains(w.out.String(), " "+ns+" /namespaces/update ") && strings.Contains(w.out.String(), strings.Replace(mark, "=", `":"`, 1))
			w.mu.Unlock()
			if seen {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctr events saw no event of %s", ns)
		}
	}
}

// taskEvent is the payload of a /tasks/exit or /tasks/delete event.
type taskEvent struct {
	ContainerID string `json:"container_id"`
	ExitStatus  int    `json:"exit_status"`
}

// status waits for the first event of topic for container id in ns and
// returns its exit status.
func (w *eventWatch) status(t *testing.T, ns, topic, id string) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got := w.statuses(t, ns, topic, id); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("no %s event for %s in %s:\n%s", topic, id, ns, w.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statuses returns the exit statuses of the events of topic for container
// id in ns seen so far, in order.
func (w *eventWatch) statuses(t *testing.T, ns, topic, id string) []int {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, line := range readLines(w.out.String()) {
		i := strings.Index(line, " "+ns+" "+topic+" ")
		if i < 0 {
			continue
		}
		var e taskEvent
		if err := json.Unmarshal([]byte(line[i+len(ns)+len(topic)+3:]), &e); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		if e.ContainerID == id {
			out = append(out, e.ExitStatus)
		}
	}
	return out
}

// shimPID is the PID of the one shim server of d serving group (the
// container ID of a shim of its own).
func shimPID(t testing.TB, d *Daemon, group string) int {
	t.Helper()
	shims := shimsOf(d, group)
	if len(shims) != 1 {
		t.Fatalf("%s: shims serving %s: %v, want one", d.Name, group, shims)
	}
	return shims[0].PID
}

// shimSocket is the socket of the shim serving group in ns.
func shimSocket(d *Daemon, ns, group string) string {
	sum := sha256.Sum256([]byte(filepath.Join(d.Address, ns, group)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}

// cgroupDirs lists the cgroup directories of container id in ns (ctr puts
// a container in /NAMESPACE/ID) in any hierarchy.
func cgroupDirs(ns, id string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns, id))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ns, id)); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ns, id))
	}
	return dirs
}

// assertNothingLeft checks that a container whose task is gone left
// nothing: no process naming it, no bundle, no mount, no cgroup, and no
// socket of the shim of group (the container itself when not grouped).
func assertNothingLeft(t *testing.T, d *Daemon, ns, group, id string) {
	t.Helper()
	assertNoLeftovers(t, id)
	assertNoTaskState(t, d, ns, id)
	if dirs := cgroupDirs(ns, id); len(dirs) != 0 {
		t.Errorf("cgroups of %s left: %v", id, dirs)
	}
	if _, err := os.Stat(shimSocket(d, ns, group)); err == nil {
		t.Errorf("the socket of the shim of %s is left", group)
	}
}

// restartAgain runs a new container with the same id as one whose task
// went away (in the same group), checks that it runs and stops it.
func restartAgain(t *testing.T, d *Daemon, ns, group, ref, id string) {
	t.Helper()
	d.mustCtr(t, ns, "containers", "rm", id)
	runKeep(t, d, ns, group, nil, ref, id, "/app.wasm", "1h")
	waitStatus(t, d, ns, id, "RUNNING")
	d.mustCtr(t, ns, "tasks", "kill", id)
	waitStatus(t, d, ns, id, "STOPPED")
	if got := deleteTask(t, d, ns, id); got != 143 {
		t.Errorf("the new %s: exit status %d after SIGTERM, want 143", id, got)
	}
	d.mustCtr(t, ns, "containers", "rm", id)
}

// TestFaultContainerdRestart stops containerd while Keeps run, in a shim of
// their own and in a grouped shim, and starts it again. The shims keep
// the Keeps running and containerd reconnects to them: the running tasks are
// still RUNNING with the same Keeps, a Keep that exited while containerd was
// down is STOPPED with its status (3) for `ctr tasks delete`, a Keep that
// exits after the restart is reported by a /tasks/exit event through the
// shim's new connection, and kill and delete work after the restart.
func TestFaultContainerdRestart(t *testing.T) {
	for _, kind := range daemonKinds {
		t.Run(string(kind), func(t *testing.T) {
			d := startDaemon(t, kind)
			ns := newNamespace(t, d)
			sleepRef, exitRef := faultImages(t, d, ns)
			tr := newTrigger(t)
			group := uniqueID("pod")
			solo, soloDown := uniqueID("solo"), uniqueID("solo-down")
			grpSleep, grpDown, grpAfter := uniqueID("grp-sleep"), uniqueID("grp-down"), uniqueID("grp-after")

			runKeep(t, d, ns, "", nil, sleepRef, solo, "/app.wasm", "1h")
			runKeep(t, d, ns, "", tr.mount(), exitRef, soloDown, tr.args(3, "solo-down")...)
			runKeep(t, d, ns, group, nil, sleepRef, grpSleep, "/app.wasm", "1h")
			runKeep(t, d, ns, group, tr.mount(), exitRef, grpDown, tr.args(3, "grp-down")...)
			runKeep(t, d, ns, group, tr.mount(), exitRef, grpAfter, tr.args(3, "grp-after")...)
			all := []string{solo, soloDown, grpSleep, grpDown, grpAfter}
			keeps := map[string]int{}
			for _, id := range all {
				waitStatus(t, d, ns, id, "RUNNING")
				keeps[id] = taskPID(t, d, ns, id)
			}
			shims := map[string]int{solo: shimPID(t, d, solo), soloDown: shimPID(t, d, soloDown), group: shimPID(t, d, group)}

			if err := d.terminate(); err != nil {
				t.Fatal(err)
			}
			// Two Keeps exit while containerd is down, for longer than a
			// second (the shim retries their exit events meanwhile).
			tr.fire(t, "solo-down")
			tr.fire(t, "grp-down")
			waitGone(t, soloDown+"'s Keep", keeps[soloDown])
			waitGone(t, grpDown+"'s Keep", keeps[grpDown])
			time.Sleep(1500 * time.Millisecond)
			if err := d.start(); err != nil {
				t.Fatalf("restarting %s: %v", d.Name, err)
			}
			t.Logf("%s restarted in %v", d.Name, d.StartTime.Round(time.Millisecond))
			events := watchEvents(t, d, ns)

			for name, pid := range shims {
				if got := shimPID(t, d, name); got != pid || !processAlive(pid) {
					t.Errorf("the shim of %s is pid %d after the restart, was %d", name, got, pid)
				}
			}
			for _, c := range []struct {
				id, status string
			}{{solo, "RUNNING"}, {grpSleep, "RUNNING"}, {grpAfter, "RUNNING"}, {soloDown, "STOPPED"}, {grpDown, "STOPPED"}} {
				if got := taskStatus(t, d, ns, c.id); got != c.status {
					t.Errorf("after the restart %s is %q, want %s", c.id, got, c.status)
				}
				if got := taskPID(t, d, ns, c.id); got != keeps[c.id] {
					t.Errorf("after the restart %s has pid %d, was %d", c.id, got, keeps[c.id])
				}
			}

			// A Keep that exits after the restart.
			tr.fire(t, "grp-after")
			if got := events.status(t, ns, "/tasks/exit", grpAfter); got != 3 {
				t.Errorf("%s: /tasks/exit with status %d after the restart, want 3", grpAfter, got)
			}
			waitStatus(t, d, ns, grpAfter, "STOPPED")

			// Kill after the restart.
			d.mustCtr(t, ns, "tasks", "kill", solo)
			d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", grpSleep)
			if got := events.status(t, ns, "/tasks/exit", solo); got != 143 {
				t.Errorf("%s: /tasks/exit with status %d after SIGTERM, want 143", solo, got)
			}
			if got := events.status(t, ns, "/tasks/exit", grpSleep); got != 137 {
				t.Errorf("%s: /tasks/exit with status %d after SIGKILL, want 137", grpSleep, got)
			}

			want := map[string]int{solo: 143, soloDown: 3, grpSleep: 137, grpDown: 3, grpAfter: 3}
			for _, id := range all {
				waitStatus(t, d, ns, id, "STOPPED")
				if got := deleteTask(t, d, ns, id); got != want[id] {
					t.Errorf("ctr tasks delete %s: exit status %d, want %d", id, got, want[id])
				}
				if got := events.status(t, ns, "/tasks/delete", id); got != want[id] {
					t.Errorf("%s: /tasks/delete with status %d, want %d", id, got, want[id])
				}
				d.mustCtr(t, ns, "containers", "rm", id)
			}
			for _, id := range all {
				g := id
				if strings.HasPrefix(id, "grp-") {
					g = group
				}
				assertNothingLeft(t, d, ns, g, id)
			}
			assertNoLeftovers(t, group)
		})
	}
}

// TestFaultShimKilled SIGKILLs shims while their Keeps run: one serving a
// container of its own, one serving a group of two (one running, one
// that has exited with 3 and is not deleted yet). containerd sees the shims
// disconnect and runs `containerd-shim-enarx-v1 delete` for each container,
// which must end the Keeps: the exit events carry 137 for the Keeps it
// killed and 3 for the one that had exited, and no process, socket, mount,
// bundle or cgroup is left. A new container with the same ID then runs.
func TestFaultShimKilled(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		sleepRef, exitRef := faultImages(t, d, ns)
		tr := newTrigger(t)
		events := watchEvents(t, d, ns)
		group := uniqueID("pod")
		solo, grpRun, grpExited := uniqueID("solo"), uniqueID("grp-run"), uniqueID("grp-exited")

		runKeep(t, d, ns, "", nil, sleepRef, solo, "/app.wasm", "1h")
		runKeep(t, d, ns, group, nil, sleepRef, grpRun, "/app.wasm", "1h")
		runKeep(t, d, ns, group, tr.mount(), exitRef, grpExited, tr.args(3, "exit")...)
		keeps := map[string]int{}
		for _, id := range []string{solo, grpRun, grpExited} {
			waitStatus(t, d, ns, id, "RUNNING")
			keeps[id] = taskPID(t, d, ns, id)
		}
		tr.fire(t, "exit")
		waitStatus(t, d, ns, grpExited, "STOPPED")
		if got := events.status(t, ns, "/tasks/exit", grpExited); got != 3 {
			t.Fatalf("%s: /tasks/exit with status %d, want 3", grpExited, got)
		}
		soloShim, groupShim := shimPID(t, d, solo), shimPID(t, d, group)
		for _, id := range []string{solo, grpRun, grpExited} {
			if len(cgroupDirs(ns, id)) == 0 {
				t.Errorf("%s has no cgroup: the test would not see one left behind", id)
			}
		}

		for _, pid := range []int{soloShim, groupShim} {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill shim %d: %v", pid, err)
			}
		}
		// containerd's cleanup reports each task ended, with the status
		// `shim delete` gives.
		want := map[string]int{solo: 137, grpRun: 137, grpExited: 3}
		for id, status := range want {
			if got := events.status(t, ns, "/tasks/delete", id); got != status {
				t.Errorf("%s: /tasks/delete with status %d after the shim was killed, want %d", id, got, status)
			}
		}
		// The exit that had been reported is reported again by
		// containerd's cleanup, with the same status.
		if got := events.statuses(t, ns, "/tasks/exit", grpExited); len(got) != 2 || got[0] != 3 || got[1] != 3 {
			t.Errorf("%s: /tasks/exit events with statuses %v, want 3 from the shim and 3 from containerd's cleanup", grpExited, got)
		}
		for _, id := range []string{solo, grpRun} {
			if got := events.status(t, ns, "/tasks/exit", id); got != 137 {
				t.Errorf("%s: /tasks/exit with status %d after the shim was killed, want 137", id, got)
			}
			waitGone(t, id+"'s Keep", keeps[id])
		}
		for _, pid := range []int{soloShim, groupShim} {
			waitGone(t, "shim", pid)
		}
		for _, id := range []string{solo, grpRun, grpExited} {
			if got := taskStatus(t, d, ns, id); got != "" {
				t.Errorf("%s is %s after its shim was killed, want no task", id, got)
			}
		}
		assertNothingLeft(t, d, ns, solo, solo)
		for _, id := range []string{grpRun, grpExited} {
			assertNothingLeft(t, d, ns, group, id)
		}
		assertNoLeftovers(t, group)

		// The same IDs again, in the same group.
		restartAgain(t, d, ns, "", sleepRef, solo)
		restartAgain(t, d, ns, group, sleepRef, grpRun)
		restartAgain(t, d, ns, group, sleepRef, grpExited)
		assertNothingLeft(t, d, ns, solo, solo)
		for _, id := range []string{grpRun, grpExited} {
			assertNothingLeft(t, d, ns, group, id)
		}
	})
}

// TestFaultKeepCrash kills Keeps from outside the way a crash ends them:
// SIGKILL (the OOM killer's way), SIGSEGV and SIGABRT (an engine fault or
// abort), SIGSEGV during busy WebAssembly code; one Keep in a shim of its
// own, the others in a grouped shim with two siblings. Each task exits with
// the signal's status (137, 139, 134), the shims stay up, and the siblings
// are unaffected: still RUNNING with the same Keeps, their exit still
// reported, and they stop and delete normally.
func TestFaultKeepCrash(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		sleepRef, exitRef := faultImages(t, d, ns)
		loopRef := importWasmImage(t, d, ns, "docker.io/enarx-test/loop:latest", buildGoWasm(t, "loop"), false)
		tr := newTrigger(t)
		logs := t.TempDir()
		events := watchEvents(t, d, ns)
		group := uniqueID("pod")
		solo := uniqueID("solo-kill")
		sibSleep, sibExit := uniqueID("sib-sleep"), uniqueID("sib-exit")
		crashes := []struct {
			id    string
			group string
			ref   string
			args  []string
			sig   syscall.Signal
			want  int
		}{
			{solo, "", sleepRef, []string{"/app.wasm", "1h"}, syscall.SIGKILL, 137},
			{uniqueID("grp-kill"), group, sleepRef, []string{"/app.wasm", "1h"}, syscall.SIGKILL, 137},
			{uniqueID("grp-segv"), group, sleepRef, []string{"/app.wasm", "1h"}, syscall.SIGSEGV, 139},
			{uniqueID("grp-abrt"), group, sleepRef, []string{"/app.wasm", "1h"}, syscall.SIGABRT, 134},
			{uniqueID("grp-segv-busy"), group, loopRef, nil, syscall.SIGSEGV, 139},
		}
		runKeep(t, d, ns, group, nil, sleepRef, sibSleep, "/app.wasm", "1h")
		runKeep(t, d, ns, group, tr.mount(), exitRef, sibExit, tr.args(3, "sib-exit")...)
		for _, c := range crashes {
			log := []string{"--log-uri", "file://" + filepath.Join(logs, c.id+".log")}
			runKeep(t, d, ns, c.group, log, c.ref, c.id, c.args...)
		}
		keeps := map[string]int{}
		for _, id := range []string{sibSleep, sibExit} {
			waitStatus(t, d, ns, id, "RUNNING")
			keeps[id] = taskPID(t, d, ns, id)
		}
		for _, c := range crashes {
			waitStatus(t, d, ns, c.id, "RUNNING")
		}
		soloShim, groupShim := shimPID(t, d, solo), shimPID(t, d, group)
		time.Sleep(200 * time.Millisecond) // let the workloads get going

		for _, c := range crashes {
			pid := taskPID(t, d, ns, c.id)
			if err := syscall.Kill(pid, c.sig); err != nil {
				t.Fatalf("kill -%d %d (%s): %v", c.sig, pid, c.id, err)
			}
			if got := events.status(t, ns, "/tasks/exit", c.id); got != c.want {
				t.Errorf("%s: /tasks/exit with status %d after %v, want %d", c.id, got, c.sig, c.want)
			}
			waitStatus(t, d, ns, c.id, "STOPPED")
			waitGone(t, c.id+"'s Keep", pid)
			// The shims are up, the siblings untouched.
			for _, shim := range []int{soloShim, groupShim} {
				if !processAlive(shim) {
					t.Fatalf("shim %d died with the Keep of %s", shim, c.id)
				}
			}
			for _, id := range []string{sibSleep, sibExit} {
				if got := taskStatus(t, d, ns, id); got != "RUNNING" || taskPID(t, d, ns, id) != keeps[id] || !processAlive(keeps[id]) {
					t.Errorf("after %s's Keep got %v, sibling %s is %s", c.id, c.sig, id, got)
				}
			}
			if c.sig != syscall.SIGKILL {
				b, _ := os.ReadFile(filepath.Join(logs, c.id+".log"))
				if want := "killed by signal " + unix.SignalName(c.sig); !strings.Contains(string(b), want) {
					t.Errorf("%s's log %q does not say %q", c.id, b, want)
				}
			}
		}
		for _, c := range crashes {
			if got := deleteTask(t, d, ns, c.id); got != c.want {
				t.Errorf("ctr tasks delete %s: exit status %d, want %d", c.id, got, c.want)
			}
			d.mustCtr(t, ns, "containers", "rm", c.id)
		}
		if !processAlive(groupShim) {
			t.Fatal("the grouped shim ended with its siblings still running")
		}

		// The siblings still answer: ps, and their exits are reported.
		for _, id := range []string{sibSleep, sibExit} {
			if out := d.mustCtr(t, ns, "tasks", "ps", id); !strings.Contains(out, strconv.Itoa(keeps[id])) {
				t.Errorf("tasks ps %s: %q, want its Keep %d", id, out, keeps[id])
			}
		}
		tr.fire(t, "sib-exit")
		if got := events.status(t, ns, "/tasks/exit", sibExit); got != 3 {
			t.Errorf("%s: /tasks/exit with status %d, want 3", sibExit, got)
		}
		d.mustCtr(t, ns, "tasks", "kill", sibSleep)
		if got := events.status(t, ns, "/tasks/exit", sibSleep); got != 143 {
			t.Errorf("%s: /tasks/exit with status %d, want 143", sibSleep, got)
		}
		for id, want := range map[string]int{sibExit: 3, sibSleep: 143} {
			waitStatus(t, d, ns, id, "STOPPED")
			if got := deleteTask(t, d, ns, id); got != want {
				t.Errorf("ctr tasks delete %s: exit status %d, want %d", id, got, want)
			}
			d.mustCtr(t, ns, "containers", "rm", id)
		}
		// Each exit reported once.
		for _, id := range []string{sibSleep, sibExit, crashes[2].id} {
			if got := events.statuses(t, ns, "/tasks/exit", id); len(got) != 1 {
				t.Errorf("%s: /tasks/exit events with statuses %v, want one", id, got)
			}
		}
		for _, c := range crashes {
			g := c.group
			if g == "" {
				g = c.id
			}
			assertNothingLeft(t, d, ns, g, c.id)
		}
		for _, id := range []string{sibSleep, sibExit} {
			assertNothingLeft(t, d, ns, group, id)
		}
		waitRetired(t, "the grouped shim", groupShim)
		waitRetired(t, "the shim of "+solo, soloShim)
	})
}
