package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
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
	p    *Process
	id   string
	key  string
	once sync.Once
}

// StartAhead starts the Keep that opts would start, with what is known
// before Create: Executable, Dir, Config.ID, Config.Container, Cgroup and
// Resources. The compile memory limit is set when Start takes it.
func StartAhead(ctx context.Context, opts StartOptions) (*Ahead, error) {
	c := opts.Config.Container
	switch {
	case opts.Config.ID == "":
		return nil, errors.New("keep: a Keep started ahead needs its container's ID")
	case c == nil:
		return nil, fmt.Errorf("keep %s: only a confined Keep is started ahead", opts.Config.ID)
	case c.UserNS():
		return nil, fmt.Errorf("keep %s: a Keep with a user namespace is not started ahead", opts.Config.ID)
	case c.SharedPropagation():
		return nil, fmt.Errorf("keep %s: a Keep whose root filesystem propagation is shared is not started ahead", opts.Config.ID)
	}
	opts.PendingCgroup = nil
	p, err := spawn(ctx, opts, true)
	if err != nil {
		return nil, err
	}
	return &Ahead{p: p, id: opts.Config.ID, key: aheadKey(opts)}, nil
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
		if aheadKey(opts) == a.key {
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
