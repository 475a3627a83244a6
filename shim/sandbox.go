package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations containerd's CRI plugin sets on the containers of a pod.
const (
	// annotationSandboxID names the pod sandbox a container belongs to; the
	// containers of one pod share one shim (see start).
	annotationSandboxID = "io.kubernetes.cri.sandbox-id"
	// annotationContainerType is "sandbox" for the pod's sandbox container
	// (the pause image) and "container" for the others.
	annotationContainerType = "io.kubernetes.cri.container-type"
	containerTypeSandbox    = "sandbox"
)

// isSandbox reports whether spec is a pod's sandbox container.
func isSandbox(spec *specs.Spec) bool {
	return spec != nil && spec.Annotations[annotationContainerType] == containerTypeSandbox
}

// groupID is the ID whose shim serves the container of spec: its pod's
// sandbox ID when it has one, else id itself.
func groupID(spec *specs.Spec, id string) string {
	if spec != nil {
		if g := spec.Annotations[annotationSandboxID]; g != "" {
			return g
		}
	}
	return id
}
