package shim

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

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
	// A claimed spare's spare Keep: adopted below, or discarded.
	spare := s.takeSpareKeep()
	go func() {
		defer close(a.done)
		bundle := oci.Bundle{Dir: dir}
		spec, err := bundle.StartSpec()
		if err != nil || isSandbox(spec) || spec.Annotations[launcher.AnnotationSandboxID] != "" {
			// A container of a pod: the server's ID is the pod's, not
			// its own, and its Create names the container.
			s.discardSpareKeep(ctx, spare)
			return
		}
		opts := host.StartOptions{Executable: s.exe, Dir: bundle.Dir, Config: keep.Config{ID: id, Container: keepContainer(id, bundle, spec)}}
		opts.Cgroup, opts.Resources = keepCgroup(spec)
		if err := oci.ApplyNetwork(&opts.Config.Workload, spec); err != nil {
			s.discardSpareKeep(ctx, spare)
			return
		}
		s.mu.Lock()
		s.guessNetwork(&opts)
		s.mu.Unlock()
		// The spare Keep, when its shape is this container's, is past its
		// exec and its runtime's start already.
		if a.keep = spare.take().Adopt(ctx, opts); a.keep == nil {
			s.discardSpareKeep(ctx, spare)
			if a.keep, err = host.StartAhead(ctx, opts); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Debug("no Keep started ahead")
				return
			}
		}
		s.mu.Lock()
		s.shape = &opts
		s.mu.Unlock()
	}()
}

// guessNetwork sets whether the Keep of opts, started before its
// container's Create, is made in the container's new network namespace
// (host.StartOptions.NewNetNS): that depends on the node policy's Steward
// (keep.Config.MadeInNewNetNS), which only Create's options give. A server
// that has served a container guesses its Steward; one that has not makes
// the Keep as before. s.mu is held.
func (s *service) guessNetwork(opts *host.StartOptions) {
	opts.Config.Steward = s.lastSteward
	opts.NewNetNS = s.servedOne && opts.Config.MadeInNewNetNS()
}

// preloadHint is the module a spare Keep preloads: a digest, and the
// module cache (host.StartOptions.Preload); hit says the Keep that ran it
// loaded it from that cache.
type preloadHint struct {
	digest, cache string
	hit           bool
}

// next is the hint after a Keep ready with ready's module from cache: the
// module of the last Keep that found its code in the cache, or, while none
// has, the last Keep's. A hit says the module runs again and again from
// that cache; a miss, only that it is new there (a one-off job, a node
// policy's cache that was just made). So a server that served a service
// from a warm cache and then one compile still preloads the service.
func (h preloadHint) next(ready keep.Ready, cache string) preloadHint {
	hit := strings.HasPrefix(ready.ModuleCache, keep.CacheHit)
	if h.hit && !hit {
		return h
	}
	return preloadHint{digest: ready.WorkloadDigest, cache: cache, hit: hit}
}

// spareKeep is the Keep a spare server starts (host.StartSpare), shaped
// like the last container it started a Keep ahead for: a claim whose
// container has that shape finds its Keep waiting for its config.
type spareKeep struct {
	done chan struct{}
	// taken is closed by take: a spare Keep that has not begun to start
	// by then never does.
	taken chan struct{}
	once  sync.Once
	keep  *host.Spare
}

// take waits until the spare Keep is started, and returns it: nil when
// none was.
func (sk *spareKeep) take() *host.Spare {
	if sk == nil {
		return nil
	}
	sk.once.Do(func() { close(sk.taken) })
	<-sk.done
	return sk.keep
}

// spareKeepWait is how long a spare Keep waits at most for the last
// container's teardown (awaitTeardown).
const spareKeepWait = 250 * time.Millisecond

// awaitTeardown waits until containerd has removed bundle, the last
// container's, or taken is closed (then it returns false), or
// spareKeepWait has passed. containerd removes a bundle once `shim delete`
// has run, so the spare Keep's start (its exec, Go runtime, engine and
// preload, about 27 ms of CPU on the CI machine class) is not spent beside
// that teardown, which the container's client waits for, only beside what
// little is left of it.
func awaitTeardown(bundle string, taken <-chan struct{}) bool {
	deadline := time.NewTimer(spareKeepWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Lstat(bundle); errors.Is(err, fs.ErrNotExist) {
			return true
		}
		select {
		case <-taken:
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
		}
	}
}

// startSpareKeep starts the spare Keep of a server that has just become
// the spare, once its last container is torn down (awaitTeardown), when it
// started a Keep ahead for that container: the next container of that
// shape adopts it (startAhead). It must return at once.
func (s *service) startSpareKeep(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shape == nil || s.spare != nil {
		return
	}
	sk := &spareKeep{done: make(chan struct{}), taken: make(chan struct{})}
	s.spare = sk
	opts := *s.shape
	opts.Preload, opts.Config.ModuleCache = s.lastModule.digest, s.lastModule.cache
	s.guessNetwork(&opts)
	go func() {
		defer close(sk.done)
		if !awaitTeardown(opts.Dir, sk.taken) {
			return
		}
		var err error
		if sk.keep, err = host.StartSpare(ctx, opts); err != nil {
			log.G(ctx).WithError(err).Debug("no spare Keep")
		}
	}()
}

// takeSpareKeep is the spare Keep, or nil; the caller owns it from here.
func (s *service) takeSpareKeep() *spareKeep {
	s.mu.Lock()
	defer s.mu.Unlock()
	sk := s.spare
	s.spare = nil
	return sk
}

// discardSpareKeep stops a spare Keep that was not adopted, beside the
// caller (shutdown waits for it).
func (s *service) discardSpareKeep(ctx context.Context, sk *spareKeep) {
	if sk == nil {
		return
	}
	s.discards.Add(1)
	go func() {
		defer s.discards.Done()
		sk.take().Discard(ctx)
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

// discardKeeps stops the Keeps started ahead or spare that no Create took,
// and waits until they are gone.
func (s *service) discardKeeps(ctx context.Context) {
	s.discardAhead(ctx)
	s.discardSpareKeep(ctx, s.takeSpareKeep())
	s.discards.Wait()
}

// discardAhead stops a Keep started ahead that no Create took.
func (s *service) discardAhead(ctx context.Context) {
	s.mu.Lock()
	a := s.ahead
	s.ahead = nil
	s.mu.Unlock()
	s.takeAhead(a).Discard(ctx)
}
