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
	"os"
	"path"
	"path/filepath"
	"slices"
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
	// TimeOffsets are linux.timeOffsets, which a Keep cannot apply yet
	// (Validate refuses them).
	TimeOffsets map[string]specs.LinuxTimeOffset `json:"time_offsets,omitempty"`
	// Sysctls are linux.sysctl: kernel parameters of the Keep's own
	// namespaces (see checkSysctl).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// AppArmorProfile is process.apparmorProfile; SELinuxLabel and
	// MountLabel are process.selinuxLabel and linux.mountLabel. A Keep
	// cannot apply them (see checkLSM).
	AppArmorProfile string `json:"apparmor_profile,omitempty"`
	SELinuxLabel    string `json:"selinux_label,omitempty"`
	MountLabel      string `json:"mount_label,omitempty"`
	// Personality is linux.personality.
	Personality *specs.LinuxPersonality `json:"personality,omitempty"`
	// IntelRdt is linux.intelRdt, which a Keep refuses (see Validate).
	IntelRdt *specs.LinuxIntelRdt `json:"intel_rdt,omitempty"`
	// Rlimits are process.rlimits.
	Rlimits []specs.POSIXRlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj is process.oomScoreAdj.
	OOMScoreAdj *int `json:"oom_score_adj,omitempty"`
	// UIDMappings and GIDMappings are linux.uidMappings and gidMappings,
	// for a Keep with a user namespace of its own (see UserNS).
	UIDMappings []specs.LinuxIDMapping `json:"uid_mappings,omitempty"`
	GIDMappings []specs.LinuxIDMapping `json:"gid_mappings,omitempty"`
	// Namespaces are the spec's namespaces of the Keep, each new (no
	// Path) or joined (Path): a mount namespace of its own always, and the
	// PID, IPC, UTS and cgroup namespaces the spec lists. The network
	// namespace is the workload's (keep/sockets) and Enter's netns.
	Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`

	// sources, when not nil, are the bind mount sources as detached
	// trees (AdoptSources), attached instead of bound by path.
	sources *Sources
}

// SeccompLoader loads a spec's seccomp profile (linux.seccomp) on every
// thread of the calling process: package confine/seccomp's Load, which the
// Keep gives Enter. confine does not load profiles itself so that the shim,
// which links confine to start Keeps, does not link the filter assembler.
type SeccompLoader func(*specs.LinuxSeccomp) error

// GuestStateDir is where the workload sees the Keep's state directory
// (keep.Config.StateDir), read-only: in the view of a confined Keep, and
// as a preopen of one without a container.
const GuestStateDir = "/run/enarx"

// FromOCI is the confinement of a Keep that runs the container of spec,
// whose root filesystem is at rootfs on the host.
//
// The Keep gets a new mount namespace always, and the PID, IPC, UTS and
// cgroup namespaces the spec lists: new ones, or a pod's, joined by path
// (see Start and Enter). A user or time namespace is kept: a new one is
// made with the Keep's process (Start), one given by path is refused by
// Validate.
func FromOCI(spec *specs.Spec, rootfs string) *Spec {
	s := &Spec{Rootfs: rootfs, Hostname: spec.Hostname, Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}
	if spec.Root != nil {
		s.Readonly = spec.Root.Readonly
	}
	if spec.Process != nil {
		s.User = spec.Process.User
		s.Capabilities = spec.Process.Capabilities
		s.Rlimits, s.OOMScoreAdj = spec.Process.Rlimits, spec.Process.OOMScoreAdj
		s.NoNewPrivileges = spec.Process.NoNewPrivileges
		s.AppArmorProfile, s.SELinuxLabel = spec.Process.ApparmorProfile, spec.Process.SelinuxLabel
	}
	s.Mounts = spec.Mounts
	s.Hooks, s.Annotations = spec.Hooks, spec.Annotations
	if l := spec.Linux; l != nil {
		s.Propagation = l.RootfsPropagation
		s.MaskedPaths, s.ReadonlyPaths = l.MaskedPaths, l.ReadonlyPaths
		s.Devices = l.Devices
		s.Seccomp = l.Seccomp
		s.Sysctls = l.Sysctl
		s.MountLabel = l.MountLabel
		s.UIDMappings, s.GIDMappings = l.UIDMappings, l.GIDMappings
		s.Personality, s.IntelRdt = l.Personality, l.IntelRdt
		s.TimeOffsets = l.TimeOffsets
		for _, ns := range l.Namespaces {
			switch ns.Type {
			case specs.MountNamespace:
				s.Namespaces[0].Path = ns.Path
			case specs.NetworkNamespace:
			default:
				s.Namespaces = append(s.Namespaces, ns)
			}
		}
	}
	return s
}

// Network is the container's network namespace as Build finds the Keep: a
// namespace of the container's that every thread joins (Join), or one the
// Keep was made in (Made); neither when the Keep stays in the host's.
type Network struct {
	// Join, when not nil, is the namespace: a new one the Keep made, or
	// the one at the spec's path.
	Join *os.File
	// Made says the Keep was made in a new namespace of the container's
	// (clone(2) with CLONE_NEWNET): every thread is in it already.
	Made bool
}

// private reports whether the Keep is in a network namespace of the
// container's.
func (n Network) private() bool { return n.Join != nil || n.Made }

// SharedPropagation reports whether s's root filesystem propagation is
// shared or rshared: mounts in the container's namespace reach the host's.
func (s *Spec) SharedPropagation() bool {
	return s.Propagation == "shared" || s.Propagation == "rshared"
}

// UserNS reports whether the Keep has a user namespace of its own: then it
// runs its workload in a second process, started in it (see StartInner).
func (s *Spec) UserNS() bool { return s.Has(specs.UserNamespace) }

// Has reports whether the Keep is in a namespace of type t that is not
// the host's: a new one or a joined one.
func (s *Spec) Has(t specs.LinuxNamespaceType) bool { return hasNamespace(s.Namespaces, t) }

// hasNamespace reports whether namespaces lists one of type t.
func hasNamespace(namespaces []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == t })
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
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Namespaces {
		if seen[ns.Type] {
			return fmt.Errorf("confinement: linux.namespaces lists %q twice", ns.Type)
		}
		seen[ns.Type] = true
		if err := checkNamespace(ns); err != nil {
			return err
		}
	}
	if s.Has(specs.UserNamespace) != (len(s.UIDMappings) > 0 && len(s.GIDMappings) > 0) {
		return errors.New("confinement: a user namespace needs linux.uidMappings and linux.gidMappings, and mappings need a user namespace: give both or neither")
	}
	if s.UserNS() && (!maps(s.UIDMappings, 0) || !maps(s.GIDMappings, 0)) {
		return errors.New("confinement: linux.uidMappings and gidMappings must map the container's root (0): the Keep confines itself as root of its user namespace; map 0 to a host ID, e.g. 0:100000:65536")
	}
	if p := s.Personality; p != nil {
		if _, ok := personalities[p.Domain]; !ok || len(p.Flags) > 0 {
			return fmt.Errorf("confinement: linux.personality %q %v: use the domain LINUX or LINUX32, without flags", p.Domain, p.Flags)
		}
	}
	if len(s.TimeOffsets) > 0 {
		return errors.New("confinement: linux.timeOffsets: a Keep does not set the clock offsets of its time namespace yet: remove them (a new time namespace without offsets works)")
	}
	if s.IntelRdt != nil {
		return errors.New("confinement: linux.intelRdt: a Keep does not join Intel RDT (resctrl) classes yet: remove it from the spec")
	}
	for key := range s.Sysctls {
		if err := checkSysctl(key, s.Has); err != nil {
			return err
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

// personalities are the values of personality(2) for linux.personality's
// domains.
var personalities = map[specs.LinuxPersonalityDomain]uintptr{specs.PerLinux: 0x0000, specs.PerLinux32: 0x0008}

// maps reports whether the mappings m give id an ID on the host.
func maps(m []specs.LinuxIDMapping, id uint32) bool {
	return slices.ContainsFunc(m, func(r specs.LinuxIDMapping) bool { return id >= r.ContainerID && id-r.ContainerID < r.Size })
}

// checkNamespace reports why a Keep cannot be in ns, if it cannot.
func checkNamespace(ns specs.LinuxNamespace) error {
	switch ns.Type {
	case specs.MountNamespace:
		if ns.Path != "" {
			return fmt.Errorf("confinement: mount namespace %q: a Keep makes a mount namespace of its own for its view of the container and cannot join one by path; remove the path", ns.Path)
		}
		return nil
	case specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace:
	case specs.TimeNamespace:
		// A new one is made with the process, as runc makes it (Docker
		// asks for one). setns(2) into a time namespace needs a
		// single-threaded process, which a Keep is not.
		if ns.Path != "" {
			return fmt.Errorf("confinement: time namespace %q: joining a time namespace by path is not supported for a Keep: remove the path for a new one", ns.Path)
		}
		return nil
	case specs.UserNamespace:
		if ns.Path != "" {
			return fmt.Errorf("confinement: user namespace %q: joining a user namespace by path (a pod's, Kubernetes hostUsers: false) is not supported for a Keep yet: run the container with a user namespace of its own, or without one", ns.Path)
		}
		return nil
	default:
		return fmt.Errorf("confinement: namespace %q is not supported for a Keep: remove it from linux.namespaces", ns.Type)
	}
	if ns.Path != "" && !filepath.IsAbs(ns.Path) {
		return fmt.Errorf("confinement: %s namespace path %q is not absolute: give the absolute path of the namespace to join (e.g. /proc/PID/ns/%s), or no path for a new one", ns.Type, ns.Path, nsFile[ns.Type])
	}
	return nil
}

// ipcSysctls are the kernel parameters of an IPC namespace besides
// fs.mqueue.*, as runc knows them.
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// CheckSysctls reports why a process in the namespaces cannot set the
// kernel parameters of sysctls (linux.sysctl), as runc's validator does:
// only parameters of a namespace that is not the host's (IPC, UTS,
// network).
func CheckSysctls(sysctls map[string]string, namespaces []specs.LinuxNamespace) error {
	has := func(t specs.LinuxNamespaceType) bool { return hasNamespace(namespaces, t) }
	for key := range sysctls {
		if err := checkSysctl(key, has); err != nil {
			return err
		}
		if err := checkNetSysctl(key, has(specs.NetworkNamespace)); err != nil {
			return err
		}
	}
	return nil
}

// checkNetSysctl refuses a net.* key unless the process has a network
// namespace of its own (privateNet).
func checkNetSysctl(key string, privateNet bool) error {
	if strings.HasPrefix(strings.ReplaceAll(key, "/", "."), "net.") && !privateNet {
		return fmt.Errorf("confinement: linux.sysctl %q is not allowed in the host's network namespace: give the container a network namespace", key)
	}
	return nil
}

// checkSysctl reports why a process cannot set the kernel parameter key
// when has says which namespaces are not the host's. net.* is left to the
// caller: whether a Keep has a network namespace of its own is known only
// when it enters it (Enter's netns).
func checkSysctl(key string, has func(specs.LinuxNamespaceType) bool) error {
	if strings.Contains(key, "..") || strings.HasPrefix(key, "/") || strings.HasPrefix(key, ".") || key == "" {
		return fmt.Errorf("confinement: linux.sysctl %q is not a kernel parameter name: write it as net.ipv4.ip_forward", key)
	}
	name := strings.ReplaceAll(key, "/", ".")
	switch {
	case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
		if !has(specs.IPCNamespace) {
			return fmt.Errorf("confinement: linux.sysctl %q is not allowed in the host's IPC namespace: give the container an IPC namespace", key)
		}
		return nil
	case strings.HasPrefix(name, "net."):
		return nil
	case name == "kernel.domainname" && has(specs.UTSNamespace):
		return nil
	case name == "kernel.hostname":
		return fmt.Errorf("confinement: linux.sysctl %q is not allowed: use the spec's hostname instead", key)
	}
	return fmt.Errorf("confinement: linux.sysctl %q is not in a namespace of the container's own: it would change the host's kernel; remove it", key)
}

// nsFile is the name of each namespace type in /proc/PID/ns.
var nsFile = map[specs.LinuxNamespaceType]string{
	specs.MountNamespace: "mnt", specs.PIDNamespace: "pid", specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts",
	specs.NetworkNamespace: "net", specs.CgroupNamespace: "cgroup", specs.UserNamespace: "user", specs.TimeNamespace: "time",
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
