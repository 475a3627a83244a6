package confine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Confined is a Keep that Enter confined.
type Confined struct {
	spec *Spec
	// pid is the Keep's PID as the host sees it (the state's pid).
	pid int
}

// state is the container's state for its hooks.
func (c *Confined) state(status specs.ContainerState) specs.State {
	return specs.State{Version: specs.Version, ID: c.spec.ID, Status: status, Pid: c.pid, Bundle: c.spec.Bundle, Annotations: c.spec.Annotations}
}

// StartContainer runs the spec's startContainer hooks, in the container,
// before its workload runs.
func (c *Confined) StartContainer(ctx context.Context) error {
	if c.spec.Hooks == nil {
		return nil
	}
	return RunHooks(ctx, "startContainer", c.spec.Hooks.StartContainer, c.state(specs.StateCreated))
}

// Enter confines the calling Keep process as s says. It must run in the
// namespaces the Keep was started in (the shim starts it with s.Start),
// before the workload runs, with the privileges the Keep starts with; it
// drops them. stateDir, when not "", is the Keep's state directory on the
// host, shown read-only at GuestStateDir. net is the container's network
// namespace, when it has one of its own.
//
// What it does, in runc's order: the network and cgroup namespaces (the
// Keep is in its cgroup by now); the oomScoreAdj; the mounts below the root
// filesystem stop propagating to the host (rootfsPropagation, rslave by
// default); the root filesystem becomes a mount of its own with every spec
// mount on it, in order, each destination created without leaving the root
// filesystem; default and spec device nodes in a /dev the spec mounts as
// tmpfs; the createContainer hooks (all that is Build); then the rlimits;
// pivot_root into it; masked and read-only paths; a read-only root; the
// hostname; the bounding set, the umask, groups, gid and uid, the other
// capability sets and no_new_privs, and the spec's seccomp profile, loaded
// with seccomp (see becomeProcess).
func Enter(s *Spec, stateDir string, net Network, seccomp SeccompLoader) (*Confined, error) {
	b, err := Build(s, stateDir, net)
	if err != nil {
		return nil, err
	}
	return b.Enter(seccomp)
}

// Built is a Keep whose container Build made: in its namespaces, with the
// container's root filesystem mounted, not yet in it (Enter).
type Built struct {
	c *Confined
	// privateNet is whether the Keep is in a network namespace of the
	// container's (the net.* sysctls are then the container's to set).
	privateNet bool
}

// Build is the first part of Enter: it joins the container's namespaces
// and makes its root filesystem, with every mount, device and
// createContainer hook, while the Keep keeps its privileges, its limits and
// the host's root. So the Keep can do beside it what still needs the host
// (its module cache, its TEE, its runtime binary), as long as that needs no
// network but the container's (every thread is in it) and nothing below
// s.Rootfs.
// Build(s).Enter(seccomp) is Enter(s, seccomp).
func Build(s *Spec, stateDir string, net Network) (*Built, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkLSM(hostLSM()); err != nil {
		return nil, err
	}
	// The host's /proc is still there: the Keep's PID as the host sees it.
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return nil, fmt.Errorf("confinement: %w", err)
	}
	c := &Confined{spec: s}
	if c.pid, err = strconv.Atoi(self); err != nil {
		return nil, fmt.Errorf("confinement: /proc/self is %q: %w", self, err)
	}
	if s.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*s.OOMScoreAdj)), 0); err != nil {
			return nil, fmt.Errorf("confinement: process.oomScoreAdj %d: %w", *s.OOMScoreAdj, err)
		}
	}
	if err := unix.Mount("", "/", "", propagationFlags(s.Propagation, unix.MS_SLAVE|unix.MS_REC), ""); err != nil {
		return nil, fmt.Errorf("confinement: make the mounts of the Keep's namespace %s: %w", orDefault(s.Propagation, "rslave"), err)
	}
	if err := enterNamespaces(s, net.Join); err != nil {
		return nil, err
	}
	if err := rootfsParentMountPrivate(s.Rootfs); err != nil {
		return nil, err
	}
	if err := unix.Mount(s.Rootfs, s.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("confinement: bind the root filesystem %s: %w", s.Rootfs, err)
	}
	// A device node the image ships is never a device for the Keep, even
	// one its devices cgroup would allow: the image's files are nodev
	// (EACCES). Devices are the spec's, in the /dev it mounts.
	if err := unix.MountSetattr(unix.AT_FDCWD, s.Rootfs, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV}); err != nil {
		return nil, fmt.Errorf("confinement: make the root filesystem %s nodev: %w", s.Rootfs, err)
	}
	root, err := os.OpenFile(s.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("confinement: root filesystem: %w", err)
	}
	defer root.Close()
	v := view{root: root, rootfs: s.Rootfs}
	for i, m := range s.Mounts {
		if err := v.mount(m, s.sources.mount(i)); err != nil {
			return nil, fmt.Errorf("confinement: mounts[%d] (%s at %s): %w", i, m.Type, m.Destination, err)
		}
		if m.Destination == "/dev" && m.Type == "tmpfs" {
			if err := v.makeDevices(s.Devices); err != nil {
				return nil, fmt.Errorf("confinement: /dev: %w", err)
			}
		}
	}
	if stateDir != "" {
		state := specs.Mount{Destination: GuestStateDir, Type: "bind", Source: stateDir, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}
		if err := v.mount(state, s.sources.stateDir()); err != nil {
			return nil, fmt.Errorf("confinement: the Keep's state directory at %s: %w", GuestStateDir, err)
		}
	}
	if s.Hooks != nil {
		if err := RunHooks(context.Background(), "createContainer", s.Hooks.CreateContainer, c.state(specs.StateCreated)); err != nil {
			return nil, fmt.Errorf("confinement: %w", err)
		}
	}
	return &Built{c: c, privateNet: net.private()}, nil
}

// Enter is the rest of Enter: the rlimits, pivot_root into the root
// filesystem Build made, and the process's own confinement.
func (b *Built) Enter(seccomp SeccompLoader) (*Confined, error) {
	c := b.c
	s := c.spec
	if err := setRlimits(s.Rlimits); err != nil {
		return nil, err
	}
	if err := pivotRoot(s.Rootfs); err != nil {
		return nil, err
	}
	if err := setSysctls(s.Sysctls, b.privateNet); err != nil {
		return nil, err
	}
	for _, p := range s.MaskedPaths {
		if err := maskPath(p); err != nil {
			return nil, fmt.Errorf("confinement: mask %s: %w", p, err)
		}
	}
	for _, p := range s.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return nil, fmt.Errorf("confinement: make %s read-only: %w", p, err)
		}
	}
	if s.Readonly {
		if err := remount("/", unix.MS_RDONLY); err != nil {
			return nil, fmt.Errorf("confinement: make the root filesystem read-only: %w", err)
		}
	}
	if s.Propagation != "" {
		if err := unix.Mount("", "/", "", propagationFlags(s.Propagation, 0), ""); err != nil {
			return nil, fmt.Errorf("confinement: rootfsPropagation %s: %w", s.Propagation, err)
		}
	}
	if s.Hostname != "" && s.Has(specs.UTSNamespace) {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return nil, fmt.Errorf("confinement: hostname %q: %w", s.Hostname, err)
		}
	}
	if p := s.Personality; p != nil {
		if err := allThreads(unix.SYS_PERSONALITY, personalities[p.Domain], 0, 0); err != nil {
			return nil, fmt.Errorf("confinement: linux.personality %s: %w", p.Domain, err)
		}
	}
	if err := becomeProcess(s, seccomp); err != nil {
		return nil, err
	}
	return c, nil
}

// view is the root filesystem being mounted.
type view struct {
	root   *os.File
	rootfs string
}

// procPath names an open file by its descriptor, for mount(2): the kernel
// follows it to the file itself, wherever links in the container point.
func procPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// mount applies one spec mount to the view. A bind mount attaches tree,
// when not nil: its source opened as a detached mount tree (Sources).
func (v *view) mount(m specs.Mount, tree *os.File) error {
	o, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	typ := m.Type
	switch typ {
	case "cgroup", "cgroup2":
		// A WebAssembly workload has no use for the cgroup file system,
		// and mounting the Keep's own needs a cgroup namespace: an empty
		// read-only tmpfs stands in its place.
		typ, m.Source, o.flags, o.data = "tmpfs", "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755,size=0"
	}
	if o.bind(typ) {
		var st os.FileInfo
		if tree != nil {
			st, err = tree.Stat()
		} else {
			st, err = os.Stat(m.Source)
		}
		if err != nil {
			return fmt.Errorf("bind source: %w", err)
		}
		target, err := v.mountpoint(m.Destination, st.IsDir())
		if err != nil {
			return err
		}
		if tree != nil {
			err = unix.MoveMount(int(tree.Fd()), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		} else {
			err = unix.Mount(m.Source, procPath(target), "", unix.MS_BIND|o.flags&unix.MS_REC, "")
		}
		target.Close()
		if err != nil {
			return fmt.Errorf("bind %s: %w", m.Source, err)
		}
		if rest := o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
			if err := v.onTop(m.Destination, func(p string) error { return remount(p, rest) }); err != nil {
				return fmt.Errorf("apply the options %q: %w", strings.Join(m.Options, ","), err)
			}
		}
	} else {
		target, err := v.mountpoint(m.Destination, true)
		if err != nil {
			return err
		}
		source := m.Source
		if source == "" {
			source = typ
		}
		err = unix.Mount(source, procPath(target), typ, o.flags, o.data)
		if typ == "sysfs" && errors.Is(err, unix.EPERM) {
			// In a user namespace that does not own the network namespace,
			// sysfs cannot be mounted: the host's /sys is bound instead,
			// read-only, as runc does.
			if err = unix.Mount("/sys", procPath(target), "", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = remount(procPath(target), unix.MS_RDONLY|o.flags&^unix.MS_REC)
			}
		}
		target.Close()
		if err != nil {
			return fmt.Errorf("mount %s: %w", typ, err)
		}
	}
	if o.propagation != 0 {
		if err := v.onTop(m.Destination, func(p string) error { return unix.Mount("", p, "", o.propagation, "") }); err != nil {
			return fmt.Errorf("propagation: %w", err)
		}
	}
	if o.attr.Attr_set != 0 || o.attr.Attr_clr != 0 {
		if err := v.onTop(m.Destination, func(p string) error {
			return unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &o.attr)
		}); err != nil {
			return fmt.Errorf("recursive options of %q: %w", strings.Join(m.Options, ","), err)
		}
	}
	return nil
}

// onTop calls f with a path to what is mounted at dest now.
func (v *view) onTop(dest string, f func(path string) error) error {
	h, err := pathrs.OpenInRoot(v.rootfs, dest)
	if err != nil {
		return err
	}
	defer h.Close()
	return f(procPath(h))
}

// mountpoint returns a handle to dest in the view, creating it (a
// directory, or an empty file when dir is false) and its parents without
// following any link out of the root filesystem.
func (v *view) mountpoint(dest string, dir bool) (*os.File, error) {
	if dir {
		return pathrs.MkdirAllHandle(v.root, dest, 0o755)
	}
	f, err := pathrs.OpenInRoot(v.rootfs, dest)
	if errors.Is(err, os.ErrNotExist) {
		parent, perr := pathrs.MkdirAllHandle(v.root, path.Dir(dest), 0o755)
		if perr != nil {
			return nil, perr
		}
		fd, cerr := unix.Openat(int(parent.Fd()), path.Base(dest), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		parent.Close()
		if cerr != nil {
			return nil, fmt.Errorf("mount point %s: %w", dest, cerr)
		}
		unix.Close(fd)
		f, err = pathrs.OpenInRoot(v.rootfs, dest)
	}
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", dest, err)
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("mount point %s: a file is bound there, but the container has a directory: %w", dest, unix.ENOTDIR)
	}
	return f, nil
}

// defaultDevices are the device nodes runc makes in every container's /dev
// (the devices cgroup decides whether they can be opened).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devLinks are the links runc makes in /dev.
var devLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"},
}

// makeDevices fills a /dev the spec mounts as a tmpfs: the default device
// nodes, the spec's linux.devices and the usual links.
func (v *view) makeDevices(devices []specs.LinuxDevice) error {
	// Each directory is resolved in the root filesystem once (most are
	// /dev itself): nothing is mounted meanwhile, so its handle stays the
	// directory a new resolution would give.
	dirs := map[string]*os.File{}
	defer func() {
		for _, d := range dirs {
			d.Close()
		}
	}()
	dirOf := func(p string) (*os.File, error) {
		if d, ok := dirs[p]; ok {
			return d, nil
		}
		d, err := pathrs.MkdirAllHandle(v.root, p, 0o755)
		if err != nil {
			return nil, err
		}
		dirs[p] = d
		return d, nil
	}
	for _, d := range withDefaultDevices(devices) {
		dir, err := dirOf(path.Dir(d.Path))
		if err == nil {
			err = mknod(dir, d)
		}
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
	}
	for _, l := range devLinks {
		dir, err := dirOf(path.Dir(l[1]))
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(l[0], int(dir.Fd()), path.Base(l[1])); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("link %s: %w", l[1], err)
		}
	}
	return nil
}

// withDefaultDevices is the spec's devices after the default ones it does
// not list: a spec's device takes the place of the default at its path, as
// in runc, rather than being made a second time over it.
func withDefaultDevices(devices []specs.LinuxDevice) []specs.LinuxDevice {
	all := make([]specs.LinuxDevice, 0, len(defaultDevices)+len(devices))
next:
	for _, d := range defaultDevices {
		for _, s := range devices {
			if path.Clean(s.Path) == d.Path {
				continue next
			}
		}
		all = append(all, d)
	}
	return append(all, devices...)
}

// mknod makes the device node d in dir, the directory of d.Path in the view.
func mknod(dir *os.File, d specs.LinuxDevice) error {
	var kind uint32
	switch d.Type {
	case "c", "u":
		kind = unix.S_IFCHR
	case "b":
		kind = unix.S_IFBLK
	case "p":
		kind = unix.S_IFIFO
	default:
		return fmt.Errorf("type %q is not c, u, b or p", d.Type)
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(*d.FileMode) & 0o7777
	}
	base := path.Base(d.Path)
	_ = unix.Unlinkat(int(dir.Fd()), base, 0)
	if err := unix.Mknodat(int(dir.Fd()), base, kind|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		if errors.Is(err, unix.EPERM) {
			// In a user namespace no device node can be made: the host's
			// node is bound, as runc does (the devices cgroup still decides).
			return bindDevice(dir, base, d)
		}
		return err
	}
	// mknod applies the umask: set the mode the spec asks for.
	if err := unix.Fchmodat(int(dir.Fd()), base, mode, 0); err != nil {
		return err
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Fchownat(int(dir.Fd()), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// bindDevice binds the host's device node d.Path over an empty file base
// in dir, for a Keep in a user namespace.
func bindDevice(dir *os.File, base string, d specs.LinuxDevice) error {
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	switch {
	case err == nil:
		unix.Close(fd)
	case !errors.Is(err, unix.EEXIST):
		return err
	}
	// A node already there (a device the spec lists twice, bound once) is
	// bound over, as runc does; anything but a file or a device is refused.
	target, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), base), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer target.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil {
		return err
	}
	if k := st.Mode & unix.S_IFMT; k != unix.S_IFREG && k != unix.S_IFCHR && k != unix.S_IFBLK && k != unix.S_IFIFO {
		return fmt.Errorf("%s is there already and is not a file or a device node: %w", d.Path, unix.EEXIST)
	}
	if err := unix.Mount(d.Path, procPath(target), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the host's %s (a user namespace makes no device nodes): %w", d.Path, err)
	}
	return nil
}

// AttachRootTree attaches tree, a detached tree of the root filesystem
// that the shim made on the host (open_tree(2)), at s.Rootfs in the
// process's mount namespace, and closes it: a Keep started before its root
// filesystem was mounted (host.StartAhead) has a mount namespace without
// that mount. The namespace's mounts get s's propagation first, as Build
// gives them, so that the tree is not propagated back to the host; a
// shared propagation, which would, is refused (see SharedPropagation).
func (s *Spec) AttachRootTree(tree *os.File) error {
	defer tree.Close()
	if s.SharedPropagation() {
		return fmt.Errorf("confinement: rootfs propagation %s: a root filesystem shared with the host is bound by Build, not attached", s.Propagation)
	}
	if err := unix.Mount("", "/", "", propagationFlags(s.Propagation, unix.MS_SLAVE|unix.MS_REC), ""); err != nil {
		return fmt.Errorf("confinement: make the mounts of the Keep's namespace %s: %w", orDefault(s.Propagation, "rslave"), err)
	}
	if err := unix.MoveMount(int(tree.Fd()), "", unix.AT_FDCWD, s.Rootfs, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("confinement: attach the tree of the root filesystem at %s: %w", s.Rootfs, err)
	}
	return nil
}

// remount changes the flags of the bind mount at p to flags. In a user
// namespace the flags a mount was made with by the host (nosuid, nodev,
// noexec, read-only, atime) are locked, and a remount must keep them: it
// is retried with them, as runc does.
func remount(p string, flags uintptr) error {
	err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	var st unix.Statfs_t
	if serr := unix.Statfs(p, &st); serr != nil {
		return err
	}
	for _, f := range [][2]int64{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_RDONLY, unix.MS_RDONLY}, {unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME}} {
		if st.Flags&f[0] != 0 {
			flags |= uintptr(f[1])
		}
	}
	return unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}

// rootfsParentMountPrivate makes the mount that rootfs is on private in the
// Keep's mount namespace, as runc does: under a shared rootfs propagation
// (rshared, Kubernetes' Bidirectional mounts) the namespace's mounts are
// peers of the host's, so the root filesystem's bind and every mount below
// it would appear on the host too, and pivot_root(2) refuses a new root
// whose parent mount is shared (EINVAL). The propagation the spec asks
// for is given to the new root after pivot_root (Enter). A path that is
// not a mount point gives EINVAL: its parent is tried, up to "/".
func rootfsParentMountPrivate(rootfs string) error {
	for p := rootfs; ; p = path.Dir(p) {
		err := unix.Mount("", p, "", unix.MS_PRIVATE, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || p == "/" {
			return fmt.Errorf("confinement: make the mount of the root filesystem %s private in the Keep's namespace (at %s): %w", rootfs, p, err)
		}
	}
}

// pivotRoot makes rootfs the root of the Keep's mount namespace and
// detaches the host's root from it.
func pivotRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("confinement: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("confinement: pivot_root into %s: %w", rootfs, err)
	}
	// The old root is stacked under the new one: detach it, without the
	// unmount reaching the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("confinement: the old root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("confinement: detach the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("confinement: %w", err)
	}
	return nil
}

// maskPath hides p as runc does: /dev/null over a file, an empty read-only
// tmpfs over a directory. A path that does not exist needs no mask.
func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	if errors.Is(err, unix.ENOTDIR) {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// readonlyPath makes p read-only, with everything mounted below it.
func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return remount(p, unix.MS_RDONLY|unix.MS_REC)
}

// becomeUser takes on process.user: umask, supplementary groups, gid and
// uid, in that order (the groups and gid need the privilege the uid
// gives up). The C library applies each to every thread of the Keep.
func becomeUser(u specs.User) error {
	if u.Umask != nil {
		syscall.Umask(int(*u.Umask))
	}
	groups := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("confinement: process.user.additionalGids %v: %w", u.AdditionalGids, err)
	}
	if err := syscall.Setgid(int(u.GID)); err != nil {
		return fmt.Errorf("confinement: process.user.gid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(int(u.UID)); err != nil {
		return fmt.Errorf("confinement: process.user.uid %d: %w", u.UID, err)
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// rlimits are the resources process.rlimits may name.
var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setRlimits applies process.rlimits to the Keep (a process attribute:
// every thread shares it), while it may still raise a hard limit.
func setRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		resource, ok := rlimits[l.Type]
		if !ok {
			return fmt.Errorf("confinement: process.rlimits: %q is not a resource limit: use one of RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE, ...", l.Type)
		}
		if err := unix.Setrlimit(resource, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("confinement: process.rlimits %s (soft %d, hard %d): %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}

// setSysctls sets the kernel parameters of the caller's namespaces through
// /proc (in a Keep, the container's, before readonlyPaths makes /proc/sys
// read-only, as runc does). privateNet says whether the caller has a
// network namespace of its own, which net.* needs.
func setSysctls(sysctls map[string]string, privateNet bool) error {
	for key, value := range sysctls {
		if err := checkNetSysctl(key, privateNet); err != nil {
			return err
		}
		p := "/proc/sys/" + strings.ReplaceAll(strings.ReplaceAll(key, "/", "."), ".", "/")
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("confinement: linux.sysctl %s=%q: %w", key, value, err)
		}
	}
	return nil
}
