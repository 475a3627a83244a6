package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// Annotations containerd's CRI plugin sets on the containers of a pod.
const (
	// annotationSandboxID names the pod sandbox a container belongs to; the
	// containers of one pod share one shim (see launcher.Start).
	annotationSandboxID = launcher.AnnotationSandboxID
	// annotationContainerType is "sandbox" for the pod's sandbox container
	// (the pause image) and "container" for the others.
	annotationContainerType = "io.kubernetes.cri.container-type"
	containerTypeSandbox    = "sandbox"
)

// isSandbox reports whether spec is a pod's sandbox container.
func isSandbox(spec *specs.Spec) bool {
	return spec != nil && spec.Annotations[annotationContainerType] == containerTypeSandbox
}
