package oci

import (
	"fmt"
	"strconv"

	"github.com/enarx/containerd-shim-enarx/enarxdev"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// applyInstancesAnnotation sets cfg.Instances from the
// enarxdev.AnnotationInstances annotation, when there is one.
func applyInstancesAnnotation(cfg *workload.Workload, annotations map[string]string) error {
	v, ok := annotations[enarxdev.AnnotationInstances]
	if !ok {
		return nil
	}
	n, err := ParseInstances(v)
	if err != nil {
		return fmt.Errorf("oci: annotation %s=%q: %w", enarxdev.AnnotationInstances, v, err)
	}
	cfg.Instances = n
	return nil
}

// ParseInstances reads a number of instances (enarxdev.AnnotationInstances,
// `enarx run --instances`): a decimal from 1 to workload.MaxInstances.
func ParseInstances(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > workload.MaxInstances {
		return 0, fmt.Errorf("the number of instances is a whole number from 1 to %d, e.g. \"2\"", workload.MaxInstances)
	}
	return n, nil
}
