package cgroup

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PrepareMove makes the next move of a process into a cgroup (Add) cheap. It
// is meant to run beside whatever comes before that move, and to be called
// again before each one.
//
// Moving a process between cgroups takes a kernel-wide lock
// (cgroup_threadgroup_rwsem) whose writer, when nobody has taken it for a
// while, first waits for an RCU grace period: 5 to 15 ms on the CI machine
// class, on the Keep's path to ready, where runc pays it too. The lock stays
// cheap for about a grace period after its last writer, and a writer that
// comes while another waits shares that wait. PrepareMove takes the lock by
// moving the calling process into the cgroup it is in already, which moves
// nothing: an Add that follows soon after pays nothing, and one that comes
// while PrepareMove waits pays only the rest of the wait. It reports whether
// it took the lock; a process that may not write its own cgroup.procs (no
// cgroup filesystem, no permission) gains nothing and loses nothing.
func PrepareMove() bool {
	for _, procs := range ownProcsFiles() {
		f, err := os.OpenFile(procs, os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		_, err = f.WriteString(strconv.Itoa(os.Getpid()))
		f.Close()
		if err == nil {
			return true
		}
	}
	return false
}

// ownProcsFiles are the cgroup.procs files of the calling process's own
// cgroups, from /proc/self/cgroup: the v1 hierarchies' (under
// /sys/fs/cgroup/CONTROLLERS, name=systemd under systemd) and the unified
// one's (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
func ownProcsFiles() []string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ID:CONTROLLERS:PATH"; CONTROLLERS is empty for the unified hierarchy.
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			continue
		}
		controllers, path := parts[1], parts[2]
		switch {
		case controllers == "":
			files = append(files, filepath.Join(unifiedMountpoint, "unified", path, "cgroup.procs"),
				filepath.Join(unifiedMountpoint, path, "cgroup.procs"))
		default:
			dir := strings.TrimPrefix(controllers, "name=")
			files = append(files, filepath.Join(unifiedMountpoint, dir, path, "cgroup.procs"))
		}
	}
	return files
}
