package shim

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/nodepolicy"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	"github.com/enarx/containerd-shim-enarx/oci"
)

// TestPlanKeep: planKeep alone decides the Keep's start options from the
// spec, the node policy and the workload, touching nothing.
func TestPlanKeep(t *testing.T) {
	limit := int64(64 << 20)
	spec := &specs.Spec{
		Root:        &specs.Root{Path: "rootfs"},
		Process:     &specs.Process{Args: []string{"/app.wasm"}, User: specs.User{UID: 1000, GID: 1000}},
		Annotations: map[string]string{enarxdev.AnnotationSteward: "test"},
		Linux: &specs.Linux{
			CgroupsPath: "/default/c1",
			Resources: &specs.LinuxResources{
				Memory:  &specs.LinuxMemory{Limit: &limit},
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
		},
	}
	wl := workload.Workload{Module: "/run/b/rootfs/app.wasm", Args: []string{"/app.wasm"}}
	bundle := oci.Bundle{Dir: "/run/b"}
	policy := nodepolicy.Default()
	policy.Stewards = map[string]nodepolicy.Steward{"test": {URL: "https://steward.example", CA: "/etc/enarx/steward-ca.pem"}}
	opts, err := planKeep(keepPlan{id: "c1", bundle: bundle, spec: spec, policy: policy, workload: wl,
		available: func(string) error { return errors.New("no TEE here") }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := opts.Config
	if cfg.ID != "c1" || cfg.Module != wl.Module || cfg.Backend != nodepolicy.BackendNil ||
		cfg.Steward == nil || cfg.Steward.Name != "test" || cfg.Steward.URL != "https://steward.example" || cfg.Steward.CA != "/etc/enarx/steward-ca.pem" ||
		cfg.StateDir != bundle.KeepStateDir() || cfg.ModuleCache != nodepolicy.DefaultModuleCache || cfg.MemoryLimit != limit {
		t.Errorf("config %+v", cfg)
	}
	if c := cfg.Container; c == nil || c.Rootfs != "/run/b/rootfs" || c.User.UID != 1000 || len(cfg.Preopens) != 0 {
		t.Errorf("container %+v, preopens %v: want the container's view and no preopens", c, cfg.Preopens)
	}
	if opts.Dir != "/run/b" || opts.Cgroup != "/default/c1" || opts.CompileMemory != nodepolicy.DefaultCompileMemoryLimit {
		t.Errorf("options %+v", opts)
	}
	if r := opts.Resources; r == nil || len(r.Devices) < 2 || r.Devices[0].Allow || r.Memory.Limit != &limit {
		t.Errorf("resources %+v: want the spec's, its device rules first, then runc's defaults", r)
	}
	if len(spec.Linux.Resources.Devices) != 1 {
		t.Errorf("planKeep changed the spec's device rules: %v", spec.Linux.Resources.Devices)
	}

	// The container's errors and the node's. A steward the node does not
	// list, by URL, is the container's error, and is asked nothing.
	spec.Annotations = map[string]string{enarxdev.AnnotationSteward: "http://127.0.0.1:2379/"}
	if _, err := planKeep(keepPlan{id: "c1", bundle: bundle, spec: spec, policy: policy, workload: wl}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "names no steward of the node policy") {
		t.Errorf("a steward by URL: %v, want InvalidArgument", err)
	}
	spec.Annotations = map[string]string{enarxdev.AnnotationBackend: "sgx"}
	if _, err := planKeep(keepPlan{id: "c1", bundle: bundle, spec: spec, policy: nodepolicy.Default(), workload: wl}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "sgx") {
		t.Errorf("a backend that is none: %v, want InvalidArgument naming it", err)
	}
	spec.Annotations = nil
	strict := nodepolicy.Policy{Backend: nodepolicy.BackendAuto, RequireTEE: true}
	if _, err := planKeep(keepPlan{id: "c1", bundle: bundle, spec: spec, policy: strict, workload: wl, available: func(string) error { return errors.New("no TEE here") }}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("a node that requires a TEE it lacks: %v, want FailedPrecondition", err)
	}
	if _, err := planKeep(keepPlan{id: "c1", bundle: bundle, spec: spec, policy: nodepolicy.Default(), workload: workload.Workload{Module: "relative.wasm"}}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("an invalid workload: %v, want InvalidArgument", err)
	}
}
