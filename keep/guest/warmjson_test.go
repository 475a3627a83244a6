package guest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// TestFillValue: the sample warmJSON encodes reaches the config's nested
// types (the container's mounts and namespaces), and encodes and decodes
// back to itself, so that warmJSON does what it says.
func TestFillValue(t *testing.T) {
	var req keep.Request
	fillValue(reflect.ValueOf(&req).Elem(), 0)
	if req.Config == nil || req.Config.Container == nil || len(req.Config.Container.Mounts) != 1 || len(req.Config.Container.Namespaces) != 1 || len(req.Config.Env) != 1 {
		t.Fatalf("the sample does not reach the container's spec: %+v", req.Config)
	}
	b, err := json.Marshal(&req)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var back keep.Request
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if back.Config == nil || back.Config.Container == nil || len(back.Config.Container.Mounts) != 1 {
		t.Errorf("decoded %+v", back.Config)
	}
	warmJSON() // and it does not panic
}
