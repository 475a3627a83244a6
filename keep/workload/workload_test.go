package workload

import (
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
)

// TestValidateInstances: several instances share listen sockets, never a
// connection.
func TestValidateInstances(t *testing.T) {
	listen := socketspec.Spec{Name: "https", Kind: socketspec.Listen, Prot: socketspec.TLS, Addr: "127.0.0.1:8443"}
	connect := socketspec.Spec{Name: "db", Kind: socketspec.Connect, Prot: socketspec.TCP, Addr: "db.example:5432"}
	for _, c := range []struct {
		name      string
		instances int
		sockets   []socketspec.Spec
		want      string // "" for valid
	}{
		{"the default", 0, []socketspec.Spec{connect}, ""},
		{"one", 1, []socketspec.Spec{listen, connect}, ""},
		{"several sharing a listen socket", 4, []socketspec.Spec{listen}, ""},
		{"the most", MaxInstances, nil, ""},
		{"too many", MaxInstances + 1, nil, "from 1 to 64"},
		{"negative", -1, nil, "from 1 to 64"},
		{"several with a connection", 2, []socketspec.Spec{listen, connect}, `connect socket "db" is one connection, which 2 instances cannot share`},
	} {
		w := Workload{Module: "/app.wasm", Args: []string{"app.wasm"}, Instances: c.instances, Sockets: c.sockets}
		err := w.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if got, want := w.InstanceCount(), max(c.instances, 1); got != want {
			t.Errorf("%s: InstanceCount %d, want %d", c.name, got, want)
		}
	}
}
