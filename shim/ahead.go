package shim

import (
	"context"

	"github.com/containerd/log"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// aheadKeep is the Keep the server starts as it starts (host.StartAhead),
// for the container containerd started it for: containerd wrote the
// bundle, the server's working directory, before it ran the shim, so the
// spec says the Keep's namespaces and cgroup already.
type aheadKeep struct {
	id   string
	done chan struct{}
	keep *host.Ahead
}

// startAhead starts the Keep of container id, whose bundle is dir (the
// server's working directory), while the server goes on; takeAhead waits
// for it. A bundle whose Keep is not started ahead (a pod's sandbox or
// container, a user namespace, a cgroup a systemd driver places, anything
// unreadable) starts none: Create starts the Keep then, and reports what
// is wrong.
func (s *service) startAhead(ctx context.Context, id, dir string) {
	a := &aheadKeep{id: id, done: make(chan struct{})}
	s.mu.Lock()
	s.ahead = a
	s.mu.Unlock()
	go func() {
		defer close(a.done)
		bundle := oci.Bundle{Dir: dir}
		spec, err := bundle.StartSpec()
		if err != nil || isSandbox(spec) || spec.Annotations[launcher.AnnotationSandboxID] != "" {
			// A container of a pod: the server's ID is the pod's, not
			// its own, and its Create names the container.
			return
		}
		opts := host.StartOptions{Executable: s.exe, Dir: bundle.Dir, Config: keep.Config{ID: id, Container: keepContainer(id, bundle, spec)}}
		opts.Cgroup, opts.Resources = keepCgroup(spec)
		if a.keep, err = host.StartAhead(ctx, opts); err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Debug("no Keep started ahead")
		}
	}()
}

// aheadFor is the Keep being started ahead for container id, or nil; the
// caller owns it from here (takeAhead). One started for another ID is
// discarded first: it may hold the cgroup the container's Keep is made in.
func (s *service) aheadFor(ctx context.Context, id string) *aheadKeep {
	s.mu.Lock()
	a := s.ahead
	s.ahead = nil
	s.mu.Unlock()
	if a != nil && a.id != id {
		s.takeAhead(a).Discard(ctx)
		return nil
	}
	return a
}

// takeAhead waits until a, when not nil, is started, and returns its Keep:
// nil when none was started.
func (s *service) takeAhead(a *aheadKeep) *host.Ahead {
	if a == nil {
		return nil
	}
	<-a.done
	return a.keep
}

// discardAhead stops a Keep started ahead that no Create took.
func (s *service) discardAhead(ctx context.Context) {
	s.mu.Lock()
	a := s.ahead
	s.ahead = nil
	s.mu.Unlock()
	s.takeAhead(a).Discard(ctx)
}
