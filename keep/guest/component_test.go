package guest

import (
	"context"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// coreModule is a Module that is not a component.
type coreModule struct{}

func (coreModule) Run(context.Context, engine.RunOptions) (int, error) { return 0, nil }

// fakeComponent is a Module that says it is a component.
type fakeComponent struct{}

func (fakeComponent) Run(context.Context, engine.RunOptions) (int, error) { return 0, nil }
func (fakeComponent) World() string                                       { return "wasi:cli/command" }

func TestCheckComponent(t *testing.T) {
	sockets := []socketspec.Spec{{Name: "web", Kind: socketspec.Listen, Prot: socketspec.TCP, Addr: ":80"}}
	for _, tc := range []struct {
		name   string
		cfg    keep.Config
		module engine.Module
		want   string // substring of the error; empty for none
	}{
		{"component", keep.Config{Workload: workload.Workload{Module: "/c.wasm"}}, fakeComponent{}, ""},
		{"component-start", keep.Config{Workload: workload.Workload{Module: "/c.wasm", Entrypoint: "_start"}}, fakeComponent{}, ""},
		{"component-sockets", keep.Config{Workload: workload.Workload{Module: "/c.wasm", Sockets: sockets}}, fakeComponent{},
			"module /c.wasm is a WebAssembly component (wasi:cli/command): declared sockets are not available to components"},
		{"component-entrypoint", keep.Config{Workload: workload.Workload{Module: "/c.wasm", Entrypoint: "main"}}, fakeComponent{},
			`has no entrypoint "main"`},
		{"module-sockets", keep.Config{Workload: workload.Workload{Module: "/m.wasm", Sockets: sockets, Entrypoint: "main"}}, coreModule{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkComponent(tc.cfg, tc.module)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkComponent: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("checkComponent = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
