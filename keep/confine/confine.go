// Package confine makes a Keep a container: it applies to the Keep process
// what runc applies to a process from the same OCI spec, so that the
// workload's files are opened by a process that can reach no more than
// runc's would. WebAssembly's sandbox is the second wall, inside it.
//
// The shim takes a Spec from the container's OCI spec (FromOCI) and starts
// the Keep in new namespaces (Cloneflags). The Keep first does what needs
// the host — it compiles its module through the node's cache, makes its
// identity with the TEE and the Steward, opens its sockets in the
// container's network namespace — and then confines itself (Enter): its
// own mount namespace whose root is the container's filesystem view (the
// root filesystem with every spec mount, masked and read-only paths, then
// pivot_root), its hostname, then the spec's user, groups and umask. Only
// then does its workload run, with "/" of that view as its WASI root.
//
// The Keep confines itself, in the process that runs the engine, as
// runwasi's engines run in the container's init after its setup, rather
// than through runc's libcontainer, which execs the container's process
// inside the root filesystem: docs/design.md ("Confinement") has the
// measurements and what a Keep is not yet confined by.
package confine

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spec is how a Keep is confined: what the shim takes of the container's
// OCI spec. Its JSON encoding is part of the Keep's configuration, whose
// digest the Keep's evidence binds.
type Spec struct {
	// Rootfs is the host path of the container's root filesystem.
	Rootfs string `json:"rootfs"`
	// Readonly makes the root filesystem read-only (root.readonly).
	Readonly bool `json:"readonly,omitempty"`
	// Propagation is linux.rootfsPropagation; empty means rslave, as runc.
	Propagation string `json:"propagation,omitempty"`
	// Mounts are the spec's mounts, in order.
	Mounts []specs.Mount `json:"mounts,omitempty"`
	// MaskedPaths are hidden (linux.maskedPaths), ReadonlyPaths made
	// read-only (linux.readonlyPaths).
	MaskedPaths   []string `json:"masked_paths,omitempty"`
	ReadonlyPaths []string `json:"readonly_paths,omitempty"`
	// Devices are linux.devices: nodes made in a /dev the spec mounts as
	// tmpfs, beside runc's default ones.
	Devices []specs.LinuxDevice `json:"devices,omitempty"`
	// Hostname is set in the Keep's UTS namespace when it has its own.
	Hostname string `json:"hostname,omitempty"`
	// User is process.user: uid, gid, additional gids and umask.
	User specs.User `json:"user"`
	// Capabilities are process.capabilities; nil leaves the Keep's own.
	Capabilities *specs.LinuxCapabilities `json:"capabilities,omitempty"`
	// NoNewPrivileges is process.noNewPrivileges.
	NoNewPrivileges bool `json:"no_new_privileges,omitempty"`
	// Seccomp is linux.seccomp; nil for none.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// Hooks are the spec's hooks; the Keep runs createContainer and
	// startContainer (see RunHooks for the others).
	Hooks *specs.Hooks `json:"hooks,omitempty"`
	// ID and Bundle name the container in the state its hooks get.
	ID     string `json:"id,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	// Annotations are the spec's annotations, for the state its hooks get.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Rlimits are process.rlimits.
	Rlimits []specs.POSIXRlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj is process.oomScoreAdj.
	OOMScoreAdj *int `json:"oom_score_adj,omitempty"`
	// Namespaces are the namespaces the Keep gets of its own, created when
	// the shim starts it: NamespaceMount always, and those of "pid",
	// "ipc" and "uts" the spec lists (see FromOCI).
	Namespaces []specs.LinuxNamespaceType `json:"namespaces,omitempty"`
}

// GuestStateDir is where the workload sees the Keep's state directory
// (keep.Config.StateDir), read-only: in the view of a confined Keep, and
// as a preopen of one without a container.
const GuestStateDir = "/run/enarx"

// FromOCI is the confinement of a Keep that runs the container of spec,
// whose root filesystem is at rootfs on the host.
//
// The Keep gets a new mount namespace always, and new PID, IPC and UTS
// namespaces when the spec lists them. A namespace the spec names by path
// (a pod's) is not joined — a Go process can join one only before its
// runtime starts — but a new one is made in its place, so that the Keep
// never sees the host's processes or IPC objects; the sockets the workload
// declares are opened in the spec's network namespace (keep/sockets).
func FromOCI(spec *specs.Spec, rootfs string) *Spec {
	s := &Spec{Rootfs: rootfs, Hostname: spec.Hostname, Namespaces: []specs.LinuxNamespaceType{specs.MountNamespace}}
	if spec.Root != nil {
		s.Readonly = spec.Root.Readonly
	}
	if spec.Process != nil {
		s.User = spec.Process.User
		s.Capabilities = spec.Process.Capabilities
		s.Rlimits, s.OOMScoreAdj = spec.Process.Rlimits, spec.Process.OOMScoreAdj
		s.NoNewPrivileges = spec.Process.NoNewPrivileges
	}
	s.Mounts = spec.Mounts
	s.Hooks, s.Annotations = spec.Hooks, spec.Annotations
	if l := spec.Linux; l != nil {
		s.Propagation = l.RootfsPropagation
		s.MaskedPaths, s.ReadonlyPaths = l.MaskedPaths, l.ReadonlyPaths
		s.Devices = l.Devices
		s.Seccomp = l.Seccomp
		for _, ns := range l.Namespaces {
			switch ns.Type {
			case specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace:
				s.Namespaces = append(s.Namespaces, ns.Type)
			}
		}
	}
	return s
}

// Has reports whether the Keep gets a namespace of type t of its own.
func (s *Spec) Has(t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Namespaces {
		if ns == t {
			return true
		}
	}
	return false
}

// propagations are the values of linux.rootfsPropagation.
var propagations = map[string]bool{"": true, "private": true, "rprivate": true, "slave": true, "rslave": true, "shared": true, "rshared": true, "unbindable": true, "runbindable": true}

// Validate reports the first problem with s.
func (s *Spec) Validate() error {
	if !filepath.IsAbs(s.Rootfs) {
		return fmt.Errorf("confinement: root filesystem %q is not an absolute path", s.Rootfs)
	}
	if !propagations[s.Propagation] {
		return fmt.Errorf("confinement: linux.rootfsPropagation %q is not a propagation: use private, slave or shared, each optionally recursive (r...), or unbindable", s.Propagation)
	}
	if !s.Has(specs.MountNamespace) {
		return errors.New("confinement: a Keep always has a mount namespace of its own")
	}
	for _, t := range s.Namespaces {
		switch t {
		case specs.MountNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace:
		default:
			return fmt.Errorf("confinement: namespace %q: a Keep gets a new mount, PID, IPC or UTS namespace only", t)
		}
	}
	for i, m := range s.Mounts {
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("confinement: mounts[%d]: destination %q is not an absolute path: write it as in the container, e.g. /data", i, m.Destination)
		}
		if strings.IndexByte(m.Destination, 0) >= 0 || strings.IndexByte(m.Source, 0) >= 0 {
			return fmt.Errorf("confinement: mounts[%d] (%q): a path contains a NUL byte", i, m.Destination)
		}
	}
	for _, p := range append(append([]string(nil), s.MaskedPaths...), s.ReadonlyPaths...) {
		if !path.IsAbs(p) {
			return fmt.Errorf("confinement: masked or read-only path %q is not absolute", p)
		}
	}
	return nil
}

// defaultDeviceRules allow the devices runc allows every container beside
// the spec's rules: the default nodes (see defaultDevices) and the
// pseudo-terminals.
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}, // null
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "rwm"}, // zero
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(7)), Access: "rwm"}, // full
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(8)), Access: "rwm"}, // random
	{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(9)), Access: "rwm"}, // urandom
	{Allow: true, Type: "c", Major: ptr(int64(5)), Minor: ptr(int64(0)), Access: "rwm"}, // tty
	{Allow: true, Type: "c", Major: ptr(int64(5)), Minor: ptr(int64(2)), Access: "rwm"}, // ptmx
	{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rwm"},                     // pts/*
}

func ptr[T any](v T) *T { return &v }

// DeviceRules are the devices cgroup rules of a Keep of the container whose
// linux.resources.devices are rules: the spec's, then runc's defaults. A
// device node in the image or in linux.devices can be opened only when a
// rule allows it, as with runc.
func DeviceRules(rules []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	return append(append([]specs.LinuxDeviceCgroup(nil), rules...), defaultDeviceRules...)
}
