package shim

import (
	"context"
	"errors"
	"fmt"
	"os"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep/cgroup"
)

// The task's cgroup: the Keep is placed in the container's cgroup
// (linux.cgroupsPath) with the container's resources, Stats reports its
// metrics, and deleting the task removes it.

// loadCgroup finds the cgroup of the container of spec for `shim delete`,
// nil when it has none or it is gone.
func loadCgroup(ctx context.Context, spec *specs.Spec) *cgroup.Cgroup {
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return nil
	}
	cg, err := cgroup.Load(spec.Linux.CgroupsPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.G(ctx).WithError(err).Warn("load the cgroup of a Keep")
		}
		return nil
	}
	return cg
}

// removeCgroup deletes the task's cgroup, killing what is left in it. It
// reports whether the cgroup is gone.
func (t *task) removeCgroup(ctx context.Context) bool {
	if t.cgroup == nil {
		return true
	}
	if err := t.cgroup.Delete(); err != nil {
		log.G(ctx).WithError(err).WithField("id", t.id).Warn("remove the cgroup of a Keep")
		return false
	}
	return true
}

// Stats returns the metrics of the task's cgroup the way containerd's runc
// shim does: cgroups v1 or v2 Metrics in an Any whose type URL is the
// message's name ("io.containerd.cgroups.v1.Metrics" or
// "io.containerd.cgroups.v2.Metrics"), which `ctr tasks metrics` and the CRI
// plugin decode.
func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	t, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	if t.keep == nil {
		return nil, toGRPC(fmt.Errorf("task %s is a pod sandbox: it runs no Keep and has no cgroup of its own: %w", t.id, errdefs.ErrNotFound))
	}
	cg := t.keep.Cgroup()
	if cg == nil {
		return nil, toGRPC(fmt.Errorf("task %s has no cgroup (its spec has no linux.cgroupsPath): %w", t.id, errdefs.ErrNotFound))
	}
	metrics, err := cg.Metrics()
	if err != nil {
		return nil, toGRPC(fmt.Errorf("task %s: %w", t.id, err))
	}
	data, err := typeurl.MarshalAny(metrics)
	if err != nil {
		return nil, toGRPC(fmt.Errorf("task %s: encode metrics: %w", t.id, err))
	}
	return &taskapi.StatsResponse{Stats: typeurl.MarshalProto(data)}, nil
}
