// Package systemdtest starts a real systemd for tests of the systemd
// cgroup driver on machines where systemd is not PID 1: Debian's
// /lib/systemd/systemd as PID 1 of a private PID and mount namespace, with
// a private /run (its bus socket /run/systemd/private) and a cgroup of its
// own as its root. Processes that talk to it run in its namespaces
// (Command), because systemd takes the PIDs of a unit's processes in its
// own PID namespace.
//
// Two layouts: Hybrid hands it the host's cgroup v1 hierarchies with the
// name=systemd and unified ones (bind mounted on a /sys/fs/cgroup tmpfs of
// its own, so that systemd's remounts stay in its namespace), as on a
// cgroup v1 hybrid host; Unified mounts the cgroup2 hierarchy on its
// /sys/fs/cgroup, as on a unified host (the controllers that the host binds
// to v1 are missing there).
package systemdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/internal/starter"
)

// Layout is the cgroup file system systemd is given.
type Layout string

const (
	// Hybrid: the host's cgroup v1 hierarchies, name=systemd and unified.
	Hybrid Layout = "hybrid"
	// Unified: the cgroup2 hierarchy alone at /sys/fs/cgroup.
	Unified Layout = "unified"
)

// InsideEnv is set in the environment of the processes Command starts:
// its value is the layout.
const InsideEnv = "ENARX_SYSTEMD_TEST"

// Inside reports whether this process runs in a test systemd's
// namespaces, and in which layout.
func Inside() (Layout, bool) {
	l := os.Getenv(InsideEnv)
	return Layout(l), l != ""
}

// Systemd is a systemd running as PID 1 of its own namespaces.
type Systemd struct {
	// PID is systemd's PID in the test's PID namespace.
	PID int
	// Root is its root cgroup: a unit's control group is below it.
	Root   string
	Layout Layout

	unshare *exec.Cmd
	exited  chan struct{}
	log     *bytes.Buffer
	// unbound are the cgroup v1 controllers the host mounts nowhere: a
	// hybrid systemd mounts them in its namespace.
	unbound map[string]bool
	// lock is held while systemd runs (see lockFile).
	lock *os.File
}

// lockFile serialises the test systemds of the test binaries that go test
// runs at once: each binds the host's unmounted v1 controllers to
// hierarchies of its namespace, which only the last to stop can release.
const lockFile = "/tmp/enarx-systemdtest.lock"

// Executable is the systemd binary Start runs, "" when there is none.
func Executable() string {
	for _, p := range []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require skips the test when Start cannot run a systemd with layout
// here: always when the host's cgroup file system is of another layout,
// and, when the machine lacks what the systemd driver's tests need (root,
// systemd, util-linux), only outside CI (CI=true fails the test).
func Require(t testing.TB, layout Layout) {
	t.Helper()
	reason, lacks := missing(layout)
	switch {
	case reason == "":
	case lacks && os.Getenv("CI") == "true":
		t.Fatalf("cannot start systemd (%s layout): %s", layout, reason)
	default:
		t.Skipf("cannot start systemd (%s layout): %s", layout, reason)
	}
}

// missing is why Start cannot run a systemd with layout on this machine,
// "" when it can; lacks says that the machine lacks something, rather
// than has another layout.
func missing(layout Layout) (reason string, lacks bool) {
	if r := lack(); r != "" {
		return r, true
	}
	return otherLayout(layout), false
}

func lack() string {
	if os.Geteuid() != 0 {
		return "starting systemd in namespaces of its own needs root"
	}
	if Executable() == "" {
		return "no systemd binary (/lib/systemd/systemd): apt-get install systemd"
	}
	for _, tool := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " (util-linux) is not installed"
		}
	}
	return ""
}

// otherLayout is why the host's cgroups cannot give systemd layout.
func otherLayout(layout Layout) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "no cgroup file system at /sys/fs/cgroup"
	}
	const cgroup2Magic = 0x63677270
	hostUnified := st.Type == cgroup2Magic
	switch layout {
	case Hybrid:
		if hostUnified {
			return "the host is cgroup v2 only: a hybrid systemd needs the cgroup v1 hierarchies"
		}
		if _, err := os.Stat("/sys/fs/cgroup/systemd/cgroup.procs"); err != nil {
			return "the host has no name=systemd cgroup v1 hierarchy at /sys/fs/cgroup/systemd"
		}
		if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
			return "the host has no cgroup2 hierarchy at /sys/fs/cgroup/unified"
		}
	case Unified:
		if !hostUnified {
			if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err != nil {
				return "the host has no cgroup2 hierarchy (/sys/fs/cgroup/unified)"
			}
		}
	}
	return ""
}

// startScript runs in the new namespaces (as PID 1) and execs systemd.
// $1 is the root cgroup, $2 the layout, $3 a private directory, $4 systemd.
const startScript = `set -eu
root=$1 layout=$2 dir=$3 systemd=$4
# The root cgroup of the test's systemd, in every hierarchy.
if [ -d /sys/fs/cgroup/cpuset ] && [ ! -L /sys/fs/cgroup/cpuset ]; then
	mkdir -p /sys/fs/cgroup/cpuset$root
	cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset$root/cpuset.cpus
	cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset$root/cpuset.mems
fi
if [ -f /sys/fs/cgroup/cgroup.procs ]; then
	mkdir -p /sys/fs/cgroup$root
	echo $$ > /sys/fs/cgroup$root/cgroup.procs
else
	for h in /sys/fs/cgroup/*; do
		[ -L "$h" ] && continue
		[ -f "$h/cgroup.procs" ] || continue
		mkdir -p "$h$root"
		echo $$ > "$h$root/cgroup.procs"
	done
fi
# Its own /sys/fs/cgroup: systemd mounts and remounts there.
mkdir -p "$dir/host-cgroup"
mount --rbind /sys/fs/cgroup "$dir/host-cgroup"
if [ "$layout" = unified ]; then
	if [ -f "$dir/host-cgroup/cgroup.procs" ]; then
		mount --bind "$dir/host-cgroup" /sys/fs/cgroup
	else
		mount --bind "$dir/host-cgroup/unified" /sys/fs/cgroup
	fi
else
	mount -t tmpfs -o mode=755 enarx-test-cgroup /sys/fs/cgroup
	for h in "$dir"/host-cgroup/*; do
		n=${h##*/}
		if [ -L "$h" ]; then
			ln -s "$(readlink "$h")" "/sys/fs/cgroup/$n"
		else
			mkdir "/sys/fs/cgroup/$n"
			mount --bind "$h" "/sys/fs/cgroup/$n"
		fi
	done
fi
umount -l "$dir/host-cgroup"
mount -t tmpfs -o mode=755 enarx-test-run /run
mkdir -p "$dir/units"
printf '[Unit]\nDescription=enarx systemd driver tests\n' > "$dir/units/enarx-test.target"
export container=enarx-test SYSTEMD_UNIT_PATH="$dir/units:"
exec "$systemd" --system --unit=enarx-test.target
`

// Start starts systemd with layout, and stops it at the end of the test.
// It fails the test when systemd cannot be started; call Require first to
// skip where it cannot.
func Start(t testing.TB, layout Layout) *Systemd {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s := &Systemd{Root: "/enarx-systemd-" + hex.EncodeToString(b), Layout: layout, exited: make(chan struct{}), log: &bytes.Buffer{}}
	dir := t.TempDir()
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock %s: %v", lockFile, err)
	}
	s.lock = lock
	s.unbound = hostUnmounted()
	s.unshare = exec.Command("unshare", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
		"sh", "-c", startScript, "start", s.Root, string(layout), dir, Executable())
	s.unshare.Stdout, s.unshare.Stderr = s.log, s.log
	// The namespace dies with the test binary: with the thread that
	// started it, which must then live as long as the binary does.
	s.unshare.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := starter.Run(s.unshare.Start); err != nil {
		lock.Close()
		t.Fatalf("start systemd: %v", err)
	}
	go func() {
		_ = s.unshare.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(30 * time.Second)
	for {
		if s.PID == 0 {
			s.PID = child(s.unshare.Process.Pid)
		}
		if s.PID != 0 {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.PID))
			_, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", s.PID))
			if strings.TrimSpace(string(comm)) == "systemd" && err == nil {
				break
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("systemd (%s layout) exited before it was ready: %v\n%s", layout, s.unshare.ProcessState, s.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd (%s layout) did not open /run/systemd/private within 30s\n%s", layout, s.log)
		}
	}
	// Ready for units once its start-up job is done.
	for time.Now().Before(deadline) {
		out, _ := s.Command("systemctl", "is-system-running").Output()
		state := strings.TrimSpace(string(out))
		if state == "running" || state == "degraded" {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("systemd (%s layout) is not running after 30s", layout)
	return nil
}

// child is the first child of process pid, 0 when it has none yet.
func child(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// Command is a command that runs in systemd's PID and mount namespaces,
// with InsideEnv set to the layout: its processes have PIDs that systemd
// knows, and it finds systemd at /run/systemd/private.
func (s *Systemd) Command(name string, args ...string) *exec.Cmd {
	return s.CommandContext(context.Background(), name, args...)
}

// CommandContext is Command, killed when ctx is done.
func (s *Systemd) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(s.PID), "--mount", "--pid", "--", name}, args...)...)
	cmd.Env = append(os.Environ(), InsideEnv+"="+string(s.Layout))
	return cmd
}

// RunTest runs the test binary's test name (a top-level test) in
// systemd's namespaces, and fails t when it fails. The test finds itself
// inside with Inside.
func (s *Systemd) RunTest(t *testing.T, name string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run", "^" + name + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout", time.Until(d).Round(time.Second).String())
	}
	out, err := s.Command(exe, args...).CombinedOutput()
	t.Logf("%s in systemd's namespaces (%s layout, root cgroup %s):\n%s", name, s.Layout, s.Root, out)
	if err != nil {
		t.Fatalf("%s in systemd's namespaces: %v", name, err)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+name)) {
		t.Fatalf("%s did not pass in systemd's namespaces", name)
	}
}

// stop removes what tests left in the cgroups below systemd's root (in
// the hierarchies it mounted, which the host does not see, too), powers
// systemd off and removes its root cgroup.
func (s *Systemd) stop(t testing.TB) {
	if s.PID != 0 {
		clean := fmt.Sprintf(`for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do [ -d "$h%s" ] && find "$h%s" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; done; true`, s.Root, s.Root)
		_ = s.Command("sh", "-c", clean).Run()
		// SIGRTMIN+4 (glibc's SIGRTMIN is 34): systemd's poweroff.
		_ = syscall.Kill(s.PID, syscall.Signal(38))
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		t.Logf("systemd did not power off within 20s: killed")
		_ = s.unshare.Process.Kill()
		<-s.exited
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", s.Root))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", s.Root))
	for _, d := range dirs {
		removeTree(d)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Logf("systemd's cgroup %s is left: %v", d, err)
		}
	}
	s.release(t)
	if s.lock != nil {
		s.lock.Close() // unlocks
	}
}

// hostUnmounted are the cgroup v1 controllers that no cgroup mount of
// this mount namespace holds.
func hostUnmounted() map[string]bool {
	m := map[string]bool{}
	for c := range hierarchies() {
		m[c] = true
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(line, " - cgroup ")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if len(f) < 2 {
			continue
		}
		for _, opt := range strings.Split(f[1], ",") {
			delete(m, opt)
		}
	}
	return m
}

// release gives back the controllers that systemd bound to cgroup v1
// hierarchies mounted only in its namespace (hugetlb, perf_event,
// net_cls, ... on a hybrid host): such a hierarchy lives on, its
// controllers missing from cgroup2, while it has cgroups below its root.
// Each is mounted, the root cgroup of systemd removed from it, and
// unmounted, until the kernel has let it go (it does so at an unmount
// that finds no child, dying ones included).
func (s *Systemd) release(t testing.TB) {
	bound := map[int][]string{}
	for c, h := range hierarchies() {
		if h != 0 && s.unbound[c] {
			bound[h] = append(bound[h], c)
		}
	}
	for _, controllers := range bound {
		mnt, err := os.MkdirTemp("", "enarx-cgroup-")
		if err != nil {
			t.Logf("release %v: %v", controllers, err)
			continue
		}
		released := false
		for try := 0; try < 10 && !released; try++ {
			if err := syscall.Mount("enarx-test", mnt, "cgroup", 0, strings.Join(controllers, ",")); err != nil {
				t.Logf("release %v: mount: %v", controllers, err)
				break
			}
			removeTree(filepath.Join(mnt, s.Root))
			time.Sleep(time.Duration(try) * 50 * time.Millisecond)
			_ = syscall.Unmount(mnt, 0)
			// The kernel lets it go after the unmount, not at once.
			for wait := 0; wait < 100 && !released; wait++ {
				time.Sleep(10 * time.Millisecond)
				released = hierarchies()[controllers[0]] == 0
			}
		}
		_ = os.Remove(mnt)
		if !released {
			t.Logf("cgroup v1 controllers %v stay bound to a hierarchy that systemd mounted", controllers)
		}
	}
}

// hierarchies maps each cgroup controller to its v1 hierarchy, 0 when
// it is bound to none (/proc/cgroups).
func hierarchies() map[string]int {
	m := map[string]int{}
	b, _ := os.ReadFile("/proc/cgroups")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		h, err := strconv.Atoi(f[1])
		if err == nil {
			m[f[0]] = h
		}
	}
	return m
}

// removeTree removes the cgroup directory dir, its children first.
func removeTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	_ = os.Remove(dir)
}
