package cgroup

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup/cgrouptest"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
)

// hybridUnified is where a hybrid host mounts the cgroup2 hierarchy.
const hybridUnified = "/sys/fs/cgroup/unified"

// TestPlacement starts a process in a cgroup as a Keep is started: by a
// thread that joined it alone (cgroup v1) or by CLONE_INTO_CGROUP (v2).
// The process is in the cgroup from its start, alone: no thread of the
// caller is there, or anywhere but where it was. On a hybrid host, v2 is
// its cgroup2 hierarchy, whose groups have no controllers (the v1
// hierarchies hold them) but place processes all the same.
func TestPlacement(t *testing.T) {
	cgrouptest.Require(t)
	t.Run("v1", func(t *testing.T) {
		if cgroups.Mode() == cgroups.Unified {
			t.Skip("a unified host has no cgroup v1 hierarchies")
		}
		cg, err := New(cgrouptest.Path(t, "placed"), nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		checkPlacement(t, cg, JoinThread)
	})
	t.Run("v2", func(t *testing.T) {
		var cg *Cgroup
		switch cgroups.Mode() {
		case cgroups.Unified:
			var err error
			if cg, err = New(cgrouptest.Path(t, "placed"), nil); err != nil {
				t.Fatalf("New: %v", err)
			}
		case cgroups.Hybrid:
			// Made as New makes a v2 group on a unified host, but with no
			// controllers enabled in the root: a controller enabled there
			// may no longer be bound to a v1 hierarchy (see systemdtest).
			group := cgrouptest.Path(t, "placed")
			m, err := cgroup2.NewManager(hybridUnified, group, &cgroup2.Resources{})
			if err != nil {
				t.Fatalf("make %s in %s: %v", group, hybridUnified, err)
			}
			cg = &Cgroup{path: group, v2: m, v2dir: filepath.Join(hybridUnified, group)}
		default:
			t.Skip("this host has no cgroup2 hierarchy")
		}
		checkPlacement(t, cg, CloneInto)
	})
}

// checkPlacement starts a process in cg, which is placed as want says.
func checkPlacement(t *testing.T, cg *Cgroup, want Placement) {
	t.Cleanup(func() { _ = cg.Delete() })
	if got := cg.Placement(); got != want {
		t.Fatalf("Placement() = %v, want %v", got, want)
	}
	before := threadCgroups(t)

	// The child reads its own cgroups at once (the shell's own read, not a
	// child's): they are what it started in.
	cmd := exec.Command("sh", "-c", `while read -r l; do echo "$l"; done </proc/self/cgroup; exec sleep 60 >&-`)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd.Stdout = w
	started := make(chan error, 1)
	switch want {
	case JoinThread:
		// As host.Start does: from a thread of its own, never the main one.
		started <- confine.Start(cmd, nil, cg.JoinThread)
	case CloneInto:
		dir, err := cg.CloneInto(cmd.SysProcAttr)
		if err != nil {
			t.Fatalf("CloneInto: %v", err)
		}
		started <- cmd.Start()
		dir.Close()
	}
	err = <-started
	w.Close()
	if err != nil {
		t.Fatalf("start in the cgroup: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// The thread that joined the cgroup ends, or is back, soon after the
	// child is made (a thread's end is not waited for).
	var pids []int
	var after map[string]string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		if pids, err = cg.Pids(); err != nil {
			t.Fatalf("Pids: %v", err)
		}
		after = threadCgroups(t)
		// sh, or sleep by now: one process either way.
		ok := slices.Equal(pids, []int{cmd.Process.Pid}) && equalThreadCgroups(before, after)
		if ok || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("the cgroup holds %v, want the child %d alone", pids, cmd.Process.Pid)
	}
	if !equalThreadCgroups(before, after) {
		t.Errorf("this process's threads moved: cgroups before %v, after %v", before, after)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || (parts[1] == "") != (want == CloneInto) {
			continue // the other cgroup version's hierarchies
		}
		checked++
		if dir := "/" + strings.TrimPrefix(cg.path, "/"); filepath.Clean(parts[2]) != dir {
			t.Errorf("the child started in %q, want %q (its /proc/self/cgroup:\n%s)", l, dir, out)
		}
	}
	if checked == 0 {
		t.Errorf("the child wrote none of its cgroups: %q", out)
	}
}

// threadCgroups is the cgroups of each thread of this process.
func threadCgroups(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "cgroup"))
		if err == nil {
			out[task.Name()] = string(b)
		}
	}
	return out
}

// equalThreadCgroups reports whether every thread in both maps is in the
// same cgroups in both, and all threads of after are where the process
// was (threads come and go).
func equalThreadCgroups(before, after map[string]string) bool {
	main := before[strconv.Itoa(os.Getpid())]
	for tid, cg := range after {
		if b, ok := before[tid]; (ok && b != cg) || cg != main {
			return false
		}
	}
	return true
}

// TestDeleteWithChildren: a cgroup with a cgroup below it (which a Keep
// does not make, but a hook or an operator may) is removed whole, by the
// library's way when rmdir(2) alone cannot.
func TestDeleteWithChildren(t *testing.T) {
	cgrouptest.Require(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("v1 hierarchies")
	}
	path := cgrouptest.Path(t, "parent")
	cg, err := New(path, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	if len(dirs) == 0 {
		t.Fatalf("no hierarchy has %s", path)
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(d, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := cg.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", d, err)
		}
	}
}
