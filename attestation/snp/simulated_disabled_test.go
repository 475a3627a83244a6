//go:build !enarx_simulate

package snp

import (
	"strings"
	"testing"
)

func TestNewSimulatedIsOffInProductionBuilds(t *testing.T) {
	p, err := NewSimulated()
	if p != nil || err == nil || !strings.Contains(err.Error(), "-tags enarx_simulate") {
		t.Fatalf("NewSimulated() = %v, %v", p, err)
	}
}
