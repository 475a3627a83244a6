package confine

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Capability sets and no_new_privs are attributes of each thread, and a
// Keep is a multi-threaded Go program with cgo: libcap's psx applies them to
// every thread it finds in /proc/PID/task, so it needs the container's /proc.

// capabilities are the sets of process.capabilities that decide what a
// process has once it runs (see becomeProcess), as libcap names them.
type capabilities struct {
	bounding, inheritable, ambient []cap.Value
}

// parseCapabilities reads process.capabilities. A name libcap does not know
// (a capability newer than this build) is skipped, as runc skips it.
func parseCapabilities(c *specs.LinuxCapabilities) capabilities {
	values := func(names []string) []cap.Value {
		var vs []cap.Value
		for _, n := range names {
			if v, err := cap.FromName(strings.ToLower(n)); err == nil {
				vs = append(vs, v)
			}
		}
		return vs
	}
	return capabilities{values(c.Bounding), values(c.Inheritable), values(c.Ambient)}
}

// BoundingEnv is the variable of a Keep's environment that gives it its
// bounding set from its start (see StartBounding).
const BoundingEnv = "ENARX_KEEP_BOUNDING"

// StartBounding is the bounding set a Keep of s may take on before its Go
// runtime starts its threads, as a mask of capability numbers, and whether
// it may: a Keep that will execute nothing before becomeProcess, where runc
// drops the bounding set (none of the createContainer hooks, which run
// with the runtime's full set, nor an inner Keep with a user namespace).
// The bounding set limits only what an execve(2) gives, so the Keep keeps
// the effective capabilities it confines itself with; dropped once on one
// thread, it is every thread's, and becomeProcess has no dropping left to
// do on each thread (see keep/confine/startbound).
func (s *Spec) StartBounding() (uint64, bool) {
	if s.Capabilities == nil || s.UserNS() || (s.Hooks != nil && len(s.Hooks.CreateContainer) > 0) {
		return 0, false
	}
	var mask uint64
	for _, v := range parseCapabilities(s.Capabilities).bounding {
		if v < 64 {
			mask |= 1 << v
		}
	}
	return mask, true
}

// checkProc reports whether /proc shows the Keep's PID namespace, as psx
// needs: it finds the threads in /proc/PID/task, with PID as getpid(2)
// gives it.
func checkProc() error {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("no proc at /proc (%w): mount proc at /proc", err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("/proc is not the proc of the container's PID namespace (it shows the Keep as %s, not %d): mount proc at /proc rather than bind another one", self, os.Getpid())
	}
	return nil
}

// allThreads runs a system call on every thread of the Keep; the
// arguments it does not take are 0 (prctl checks that they are).
func allThreads(nr, a1, a2, a3 uintptr) error {
	if _, _, errno := psx.Syscall6(nr, a1, a2, a3, 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// becomeProcess takes on process.user, process.capabilities and
// process.noNewPrivileges, leaving the Keep with the capabilities runc's
// process of the same spec has once it runs: runc sets the spec's sets and
// then executes the process, and the kernel recomputes them at execve. So,
// as with runc: the bounding and inheritable sets are the spec's; a process
// whose uid is 0 gets every capability of its bounding and inheritable sets
// as permitted and effective; any other uid gets only its ambient ones
// (those of the spec that are inheritable too). The order is runc's: the
// bounding set, the user with the permitted set kept across the change of
// uid, the other sets, no_new_privs. Without capabilities in the spec, the
// Keep's are left as they are: all for uid 0, none for another.
//
// A seccomp profile is loaded with seccomp first when the spec does not ask
// for no_new_privs (loading needs CAP_SYS_ADMIN then), last otherwise, as
// runc does. A profile without a loader to load it is refused.
func becomeProcess(s *Spec, seccomp SeccompLoader) error {
	if s.Seccomp != nil && seccomp == nil {
		return errors.New("confinement: linux.seccomp: the Keep was given no seccomp loader to load the profile with")
	}
	if s.Seccomp != nil && !s.NoNewPrivileges {
		if err := seccomp(s.Seccomp); err != nil {
			return err
		}
	}
	if s.Capabilities != nil || s.NoNewPrivileges {
		if err := checkProc(); err != nil {
			return fmt.Errorf("confinement: process.capabilities and noNewPrivileges are applied to every thread through /proc: %w", err)
		}
	}
	if s.Capabilities == nil {
		if err := becomeUser(s.User); err != nil {
			return err
		}
	} else if err := becomeUserWithCapabilities(s.User, parseCapabilities(s.Capabilities)); err != nil {
		return err
	}
	if !s.NoNewPrivileges {
		return nil
	}
	if err := noNewPrivileges(); err != nil {
		return err
	}
	if s.Seccomp != nil {
		return seccomp(s.Seccomp)
	}
	return nil
}

// becomeUserWithCapabilities takes on u and the capabilities c, as
// becomeProcess says.
func becomeUserWithCapabilities(u specs.User, c capabilities) error {
	keep := map[cap.Value]bool{}
	for _, v := range c.bounding {
		keep[v] = true
	}
	// One psx call, for every thread, per capability: those dropped at the
	// Keep's start (StartBounding) are gone from every thread already.
	var drop []cap.Value
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if inSet, err := cap.GetBound(v); !keep[v] && (inSet || err != nil) {
			drop = append(drop, v)
		}
	}
	if err := cap.DropBound(drop...); err != nil {
		return fmt.Errorf("confinement: the bounding set of process.capabilities: %w", err)
	}
	// setuid(2) clears the permitted and effective sets when it leaves no
	// user ID 0 (capabilities(7)), unless keep-capabilities is set; to uid
	// 0 it clears nothing, and each of these calls is a signal to every
	// thread of the Keep.
	keepCaps := u.UID != 0
	if keepCaps {
		if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); err != nil {
			return fmt.Errorf("confinement: keep the capabilities across the change of user: %w", err)
		}
	}
	if err := becomeUser(u); err != nil {
		return err
	}
	if keepCaps {
		if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); err != nil {
			return fmt.Errorf("confinement: %w", err)
		}
	}
	inheritable := map[cap.Value]bool{}
	for _, v := range c.inheritable {
		inheritable[v] = true
	}
	var ambient, raised []cap.Value
	for _, v := range c.ambient {
		if inheritable[v] && keep[v] {
			ambient = append(ambient, v)
		}
	}
	if u.UID == 0 {
		raised = append(append(raised, c.bounding...), c.inheritable...)
	} else {
		raised = ambient
	}
	set := cap.NewSet()
	for _, f := range []struct {
		flag cap.Flag
		vs   []cap.Value
	}{{cap.Permitted, raised}, {cap.Effective, raised}, {cap.Inheritable, c.inheritable}} {
		if err := set.SetFlag(f.flag, true, f.vs...); err != nil {
			return fmt.Errorf("confinement: process.capabilities: %w", err)
		}
	}
	if err := set.SetProc(); err != nil {
		return fmt.Errorf("confinement: set process.capabilities (%s): %w", set, err)
	}
	if err := cap.ResetAmbient(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("confinement: clear the ambient set: %w", err)
	}
	if len(ambient) > 0 {
		if err := cap.SetAmbient(true, ambient...); err != nil {
			return fmt.Errorf("confinement: the ambient set of process.capabilities %v: %w", ambient, err)
		}
	}
	return nil
}

// noNewPrivileges sets no_new_privs on every thread.
func noNewPrivileges() error {
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("confinement: noNewPrivileges: %w", err)
	}
	return nil
}
