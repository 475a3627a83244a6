package bundle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLoadStartSpec: what LoadStartSpec decodes of a spec is what LoadSpec
// decodes of those fields, and nothing else.
func TestLoadStartSpec(t *testing.T) {
	limit, shares := int64(64<<20), uint64(512)
	major := int64(1)
	caps := []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}
	full := specs.Spec{
		Version:     specs.Version,
		Hostname:    "h",
		Annotations: map[string]string{"io.kubernetes.cri.container-type": "container"},
		Root:        &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"A=1"}, Cwd: "/", User: specs.User{UID: 1000},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Hooks:  &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}},
		Linux: &specs.Linux{
			Namespaces:        []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}, {Type: specs.MountNamespace}},
			UIDMappings:       []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			GIDMappings:       []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			CgroupsPath:       "/k8s/pod/c",
			Resources:         &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, CPU: &specs.LinuxCPU{Shares: &shares}, Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: &major, Access: "rw"}}},
			RootfsPropagation: "rslave",
			MaskedPaths:       []string{"/proc/kcore"},
			Seccomp:           &specs.LinuxSeccomp{DefaultAction: specs.ActErrno},
		},
	}
	dir := t.TempDir()
	b, err := json.Marshal(&full)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	whole, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Bundle{Dir: dir}.StartSpec()
	if err != nil {
		t.Fatal(err)
	}
	want := &specs.Spec{Annotations: whole.Annotations, Root: whole.Root, Hooks: whole.Hooks,
		Process: &specs.Process{Capabilities: whole.Process.Capabilities},
		Linux: &specs.Linux{Namespaces: whole.Linux.Namespaces, UIDMappings: whole.Linux.UIDMappings, GIDMappings: whole.Linux.GIDMappings,
			CgroupsPath: whole.Linux.CgroupsPath, Resources: whole.Linux.Resources, RootfsPropagation: whole.Linux.RootfsPropagation}}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("LoadStartSpec:\n%s\nwant\n%s", gj, wj)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStartSpec(dir); err == nil {
		t.Error("LoadStartSpec of a broken config.json succeeded")
	}
}
