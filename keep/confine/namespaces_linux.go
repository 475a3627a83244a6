package confine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Namespaces are attributes of each thread, and a Go program has many
// threads from its start. So a namespace is entered in one of three ways:
//   - new, when its process is made: the flags of clone(2) (Start);
//   - joined by path, when its process is made: the thread that starts it
//     has joined the namespace first, and a child is made in the
//     namespaces of the thread that makes it (Start; the only way to be
//     in a PID namespace, which setns(2) gives only to children);
//   - by every thread of a running Keep, once it has done what needs the
//     host (its network and cgroup namespaces, see Enter): one thread
//     makes the namespace, or opens it by path, and libcap's psx has every
//     thread join it.
// A mount namespace cannot be joined by a process that has threads, nor a
// user namespace made: see checkNamespace.

// cloneFlag is the flag of clone(2) and setns(2) for each namespace type.
var cloneFlag = map[specs.LinuxNamespaceType]int{
	specs.MountNamespace: unix.CLONE_NEWNS, specs.PIDNamespace: unix.CLONE_NEWPID, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.NetworkNamespace: unix.CLONE_NEWNET, specs.CgroupNamespace: unix.CLONE_NEWCGROUP,
	specs.UserNamespace: unix.CLONE_NEWUSER, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// Start starts the Keep's process cmd in the namespaces it is made in (all
// of s.Namespaces but the cgroup namespace, which it enters once it is in
// its cgroup). A Keep with a user namespace starts in the host's: its
// workload runs in a second process (StartInner), whose namespaces are
// made with the user namespace, so that they are its.
// prepare, when not nil, prepares the thread that makes the process, as
// in Start.
func (s *Spec) Start(cmd *exec.Cmd, prepare Prepare) error {
	if s.UserNS() {
		return Start(cmd, nil, prepare)
	}
	return Start(cmd, s.startNamespaces(), prepare)
}

// startNamespaces are s.Namespaces but the cgroup namespace.
func (s *Spec) startNamespaces() []specs.LinuxNamespace {
	var atStart []specs.LinuxNamespace
	for _, ns := range s.Namespaces {
		if ns.Type != specs.CgroupNamespace {
			atStart = append(atStart, ns)
		}
	}
	return atStart
}

// StartInner starts cmd, the process that runs the workload of a Keep with
// a user namespace (s.UserNS), in a new user namespace with s's mappings
// and in the Keep's other namespaces, new ones made with it; network, when
// not nil, is the container's network namespace. The Keep's process
// applies the rlimits and oomScoreAdj to it (ApplyLimits) before it enters
// its confinement: in a user namespace, it could not raise them. cmd gets
// SIGKILL when the calling process ends.
func (s *Spec) StartInner(cmd *exec.Cmd, network *specs.LinuxNamespace) error {
	namespaces := s.startNamespaces()
	if network != nil {
		namespaces = append(namespaces, *network)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	for _, m := range s.UIDMappings {
		cmd.SysProcAttr.UidMappings = append(cmd.SysProcAttr.UidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	for _, m := range s.GIDMappings {
		cmd.SysProcAttr.GidMappings = append(cmd.SysProcAttr.GidMappings, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	// Written by this privileged process, the maps allow setgroups(2), as
	// runc's do. The process becomes root of the user namespace before it
	// executes, and so has its capabilities there (not the host's) to
	// confine itself.
	cmd.SysProcAttr.GidMappingsEnableSetgroups = true
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	flags, join, err := startFlags(namespaces)
	if err != nil {
		return err
	}
	cmd.SysProcAttr.Cloneflags |= flags
	// The Pdeathsig is sent when the thread that makes the child ends: it
	// is made by a thread that lives as long as this process.
	return startOnThread(cmd, join, true, nil)
}

// ApplyLimits applies s's rlimits and oomScoreAdj to process pid, as runc
// applies them to a process that is in a user namespace (prlimit(2)).
func (s *Spec) ApplyLimits(pid int) error {
	for _, l := range s.Rlimits {
		resource, ok := rlimits[l.Type]
		if !ok {
			return fmt.Errorf("confinement: process.rlimits: %q is not a resource limit: use one of RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE, ...", l.Type)
		}
		if err := unix.Prlimit(pid, resource, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}, nil); err != nil {
			return fmt.Errorf("confinement: process.rlimits %s (soft %d, hard %d): %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	if s.OOMScoreAdj != nil {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(*s.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("confinement: process.oomScoreAdj %d: %w", *s.OOMScoreAdj, err)
		}
	}
	return nil
}

// Start starts cmd in namespaces: a new one of each type listed without a
// path, and the one at the path of each listed with one. The others are
// the caller's. A mount namespace is new only. prepare, when not nil, runs
// first on the thread that makes the process, a thread of its own that
// ends after it (as when namespaces are joined).
func Start(cmd *exec.Cmd, namespaces []specs.LinuxNamespace, prepare Prepare) error {
	flags, join, err := startFlags(namespaces)
	if err != nil {
		return err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= flags
	if len(join) == 0 && prepare == nil {
		return cmd.Start()
	}
	if cmd.SysProcAttr.Pdeathsig != 0 {
		// It is sent when the thread that made the child ends.
		return errors.New("confinement: a process that joins namespaces by path, or is started by a prepared thread, is started by a thread that ends at once, so it cannot have a Pdeathsig")
	}
	return startOnThread(cmd, join, false, prepare)
}

// Prepare prepares the thread that makes a process for it, so that the
// process has from its start what the thread was given (a cgroup, see
// cgroup.JoinThread). The thread ends with the process made: nothing is
// given back.
type Prepare func() error

// startOnThread starts cmd from a thread of its own that has run prepare,
// when not nil, and joined the namespaces join first: a child is made in
// the namespaces (and, with cgroup.JoinThread, the cgroup) of the thread
// that makes it. The thread is never unlocked: when its goroutine returns,
// the Go runtime ends it instead of running other goroutines in those
// namespaces (and makes its own threads from a clean one meanwhile). The
// one thread the runtime never ends, the process's main one, is never
// used. With forever, the goroutine never returns: the thread stays the
// child's parent, for a Pdeathsig, as long as this process runs.
func startOnThread(cmd *exec.Cmd, join []specs.LinuxNamespace, forever bool, prepare Prepare) error {
	started := make(chan error, 1)
	run := func() {
		if prepare != nil {
			if err := prepare(); err != nil {
				started <- err
				return
			}
		}
		started <- joinAndStart(cmd, join)
		if forever {
			select {}
		}
	}
	go func() {
		runtime.LockOSThread()
		if syscall.Gettid() != os.Getpid() {
			run()
			return
		}
		// The main thread: the work goes to another thread, which cannot
		// be this one while it is locked here; then this one, untouched,
		// goes back to the runtime.
		moved := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(moved)
			run()
		}()
		<-moved
		runtime.UnlockOSThread()
	}()
	return <-started
}

// joinAndStart starts cmd once the calling thread, locked, has joined the
// namespaces join.
func joinAndStart(cmd *exec.Cmd, join []specs.LinuxNamespace) error {
	for _, ns := range join {
		if err := joinThread(ns); err != nil {
			return err
		}
	}
	return cmd.Start()
}

// startFlags are the clone flags of the new namespaces among namespaces,
// and those to join by path.
func startFlags(namespaces []specs.LinuxNamespace) (uintptr, []specs.LinuxNamespace, error) {
	var flags uintptr
	var join []specs.LinuxNamespace
	for _, ns := range namespaces {
		flag, ok := cloneFlag[ns.Type]
		if !ok {
			return 0, nil, fmt.Errorf("confinement: cannot start a process in a %q namespace", ns.Type)
		}
		switch {
		case ns.Path == "":
			flags |= uintptr(flag)
		case ns.Type == specs.MountNamespace, ns.Type == specs.UserNamespace, ns.Type == specs.TimeNamespace:
			return 0, nil, fmt.Errorf("confinement: %s namespace %q: a process is started in a new %s namespace only", ns.Type, ns.Path, ns.Type)
		default:
			join = append(join, ns)
		}
	}
	return flags, join, nil
}

// joinThread moves the calling thread, locked, into ns.
func joinThread(ns specs.LinuxNamespace) error {
	f, err := openNamespace(ns)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), cloneFlag[ns.Type]); err != nil {
		return nsError(ns, err)
	}
	return nil
}

// openNamespace opens the namespace ns names by path.
func openNamespace(ns specs.LinuxNamespace) (*os.File, error) {
	f, err := os.Open(ns.Path)
	if err != nil {
		return nil, fmt.Errorf("confinement: %s namespace %q: %w: give the path of one, e.g. /proc/PID/ns/%s", ns.Type, ns.Path, err, nsFile[ns.Type])
	}
	return f, nil
}

// nsError explains why setns(2) refused ns.
func nsError(ns specs.LinuxNamespace, err error) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("confinement: %q is not a %s namespace: %w: give the path of one, e.g. /proc/PID/ns/%s", ns.Path, ns.Type, err, nsFile[ns.Type])
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("confinement: joining the %s namespace %q: %w: it needs CAP_SYS_ADMIN, run the shim as root", ns.Type, ns.Path, err)
	}
	return fmt.Errorf("confinement: joining the %s namespace %q: %w", ns.Type, ns.Path, err)
}

// joinAll moves every thread of the Keep into the namespace f of type t
// (psx: see allThreads).
func joinAll(f *os.File, t specs.LinuxNamespaceType) error {
	if err := allThreads(unix.SYS_SETNS, f.Fd(), uintptr(cloneFlag[t]), 0); err != nil {
		return fmt.Errorf("confinement: every thread into the %s namespace: %w", t, err)
	}
	return nil
}

// enterNamespaces moves every thread of the Keep into the network
// namespace netns, when not nil, and the cgroup namespace s lists, if any.
// The Keep's own /proc comes first, over the host's in the Keep's mount
// namespace, for psx to find the threads in (see checkProc); pivot_root
// leaves it behind with the host's root.
func enterNamespaces(s *Spec, netns *os.File) error {
	cgroupNS := slices.IndexFunc(s.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.CgroupNamespace })
	if netns == nil && cgroupNS < 0 {
		return nil
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("confinement: a proc of the Keep's PID namespace: %w", err)
	}
	if err := checkProc(); err != nil {
		return fmt.Errorf("confinement: %w", err)
	}
	if netns != nil {
		if err := joinAll(netns, specs.NetworkNamespace); err != nil {
			return err
		}
	}
	if cgroupNS >= 0 {
		return enterCgroupNamespace(s.Namespaces[cgroupNS])
	}
	return nil
}

// enterCgroupNamespace moves the Keep into the cgroup namespace ns: a new
// one, rooted at the cgroup the Keep is in, or the one at its path.
func enterCgroupNamespace(ns specs.LinuxNamespace) error {
	var f *os.File
	var err error
	if ns.Path != "" {
		f, err = openNamespace(ns)
	} else {
		f, err = newNamespace(unix.CLONE_NEWCGROUP, "cgroup")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return joinAll(f, specs.CgroupNamespace)
}

// newNamespace makes a namespace (flag, named name in /proc/PID/ns) on a
// thread of its own and returns it open.
func newNamespace(flag int, name string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	made := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the new namespace
		if err := unix.Unshare(flag); err != nil {
			made <- result{err: fmt.Errorf("confinement: a new %s namespace: %w", name, err)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/" + name)
		made <- result{f, err}
	}()
	r := <-made
	return r.f, r.err
}

// Sources are the bind mount sources of a Keep with a user namespace,
// opened by the Keep on the host as detached mount trees (open_tree(2)):
// its inner Keep, root of its user namespace only, may not reach them by
// path (a directory of the host's root on the way), as runc's process may
// not; it attaches them in its view instead (move_mount(2)). They are the
// spec's bind mounts in order, then the state directory.
type Sources struct {
	files []*os.File
	// mounts[i] is the tree of s.Mounts[i], when it is a bind mount.
	mounts map[int]*os.File
	state  *os.File
}

// mount is the tree of s.Mounts[i], or nil.
func (src *Sources) mount(i int) *os.File {
	if src == nil {
		return nil
	}
	return src.mounts[i]
}

// stateDir is the tree of the state directory, or nil.
func (src *Sources) stateDir() *os.File {
	if src == nil {
		return nil
	}
	return src.state
}

// Files are the trees, in the order AdoptSources takes them.
func (src *Sources) Files() []*os.File { return src.files }

// Close closes the trees.
func (src *Sources) Close() {
	for _, f := range src.files {
		f.Close()
	}
}

// OpenSources opens the trees of s's bind mounts and of stateDir (when not
// "") on the host.
func (s *Spec) OpenSources(stateDir string) (_ *Sources, err error) {
	src := &Sources{mounts: map[int]*os.File{}}
	defer func() {
		if err != nil {
			src.Close()
		}
	}()
	open := func(path string, recursive bool) (*os.File, error) {
		flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, path, flags)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), path)
		src.files = append(src.files, f)
		return f, nil
	}
	binds, err := s.bindMounts()
	if err != nil {
		return nil, err
	}
	for _, b := range binds {
		m := s.Mounts[b.index]
		if src.mounts[b.index], err = open(m.Source, b.recursive); err != nil {
			return nil, fmt.Errorf("confinement: mounts[%d] (%s at %s): bind source: %w", b.index, m.Type, m.Destination, err)
		}
	}
	if stateDir != "" {
		if src.state, err = open(stateDir, false); err != nil {
			return nil, fmt.Errorf("confinement: the Keep's state directory: %w", err)
		}
	}
	return src, nil
}

// bindMount is a bind mount of the spec: its index in Mounts, and whether
// it binds what is mounted below its source too (rbind).
type bindMount struct {
	index     int
	recursive bool
}

// bindMounts are the bind mounts among s.Mounts, in order.
func (s *Spec) bindMounts() ([]bindMount, error) {
	var binds []bindMount
	for i, m := range s.Mounts {
		o, err := parseOptions(m.Options)
		if err != nil {
			return nil, fmt.Errorf("confinement: mounts[%d] (%s at %s): %w", i, m.Type, m.Destination, err)
		}
		if o.bind(m.Type) {
			binds = append(binds, bindMount{index: i, recursive: o.flags&unix.MS_REC != 0})
		}
	}
	return binds, nil
}

// AdoptSources takes files, the trees OpenSources opened for s and
// stateDir in another process, for Enter to attach.
func (s *Spec) AdoptSources(files []*os.File, stateDir string) error {
	src := &Sources{files: files, mounts: map[int]*os.File{}}
	next := func() (*os.File, error) {
		if len(files) == 0 {
			return nil, errors.New("confinement: fewer bind mount sources than bind mounts")
		}
		f := files[0]
		files = files[1:]
		return f, nil
	}
	binds, err := s.bindMounts()
	if err != nil {
		return err
	}
	for _, b := range binds {
		if src.mounts[b.index], err = next(); err != nil {
			return err
		}
	}
	if stateDir != "" {
		if src.state, err = next(); err != nil {
			return err
		}
	}
	s.sources = src
	return nil
}
