package shim

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/host"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// keepPlan is what Create decides about a container's Keep before starting
// it: what planKeep reads of the spec, the node policy and the workload.
type keepPlan struct {
	id     string
	bundle oci.Bundle
	spec   *specs.Spec
	policy nodepolicy.Policy
	// workload is what the bundle and the image describe (oci.Resolve).
	workload workload.Workload
	// available reports whether a TEE backend can run on this node
	// (keep.Available); planKeep asks, it does not look.
	available func(backend string) error
}

// planKeep turns a container's spec, the node policy and its workload into
// the complete options of its Keep: it is the one writer of the Keep's
// configuration. It does nothing but decide (no file, process or cgroup is
// touched), so that what Create starts is known before anything is made.
// The options lack only what Create makes: the stdio and the executable.
//
// An error says whose it is: the container's (errdefs.ErrInvalidArgument:
// it asks for what the node does not allow, or its workload is invalid) or
// the node's (errdefs.ErrFailedPrecondition: it cannot provide what the
// policy requires).
func planKeep(p keepPlan) (host.StartOptions, error) {
	annotations := p.spec.Annotations
	backend, err := p.policy.Choose(annotations[enarxdev.AnnotationBackend], p.available)
	var steward *nodepolicy.Steward
	if err == nil {
		steward, err = p.policy.ChooseSteward(annotations[enarxdev.AnnotationSteward])
	}
	switch {
	case err == nil:
	case errors.Is(err, nodepolicy.ErrBackendNotAllowed), errors.Is(err, nodepolicy.ErrStewardNotAllowed):
		return host.StartOptions{}, fmt.Errorf("task %s: %w: %w", p.id, err, errdefs.ErrInvalidArgument)
	default:
		return host.StartOptions{}, fmt.Errorf("task %s: %w: %w", p.id, err, errdefs.ErrFailedPrecondition)
	}
	cfg := keep.Config{
		ID:          p.id,
		Workload:    p.workload,
		Backend:     backend,
		Steward:     steward,
		ModuleCache: p.policy.ModuleCacheDir(),
	}
	if steward != nil {
		cfg.StateDir = p.bundle.KeepStateDir()
	}
	// The Keep is a container: it sees the container's filesystem view,
	// not preopens of its parts.
	cfg.Container = keepContainer(p.id, p.bundle, p.spec)
	cfg.Preopens = nil
	opts := host.StartOptions{Dir: p.bundle.Dir, CompileMemory: p.policy.CompileMemory()}
	if l := p.spec.Linux; l != nil {
		// The container's memory limit is read once: it caps the
		// workload's linear memory, and the Keep's cgroup bounds the
		// whole Keep with it (host.Process.Run).
		opts.Cgroup, opts.Resources = keepCgroup(p.spec)
		if r := l.Resources; r != nil && r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
			cfg.MemoryLimit = *r.Memory.Limit
		}
	}
	// What the Keep checks of its config, so that Create fails rather than
	// the Keep.
	if err := cfg.Validate(); err != nil {
		return host.StartOptions{}, fmt.Errorf("oci: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	opts.Config = cfg
	return opts, nil
}

// keepContainer is the confinement of container id's Keep: its spec's,
// with its root filesystem in bundle.
func keepContainer(id string, bundle oci.Bundle, spec *specs.Spec) *confine.Spec {
	c := confine.FromOCI(spec, bundle.Rootfs(spec))
	c.ID, c.Bundle = id, bundle.Dir
	return c
}

// keepCgroup is the cgroup of a Keep of spec: linux.cgroupsPath ("" for
// none), and linux.resources with the devices the workload may open (the
// spec's rules and runc's defaults; host.Start adds the Keep's own, its
// TEE's device).
func keepCgroup(spec *specs.Spec) (string, *specs.LinuxResources) {
	l := spec.Linux
	if l == nil {
		return "", nil
	}
	res := specs.LinuxResources{}
	if l.Resources != nil {
		res = *l.Resources
	}
	res.Devices = confine.DeviceRules(res.Devices)
	return l.CgroupsPath, &res
}
