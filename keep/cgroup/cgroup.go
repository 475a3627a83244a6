// Package cgroup is the control group of a Keep: the container's cgroup
// (linux.cgroupsPath of the OCI spec), made and filled with the spec's
// resources when the Keep starts, in which the kernel limits and accounts
// the whole Keep process, read for the container's metrics and removed with
// the task. It works on cgroup v1, hybrid and unified hosts through
// containerd's cgroups library, with the cgroupfs driver's paths
// ("/default/ID") and the systemd driver's ("slice:prefix:name", a
// transient scope unit that systemd makes over D-Bus, see systemd.go).
package cgroup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

// unifiedMountpoint is where cgroup v2 is mounted on a unified host.
const unifiedMountpoint = "/sys/fs/cgroup"

// Cgroup is the control group of a Keep: the container's cgroup
// (linux.cgroupsPath of the OCI spec), in which the kernel limits and
// accounts the whole Keep process — its engine and compiled code as well as
// its workload. On cgroup v1 and hybrid hosts it spans the v1 hierarchies;
// on unified hosts it is a cgroup v2 group.
type Cgroup struct {
	path string
	v1   cgroup1.Cgroup
	// v1path is v1's path in each hierarchy.
	v1path cgroup1.Path
	v2     *cgroup2.Manager
	// v2dir is the v2 group's directory.
	v2dir string

	// dir is the cgroup's path in each hierarchy, "" until it is known:
	// path itself for the cgroupfs driver's absolute paths, the unit's
	// control group for the systemd driver's.
	dir string
	// unit is the systemd unit of a systemd driver path, nil for a
	// cgroupfs path. Its cgroup is made by Add, with the Keep's PID in it
	// (systemd makes no empty scope): until then, res and memory wait.
	unit   *systemdUnit
	res    *specs.LinuxResources
	memory *specs.LinuxMemory
}

// checkCgroupPath checks an OCI linux.cgroupsPath of the cgroupfs driver.
// An absolute path ("/default/ID", as ctr and the cgroupfs drivers give) is
// the cgroup's path in each hierarchy; a relative one is placed under the
// calling process's own cgroup. (The systemd driver's "slice:prefix:name"
// is read by parseSystemdPath.)
func checkCgroupPath(path string) error {
	if path == "" || path == "/" || path != filepath.Clean(path) {
		return fmt.Errorf("cgroup %q: not a clean path below the root of the hierarchy", path)
	}
	return nil
}

// New creates the cgroup at path (an OCI linux.cgroupsPath), or takes it over when
// it exists, and applies res to it, devices included (the caller adds the
// rules of the devices the Keep itself uses), except the memory limit and
// swap, which SetMemoryLimit applies once the Keep has compiled its module
// (compiling a Go module takes more memory than many containers are given
// for their workload).
//
// A systemd driver path ("slice:prefix:name") names a scope that systemd
// makes when Add gives it the Keep's PID; New checks the path and that
// systemd can be reached, so that a Keep that cannot be placed never starts.
//
// res may be nil.
func New(path string, res *specs.LinuxResources) (*Cgroup, error) {
	if isSystemdPath(path) {
		u, err := parseSystemdPath(path)
		if err != nil {
			return nil, err
		}
		if _, err := systemdConn(context.Background(), path); err != nil {
			return nil, err
		}
		return &Cgroup{path: path, unit: &u, res: res}, nil
	}
	if err := checkCgroupPath(path); err != nil {
		return nil, err
	}
	applied := withoutHeldBack(res)
	c := &Cgroup{path: path}
	if strings.HasPrefix(path, "/") {
		c.dir = path
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		group, err := v2Group(path)
		if err != nil {
			return nil, err
		}
		if c.v2, err = cgroup2.NewManager(unifiedMountpoint, group, cgroup2.ToResources(applied)); err != nil {
			return nil, fmt.Errorf("cgroup %s: create: %w", path, err)
		}
		c.v2dir = filepath.Join(unifiedMountpoint, group)
		// Metrics of memory, CPU and PIDs whether or not the spec limits them.
		if ctrls, err := c.v2.RootControllers(); err == nil {
			if err := c.v2.ToggleControllers(ctrls, cgroup2.Enable); err != nil {
				return nil, fmt.Errorf("cgroup %s: enable controllers %v: %w", path, ctrls, err)
			}
		}
	case cgroups.Legacy, cgroups.Hybrid:
		var err error
		c.v1path = v1Path(path)
		if c.v1, err = cgroup1.New(c.v1path, applied); err != nil {
			return nil, fmt.Errorf("cgroup %s: create: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("cgroup %s: no cgroup file system is mounted at %s", path, unifiedMountpoint)
	}
	return c, nil
}

// Load returns the existing cgroup at path (an OCI
// linux.cgroupsPath), to read or delete it. A cgroup that does not exist is
// an error matching os.ErrNotExist.
func Load(path string) (*Cgroup, error) {
	if isSystemdPath(path) {
		return loadSystemd(context.Background(), path)
	}
	if err := checkCgroupPath(path); err != nil {
		return nil, err
	}
	c := &Cgroup{path: path}
	if strings.HasPrefix(path, "/") {
		c.dir = path
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		group, err := v2Group(path)
		if err != nil {
			return nil, err
		}
		if c.v2, err = cgroup2.Load(group); err != nil {
			return nil, fmt.Errorf("cgroup %s: load: %w", path, err)
		}
		if _, err := os.Stat(filepath.Join(unifiedMountpoint, group)); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", path, err)
		}
	case cgroups.Legacy, cgroups.Hybrid:
		var err error
		c.v1path = v1Path(path)
		if c.v1, err = cgroup1.Load(c.v1path); err != nil {
			if errors.Is(err, cgroup1.ErrCgroupDeleted) {
				return nil, fmt.Errorf("cgroup %s: %w: %w", path, err, os.ErrNotExist)
			}
			return nil, fmt.Errorf("cgroup %s: load: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("cgroup %s: no cgroup file system is mounted at %s", path, unifiedMountpoint)
	}
	return c, nil
}

// v1Path places a relative path under the caller's own cgroup, in each
// hierarchy.
func v1Path(path string) cgroup1.Path {
	if strings.HasPrefix(path, "/") {
		return cgroup1.StaticPath(path)
	}
	return cgroup1.NestedPath(path)
}

// v2Group places a relative path under the caller's own cgroup.
func v2Group(path string) (string, error) {
	if strings.HasPrefix(path, "/") {
		return path, nil
	}
	group, err := cgroup2.NestedGroupPath(path)
	if err != nil {
		return "", fmt.Errorf("cgroup %s: find own cgroup: %w", path, err)
	}
	return group, nil
}

// withoutHeldBack is res as New applies it: without the memory limit and
// swap, which wait for the workload, and without the values that runc
// reads as unset when they are 0 (the cgroup library would write them:
// cpu.rt_period_us = 0 is EINVAL, as nerdctl's specs have it).
func withoutHeldBack(res *specs.LinuxResources) *specs.LinuxResources {
	if res == nil {
		return &specs.LinuxResources{}
	}
	r := *res
	if res.Memory != nil {
		m := *res.Memory
		m.Limit, m.Swap = nil, nil
		m.Reservation, m.Kernel, m.KernelTCP = unsetZero(m.Reservation), unsetZero(m.Kernel), unsetZero(m.KernelTCP)
		r.Memory = &m
	}
	if res.CPU != nil {
		c := *res.CPU
		c.Shares, c.Period, c.RealtimePeriod = unsetZero(c.Shares), unsetZero(c.Period), unsetZero(c.RealtimePeriod)
		c.Quota, c.RealtimeRuntime = unsetZero(c.Quota), unsetZero(c.RealtimeRuntime)
		r.CPU = &c
	}
	if res.Pids != nil && res.Pids.Limit != nil && *res.Pids.Limit == 0 {
		r.Pids = nil
	}
	if res.BlockIO != nil {
		b := *res.BlockIO
		b.Weight, b.LeafWeight = unsetZero(b.Weight), unsetZero(b.LeafWeight)
		r.BlockIO = &b
	}
	return &r
}

// unsetZero is v, or nil when it points to 0.
func unsetZero[T int64 | uint64 | uint16](v *T) *T {
	if v != nil && *v == 0 {
		return nil
	}
	return v
}

// Path is the cgroup's path, as given to New or Load.
func (c *Cgroup) Path() string { return c.path }

// Add moves process pid into the cgroup. The first Add to a systemd
// driver's cgroup makes its unit with pid in it.
func (c *Cgroup) Add(pid int) error {
	if c.unit != nil && !c.made() {
		return c.startUnit(context.Background(), pid)
	}
	var err error
	if c.v2 != nil {
		err = c.v2.AddProc(uint64(pid))
	} else {
		err = c.v1.AddProc(uint64(pid))
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: add process %d: %w", c.path, pid, err)
	}
	return nil
}

// Placement is how a process is started in the cgroup from its first
// instruction, rather than moved there once it runs: moving a process
// (Add) takes a kernel-wide lock whose writer waits for an RCU grace
// period, about 10 ms on a small VM, on the start path of every Keep.
type Placement int

const (
	// MoveAfterStart: the process is started outside and moved with Add
	// (a systemd driver's unit, which systemd makes with the process in it).
	MoveAfterStart Placement = iota
	// JoinThread: the thread that makes the process first joins the cgroup
	// alone (cgroup v1, JoinThread); its child starts there.
	JoinThread
	// CloneInto: the process is made in the cgroup by clone3(2)'s
	// CLONE_INTO_CGROUP (cgroup v2, CloneInto).
	CloneInto
)

// Placement is how a process is started in c.
func (c *Cgroup) Placement() Placement {
	switch {
	case c.unit != nil:
		return MoveAfterStart
	case c.v2 != nil:
		return CloneInto
	case c.v1 != nil && c.v1path != nil:
		return JoinThread
	}
	return MoveAfterStart
}

// JoinThread moves the calling thread alone into the cgroup, in each v1
// hierarchy (its "tasks" files, given the thread itself: "0"), so that the
// processes it makes are in the cgroup from their start. Moving the calling
// thread alone is the one move that does not take the kernel's lock on
// every thread group (Linux 6.0 and later; earlier kernels take it, and
// the move is only as slow as Add's). The caller must have locked its
// goroutine to the thread (runtime.LockOSThread) and never unlock it: the
// Go runtime ends a thread whose goroutine returns locked, and the
// process must never count the caller's thread as its own (Delete kills
// what is in the cgroup). The one thread the runtime cannot end, the
// process's main one, is refused (confine.Start never uses it).
func (c *Cgroup) JoinThread() error {
	if c.v1 == nil || c.v1path == nil {
		return fmt.Errorf("cgroup %s: a thread joins a cgroup v1 hierarchy only", c.path)
	}
	if syscall.Gettid() == os.Getpid() {
		return fmt.Errorf("cgroup %s: the process's main thread, which the Go runtime never ends, cannot join a container's cgroup", c.path)
	}
	if err := c.moveThread(c.v1path); err != nil {
		return fmt.Errorf("cgroup %s: move the thread that starts the Keep: %w", c.path, err)
	}
	return nil
}

// deleteV1 removes the cgroup from each v1 hierarchy with one rmdir(2)
// each. The kernel refuses a cgroup that has processes or children, which
// the library's Delete then handles; it would otherwise walk each
// hierarchy's tree for processes and try to unlink every control file
// first (about a thousand system calls for an empty cgroup, 2 ms here).
func (c *Cgroup) deleteV1() error {
	if c.v1path == nil {
		return c.v1.Delete()
	}
	dirs, err := c.v1Dirs(c.v1path)
	if err != nil {
		return c.v1.Delete()
	}
	for _, dir := range dirs {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return c.v1.Delete()
		}
	}
	return nil
}

// moveThread moves the calling thread to path in each of c's v1
// hierarchies.
func (c *Cgroup) moveThread(path cgroup1.Path) error {
	dirs, err := c.v1Dirs(path)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte("0"), 0); err != nil {
			return err
		}
	}
	return nil
}

// v1Dirs is the directory of path in each of c's v1 hierarchies.
func (c *Cgroup) v1Dirs(path cgroup1.Path) ([]string, error) {
	var dirs []string
	for _, s := range c.v1.Subsystems() {
		h, ok := s.(interface{ Path(string) string })
		if !ok {
			continue // the library's hierarchies all have paths
		}
		dir, err := path(s.Name())
		if err != nil {
			return nil, fmt.Errorf("%s hierarchy: %w", s.Name(), err)
		}
		dirs = append(dirs, h.Path(dir))
	}
	return dirs, nil
}

// Renames reports whether a cgroup at path (an OCI linux.cgroupsPath) would
// be Renamable on this host.
func Renames(path string) bool {
	mode := cgroups.Mode()
	return !isSystemdPath(path) && strings.HasPrefix(path, "/") && (mode == cgroups.Legacy || mode == cgroups.Hybrid)
}

// Renamable reports whether Rename can move c to a sibling path: a
// cgroupfs driver's cgroup on cgroup v1, whose hierarchies rename a
// cgroup in place (cgroup v2 and systemd's units do not).
func (c *Cgroup) Renamable() bool {
	return c.unit == nil && c.v1 != nil && c.v1path != nil && c.dir != ""
}

// Rename gives c the absolute path path, which must be a sibling of its
// own (the same parent): a rename in each v1 hierarchy, which moves no
// process and no charge (the kernel's cgroup stays the same, with its
// limits, its processes and what they used), unlike a migration, which
// takes the kernel's lock on every thread group and recharges nothing. A
// path that exists already is an error (EEXIST), and c keeps its path;
// c's path is renamed in every hierarchy, or in none.
func (c *Cgroup) Rename(path string) error {
	if !c.Renamable() {
		return fmt.Errorf("cgroup %s: only a cgroup v1 cgroup of the cgroupfs driver is renamed", c.path)
	}
	if err := checkCgroupPath(path); err != nil || !strings.HasPrefix(path, "/") || filepath.Dir(path) != filepath.Dir(c.path) {
		return fmt.Errorf("cgroup %s: rename to %q: not an absolute path beside it", c.path, path)
	}
	to := v1Path(path)
	from, err := c.v1Dirs(c.v1path)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	dest, err := c.v1Dirs(to)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	// Controllers mounted together (cpu,cpuacct) share a directory.
	seen := map[string]bool{}
	var done []int
	for i := range from {
		if seen[from[i]] {
			continue
		}
		seen[from[i]] = true
		if err := os.Rename(from[i], dest[i]); err != nil {
			for _, j := range done {
				_ = os.Rename(dest[j], from[j])
			}
			return fmt.Errorf("cgroup %s: rename to %s: %w", c.path, path, err)
		}
		done = append(done, i)
	}
	v1, err := cgroup1.Load(to)
	if err != nil {
		return fmt.Errorf("cgroup %s: load after its rename from %s: %w", path, c.path, err)
	}
	c.path, c.dir, c.v1path, c.v1 = path, path, to, v1
	return nil
}

// CloneInto sets attr so that the process it makes is made in the cgroup
// (clone3's CLONE_INTO_CGROUP, cgroup v2). The caller closes the returned
// directory once the process has started.
func (c *Cgroup) CloneInto(attr *syscall.SysProcAttr) (*os.File, error) {
	if c.v2 == nil || c.v2dir == "" {
		return nil, fmt.Errorf("cgroup %s: a process is made in a cgroup v2 group only", c.path)
	}
	dir, err := os.OpenFile(c.v2dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: open for CLONE_INTO_CGROUP: %w", c.path, err)
	}
	attr.UseCgroupFD, attr.CgroupFD = true, int(dir.Fd())
	return dir, nil
}

// made reports whether the cgroup exists: a systemd driver's is made by
// the first Add.
func (c *Cgroup) made() bool { return c.v1 != nil || c.v2 != nil }

// notMade is the error of a systemd driver's cgroup read before Add made
// it.
func (c *Cgroup) notMade(what string) error {
	return fmt.Errorf("cgroup %s: %s: systemd has not made unit %s yet (it is made with the Keep's process): %w", c.path, what, c.unit.name, os.ErrNotExist)
}

// MemoryUsage is the memory the cgroup's processes use now, in bytes.
func (c *Cgroup) MemoryUsage() (uint64, error) {
	if !c.made() {
		return 0, c.notMade("memory usage")
	}
	if c.v2 != nil {
		st, err := c.v2.StatFiltered(cgroup2.StatMemory)
		if err != nil {
			return 0, fmt.Errorf("cgroup %s: memory usage: %w", c.path, err)
		}
		if st.GetMemory() == nil {
			return 0, fmt.Errorf("cgroup %s: memory usage: the memory controller is not enabled", c.path)
		}
		return st.GetMemory().GetUsage(), nil
	}
	st, err := c.v1.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: memory usage: %w", c.path, err)
	}
	if st.GetMemory().GetUsage() == nil {
		return 0, fmt.Errorf("cgroup %s: memory usage: no memory controller", c.path)
	}
	return st.GetMemory().GetUsage().GetUsage(), nil
}

// NoMemoryLimit given to SetMemoryLimit lifts the memory limit: the largest
// value, which both cgroup versions read as none (v1 shows it as
// 9223372036854771712, v2 as "max").
const NoMemoryLimit = math.MaxInt64

// OOMKilled reports whether the kernel's OOM killer has killed a process
// of the cgroup for want of memory within its limit: the oom_kill count of
// memory.events (v2) or memory.oom_control (v1). On a v1 host whose
// oom_control has no count (before Linux 4.13), it reports whether the
// memory reached its limit (failcnt).
func (c *Cgroup) OOMKilled() (bool, error) {
	if !c.made() {
		return false, c.notMade("memory events")
	}
	if c.v2 != nil {
		st, err := c.v2.Stat()
		if err != nil {
			return false, fmt.Errorf("cgroup %s: memory events: %w", c.path, err)
		}
		return st.GetMemoryEvents().GetOomKill() > 0, nil
	}
	if c.dir != "" {
		if b, err := os.ReadFile(filepath.Join(v1MemoryMountpoint, c.dir, "memory.oom_control")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
					return strings.TrimSpace(n) != "0", nil
				}
			}
		}
	}
	st, err := c.v1.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return false, fmt.Errorf("cgroup %s: memory usage: %w", c.path, err)
	}
	return st.GetMemory().GetUsage().GetFailcnt() > 0, nil
}

// v1MemoryMountpoint is where the v1 memory controller is mounted.
const v1MemoryMountpoint = "/sys/fs/cgroup/memory"

// SetMemoryLimit sets the kernel's memory limit of the cgroup to limit
// bytes and, when swap is positive, memory plus swap to swap bytes (the OCI
// spec's memory.limit and memory.swap).
func (c *Cgroup) SetMemoryLimit(limit, swap int64) error {
	mem := &specs.LinuxMemory{Limit: &limit}
	if swap > 0 {
		mem.Swap = &swap
	}
	if c.unit != nil {
		if !c.made() {
			c.memory = mem
			return nil
		}
		// systemd keeps the limit too, or would put its own back.
		if err := setSystemdProperties(context.Background(), c.path, *c.unit, systemdResources(&specs.LinuxResources{Memory: mem}, -1)); err != nil {
			return err
		}
	}
	var err error
	if c.v2 != nil {
		err = c.v2.Update(cgroup2.ToResources(&specs.LinuxResources{Memory: mem}))
	} else {
		err = c.v1.Update(&specs.LinuxResources{Memory: mem})
	}
	if err != nil {
		return fmt.Errorf("cgroup %s: set memory limit %d: %w", c.path, limit, err)
	}
	return nil
}

// Metrics returns the cgroup's metrics as containerd reports them: a
// *github.com/containerd/cgroups/v3/cgroup1/stats.Metrics on cgroup v1
// hosts, a *github.com/containerd/cgroups/v3/cgroup2/stats.Metrics on
// unified ones.
func (c *Cgroup) Metrics() (proto.Message, error) {
	if !c.made() {
		return nil, c.notMade("metrics")
	}
	if c.v2 != nil {
		st, err := c.v2.Stat()
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: metrics: %w", c.path, err)
		}
		return st, nil
	}
	st, err := c.v1.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: metrics: %w", c.path, err)
	}
	return st, nil
}

// Pids lists the processes in the cgroup.
func (c *Cgroup) Pids() ([]int, error) {
	if !c.made() {
		return nil, nil
	}
	var pids []int
	if c.v2 != nil {
		procs, err := c.v2.Procs(true)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: processes: %w", c.path, err)
		}
		for _, p := range procs {
			pids = append(pids, int(p))
		}
		return pids, nil
	}
	subsystems := c.v1.Subsystems()
	if len(subsystems) == 0 {
		return nil, nil
	}
	procs, err := c.v1.Processes(subsystems[0].Name(), true)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: processes: %w", c.path, err)
	}
	seen := map[int]bool{}
	for _, p := range procs {
		if !seen[p.Pid] {
			seen[p.Pid] = true
			pids = append(pids, p.Pid)
		}
	}
	return pids, nil
}

// cgroupEmptyTimeout bounds how long Delete waits for killed processes to
// leave the cgroup.
const cgroupEmptyTimeout = 2 * time.Second

// Delete removes the cgroup. Processes still in it (a Keep whose shim
// died) are killed first. A cgroup that is already gone is not an error.
// A systemd driver's unit is stopped, which removes its cgroup, and what
// is left of it in hierarchies that systemd does not manage is removed.
func (c *Cgroup) Delete() error {
	// Never the caller: a thread of it may be in the cgroup for a moment
	// (JoinThread), and it removes the cgroup.
	others := func() ([]int, error) {
		pids, err := c.Pids()
		return slices.DeleteFunc(pids, func(pid int) bool { return pid == os.Getpid() }), err
	}
	pids, err := others()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		deadline := time.Now().Add(cgroupEmptyTimeout)
		for len(pids) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			pids, _ = others()
		}
	}
	if c.unit != nil {
		if err := stopSystemdUnit(context.Background(), c.path, *c.unit); err != nil {
			return err
		}
	}
	switch {
	case c.v2 != nil:
		err = c.v2.Delete()
	case c.v1 != nil:
		err = c.deleteV1()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cgroup %s: delete: %w", c.path, err)
	}
	return nil
}
