package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"sync"

	"github.com/containerd/log"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
)

// Ahead is a Keep process started for a container before its Create: by
// the shim's server as it starts, from the bundle's spec alone, so that
// the Keep's own start (its executable's pages, the Go runtime, the
// engine) runs while containerd connects and the server mounts the root
// filesystem, opens the stdio and plans the Keep. It starts as Start would
// start it, in its cgroup and its namespaces, with /dev/null as stdio, and
// waits: Start hands it the container's stdio, a tree of its root
// filesystem and its config (StartOptions.Ahead).
//
// Only a confined Keep without a user namespace, whose cgroup it can join
// as it starts, and whose root filesystem is not shared with the host, is
// started ahead: a Keep with a user namespace starts its inner Keep from
// what its config says, one a systemd driver places is moved into its
// cgroup only once it has its config, and the tree of a shared root
// filesystem, attached in the Keep's namespace, would be propagated to the
// host's.
type Ahead struct {
	p   *Process
	id  string
	key string
	// newNetNS: made in its container's network namespace, it serves only
	// a config that allows it (keep.Config.MadeInNewNetNS).
	newNetNS bool
	once     sync.Once
}

// StartAhead starts the Keep that opts would start, with what is known
// before Create: Executable, Dir, Config.ID, Config.Container, Cgroup and
// Resources. The compile memory limit is set when Start takes it.
func StartAhead(ctx context.Context, opts StartOptions) (*Ahead, error) {
	if err := checkAhead(opts); err != nil {
		return nil, err
	}
	opts.PendingCgroup = nil
	p, err := spawn(ctx, opts, true)
	if err != nil {
		return nil, err
	}
	return &Ahead{p: p, id: opts.Config.ID, key: aheadKey(opts), newNetNS: opts.NewNetNS}, nil
}

// checkAhead says why the Keep of opts is not started ahead, if it is not.
func checkAhead(opts StartOptions) error {
	c := opts.Config.Container
	switch {
	case opts.Config.ID == "":
		return errors.New("keep: a Keep started ahead needs its container's ID")
	case c == nil:
		return fmt.Errorf("keep %s: only a confined Keep is started ahead", opts.Config.ID)
	case c.UserNS():
		return fmt.Errorf("keep %s: a Keep with a user namespace is not started ahead", opts.Config.ID)
	case c.SharedPropagation():
		return fmt.Errorf("keep %s: a Keep whose root filesystem propagation is shared is not started ahead", opts.Config.ID)
	}
	return nil
}

// Pid is the Keep's process ID.
func (a *Ahead) Pid() int { return a.p.Pid() }

// Discard stops the Keep and removes its cgroup: its container's Create
// failed, or never came.
func (a *Ahead) Discard(ctx context.Context) {
	if a == nil {
		return
	}
	a.once.Do(func() { a.p.abandon(ctx, a.id) })
}

// take is the Keep, for Start, when it was started for opts and is still
// waiting; otherwise it is discarded, and take returns nil.
func (a *Ahead) take(ctx context.Context, opts StartOptions) *Process {
	if a == nil {
		return nil
	}
	select {
	case <-a.p.Done():
	default:
		if aheadKey(opts) == a.key && servesNetNS(a.newNetNS, opts) {
			taken := false
			a.once.Do(func() { taken = true })
			if taken {
				return a.p
			}
			return nil
		}
	}
	a.Discard(ctx)
	return nil
}

// aheadKey is what of opts decided how the Keep was started: a Keep
// started ahead serves a Start whose options give the same.
func aheadKey(opts StartOptions) string {
	c := opts.Config.Container
	var namespaces []specs.LinuxNamespace
	var bounding uint64
	var bounded bool
	if c != nil {
		namespaces = c.Namespaces
		bounding, bounded = c.StartBounding()
	}
	b, _ := json.Marshal(struct {
		Executable, Dir, ID, Cgroup string
		Resources                   *specs.LinuxResources
		Namespaces                  []specs.LinuxNamespace
		Bounding                    uint64
		Bounded                     bool
	}{opts.Executable, opts.Dir, opts.Config.ID, opts.Cgroup, opts.Resources, namespaces, bounding, bounded})
	return string(b)
}

// servesNetNS reports whether a Keep made in its container's new network
// namespace, or not (newNetNS), serves opts: one made in it only a config
// that allows it; one not made in it any, as it makes the namespace itself.
func servesNetNS(newNetNS bool, opts StartOptions) bool {
	return !newNetNS || opts.Config.MadeInNewNetNS()
}

// Spare is a Keep started before any container is known: by a spare shim
// server, shaped like the container it served last, so that the next
// container of that shape finds its Keep past its exec and its Go
// runtime's start, waiting for its config, as soon as the server is
// claimed. Its ID is keep.SpareID and its cgroup a sibling of that
// container's, named for the server's process (spareCgroupName); Adopt
// renames the cgroup to the new container's and makes the Keep the one
// started ahead for it. A spare Keep holds no container's state: its
// stdio is /dev/null, its namespaces are new and empty (or joined by the
// same paths), and it has no config.
type Spare struct {
	p        *Process
	shape    string
	newNetNS bool
	mu       sync.Mutex
	// gone: adopted or discarded.
	gone bool
}

// StartSpare starts a spare Keep shaped like opts, which StartAhead would
// start (the same Executable, Config.Container, Resources and cgroup
// parent); Config.ID and Dir do not count. With opts.Preload and
// Config.ModuleCache, it loads that module's code while it waits. Only a
// Keep whose cgroup can be renamed in place is started so
// (cgroup.Renames): a migration into the container's cgroup would cost
// about what the spare saves.
func StartSpare(ctx context.Context, opts StartOptions) (*Spare, error) {
	if err := checkAhead(opts); err != nil {
		return nil, err
	}
	shape := spareShape(opts)
	opts.Config.ID, opts.Dir, opts.PendingCgroup = keep.SpareID, "/", nil
	if opts.Cgroup != "" {
		if !cgroup.Renames(opts.Cgroup) {
			return nil, fmt.Errorf("keep: the cgroup %s cannot be renamed in place: no spare Keep", opts.Cgroup)
		}
		opts.Cgroup = path.Join(path.Dir(opts.Cgroup), spareCgroupName())
		// What a spare server killed before left (its PID reused since).
		if cg, err := cgroup.Load(opts.Cgroup); err == nil {
			if err := cg.Delete(); err != nil {
				return nil, fmt.Errorf("keep: remove a spare Keep's cgroup left behind: %w", err)
			}
		}
	}
	p, err := spawn(ctx, opts, true)
	if err != nil {
		return nil, err
	}
	return &Spare{p: p, shape: shape, newNetNS: opts.NewNetNS}, nil
}

// spareCgroupName is the name of the cgroup a spare server's spare Keep
// starts in: "@" is in no containerd identifier, so no container's
// cgroup has it, and a server has one spare Keep at a time.
func spareCgroupName() string { return fmt.Sprintf("enarx-spare-keep@%d", os.Getpid()) }

// spareShape is what of opts a spare Keep must have been started with to
// serve them: aheadKey without the container's ID, working directory
// and cgroup name.
func spareShape(opts StartOptions) string {
	opts.Config.ID, opts.Dir = "", ""
	if opts.Cgroup != "" {
		opts.Cgroup = path.Dir(opts.Cgroup)
	}
	return aheadKey(opts)
}

// Pid is the spare Keep's process ID.
func (s *Spare) Pid() int { return s.p.Pid() }

// Adopt makes the spare Keep the one started ahead for opts (Start takes
// it), when it was started with their shape, is still waiting, and its
// cgroup could be renamed to opts.Cgroup. Otherwise it returns nil, and
// the caller discards the spare Keep (Discard), off the path of the
// container's start. A spare Keep is adopted once.
func (s *Spare) Adopt(ctx context.Context, opts StartOptions) *Ahead {
	if s == nil || spareShape(opts) != s.shape || !servesNetNS(s.newNetNS, opts) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return nil
	}
	select {
	case <-s.p.Done():
		return nil
	default:
	}
	if s.p.cgroup != nil {
		// The same parent, so a rename in place (cgroup.Rename).
		if err := s.p.cgroup.Rename(opts.Cgroup); err != nil {
			log.G(ctx).WithError(err).WithField("id", opts.Config.ID).Debug("the spare Keep is not adopted")
			return nil
		}
	}
	s.gone = true
	return &Ahead{p: s.p, id: opts.Config.ID, key: aheadKey(opts), newNetNS: s.newNetNS}
}

// Discard stops the spare Keep and removes its cgroup, unless Adopt gave
// it to a container.
func (s *Spare) Discard(ctx context.Context) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.gone = true
		s.p.abandon(ctx, keep.SpareID)
	}
}

// handOver gives a Keep started ahead what Create made for it: its compile
// memory limit, then, in one message on the control socket, its stdio (the
// streams that are not /dev/null) and a detached tree of its root
// filesystem (open_tree(2)), which was mounted after the Keep's mount
// namespace was made. The config follows (sendConfig).
func (p *Process) handOver(opts StartOptions) error {
	if err := p.limitCompileMemory(opts.CompileMemory); err != nil {
		return err
	}
	var mask byte
	var fds []int
	for i, f := range []*os.File{opts.Stdio.Stdin, opts.Stdio.Stdout, opts.Stdio.Stderr} {
		if f != nil {
			mask |= 1 << i
			fds = append(fds, int(f.Fd()))
		}
	}
	rootfs := opts.Config.Container.Rootfs
	tree, err := unix.OpenTree(unix.AT_FDCWD, rootfs, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("a tree of the root filesystem %s for the Keep started ahead: %w", rootfs, err)
	}
	defer unix.Close(tree)
	mask |= keep.HandOverRootfs
	fds = append(fds, tree)
	uc, ok := p.ctl.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("the control socket is a %T, not a unix socket", p.ctl)
	}
	if _, _, err := uc.WriteMsgUnix([]byte{mask}, unix.UnixRights(fds...), nil); err != nil {
		return fmt.Errorf("hand over stdio and root filesystem: %w", err)
	}
	return nil
}
