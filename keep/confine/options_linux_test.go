package confine

import (
	"os"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	for _, c := range []struct {
		opts        []string
		flags, prop uintptr
		set, clr    uint64
		data        string
	}{
		{opts: []string{"rbind", "ro"}, flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY},
		{opts: []string{"ro", "rw"}, flags: 0},
		{opts: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}, flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: "mode=755,size=65536k"},
		{opts: []string{"bind", "rprivate"}, flags: unix.MS_BIND, prop: unix.MS_PRIVATE | unix.MS_REC},
		{opts: []string{"rbind", "rro"}, flags: unix.MS_BIND | unix.MS_REC, set: unix.MOUNT_ATTR_RDONLY},
		{opts: []string{"rro", "rrw", "rnosuid"}, set: unix.MOUNT_ATTR_NOSUID, clr: unix.MOUNT_ATTR_RDONLY},
		{opts: []string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5", "nosuid", "noexec"}, flags: unix.MS_NOSUID | unix.MS_NOEXEC, data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	} {
		o, err := parseOptions(c.opts)
		if err != nil {
			t.Fatalf("%q: %v", c.opts, err)
		}
		if o.flags != c.flags || o.propagation != c.prop || o.attr.Attr_set != c.set || o.attr.Attr_clr != c.clr || o.data != c.data {
			t.Errorf("%q: flags %#x prop %#x set %#x clr %#x data %q; want %#x %#x %#x %#x %q",
				c.opts, o.flags, o.propagation, o.attr.Attr_set, o.attr.Attr_clr, o.data, c.flags, c.prop, c.set, c.clr, c.data)
		}
	}
	if _, err := parseOptions([]string{"bind", "tmpcopyup"}); err == nil || !strings.Contains(err.Error(), `"tmpcopyup" is not supported`) {
		t.Errorf("tmpcopyup: %v, want refused by name", err)
	}
}

func TestFromOCI(t *testing.T) {
	umask := uint32(0o077)
	spec := &specs.Spec{
		Hostname: "web",
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process:  &specs.Process{User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10}, Umask: &umask}, NoNewPrivileges: true},
		Mounts:   []specs.Mount{{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind", "ro"}}},
		Linux: &specs.Linux{
			RootfsPropagation: "rprivate",
			MaskedPaths:       []string{"/proc/kcore"},
			ReadonlyPaths:     []string{"/proc/sys"},
			Devices:           []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace, Path: "/proc/1/ns/ipc"},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}},
		},
	}
	s := FromOCI(spec, "/run/bundle/rootfs")
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Rootfs != "/run/bundle/rootfs" || !s.Readonly || s.Hostname != "web" || s.User.UID != 1000 || !s.NoNewPrivileges ||
		s.Propagation != "rprivate" || len(s.Mounts) != 1 || len(s.MaskedPaths) != 1 || len(s.ReadonlyPaths) != 1 || len(s.Devices) != 1 {
		t.Errorf("FromOCI = %+v", s)
	}
	flags, join, err := startFlags(s.Namespaces)
	want := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS)
	if err != nil || flags != want || len(join) != 1 || join[0].Path != "/proc/1/ns/ipc" {
		t.Errorf("startFlags = %#x, %v, %v; want %#x (mount always; pid and uts new as listed; no network), and the IPC namespace joined by path", flags, join, err, want)
	}
	if s.Has(specs.NetworkNamespace) {
		t.Error("the network namespace is the workload's, not the confinement's")
	}
	if flags, join, _ := startFlags(FromOCI(&specs.Spec{}, "/r").Namespaces); flags != unix.CLONE_NEWNS || len(join) != 0 {
		t.Errorf("a spec without namespaces: %#x %v, want a new mount namespace only", flags, join)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"relative rootfs", func(s *Spec) { s.Rootfs = "rootfs" }, "not an absolute path"},
		{"propagation", func(s *Spec) { s.Propagation = "sideways" }, `"sideways" is not a propagation`},
		{"no mount namespace", func(s *Spec) { s.Namespaces = nil }, "mount namespace"},
		{"network namespace", func(s *Spec) { s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace}) }, `namespace "network" is not supported`},
		{"user namespace without mappings", func(s *Spec) { s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace}) }, "needs linux.uidMappings"},
		{"mappings without a user namespace", func(s *Spec) {
			s.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.GIDMappings = s.UIDMappings
		}, "needs linux.uidMappings"},
		{"user namespace by path", func(s *Spec) {
			s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"})
		}, "joining a user namespace by path"},
		{"mount namespace by path", func(s *Spec) { s.Namespaces[0].Path = "/proc/1/ns/mnt" }, "cannot join one by path"},
		{"relative namespace path", func(s *Spec) {
			s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "ns/ipc"})
		}, `path "ns/ipc" is not absolute`},
		{"twice", func(s *Spec) { s.Namespaces = append(s.Namespaces, s.Namespaces[0]) }, `lists "mount" twice`},
		{"sysctl of the host", func(s *Spec) { s.Sysctls = map[string]string{"kernel.panic": "1"} }, `"kernel.panic" is not in a namespace`},
		{"sysctl hostname", func(s *Spec) { s.Sysctls = map[string]string{"kernel.hostname": "x"} }, "use the spec's hostname"},
		{"sysctl of the host's IPC", func(s *Spec) { s.Sysctls = map[string]string{"kernel.shmmax": "1"} }, "host's IPC namespace"},
		{"sysctl path", func(s *Spec) { s.Sysctls = map[string]string{"net/../../kernel/panic": "1"} }, "not a kernel parameter name"},
		{"personality", func(s *Spec) { s.Personality = &specs.LinuxPersonality{Domain: "BSD"} }, "use the domain LINUX or LINUX32"},
		{"time namespace by path", func(s *Spec) {
			s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/1/ns/time"})
		}, "joining a time namespace by path"},
		{"time offsets", func(s *Spec) {
			s.Namespaces = append(s.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 3600}}
		}, "linux.timeOffsets"},
		{"intel rdt", func(s *Spec) { s.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} }, "linux.intelRdt"},
		{"relative destination", func(s *Spec) { s.Mounts = []specs.Mount{{Destination: "data", Type: "tmpfs"}} }, `destination "data"`},
		{"relative masked path", func(s *Spec) { s.MaskedPaths = []string{"proc/kcore"} }, `"proc/kcore" is not absolute`},
	} {
		s := FromOCI(&specs.Spec{}, "/r")
		c.edit(s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestCheckLSM: labels a Keep cannot apply are refused where the host
// enforces them, and ignored where it does not, as runc ignores them.
func TestCheckLSM(t *testing.T) {
	labelled := &Spec{AppArmorProfile: "docker-default", SELinuxLabel: "system_u:system_r:container_t:s0"}
	if err := labelled.checkLSM(lsm{}); err != nil {
		t.Errorf("no LSM: %v", err)
	}
	if err := labelled.checkLSM(lsm{apparmor: true}); err == nil || !strings.Contains(err.Error(), "apparmor=unconfined") {
		t.Errorf("AppArmor enforced: %v, want a refusal naming the way out", err)
	}
	if err := (&Spec{AppArmorProfile: "unconfined"}).checkLSM(lsm{apparmor: true}); err != nil {
		t.Errorf("unconfined: %v", err)
	}
	if err := labelled.checkLSM(lsm{selinux: true}); err == nil || !strings.Contains(err.Error(), "label=disable") {
		t.Errorf("SELinux enforced: %v, want a refusal naming the way out", err)
	}
}

// TestStartBounding: the bounding set a Keep takes on at its start is the
// spec's, unless something runs before confinement that runc runs with
// the full set (createContainer hooks, an inner Keep with a user
// namespace), or the spec leaves capabilities alone.
func TestStartBounding(t *testing.T) {
	caps := &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NO_SUCH_THING"}}
	s := &Spec{Capabilities: caps}
	if mask, ok := s.StartBounding(); !ok || mask != 1<<0|1<<5|1<<10 {
		t.Errorf("StartBounding() = %#x, %v; want chown, kill and net_bind_service", mask, ok)
	}
	for name, s := range map[string]*Spec{
		"no capabilities":       {},
		"user namespace":        {Capabilities: caps, Namespaces: []specs.LinuxNamespace{{Type: specs.UserNamespace}}},
		"createContainer hooks": {Capabilities: caps, Hooks: &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}}},
	} {
		if _, ok := s.StartBounding(); ok {
			t.Errorf("%s: StartBounding() says the Keep may take the bounding set on at its start", name)
		}
	}
}

// TestWithDefaultDevices: a device the spec lists at a default node's path
// takes that node's place (as runc's specconv does); the others are kept,
// defaults first.
func TestWithDefaultDevices(t *testing.T) {
	mode := os.FileMode(0o600)
	spec := []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11},
		{Path: "/dev/./zero", Type: "c", Major: 1, Minor: 5},
	}
	var got []string
	for _, d := range withDefaultDevices(spec) {
		got = append(got, d.Path)
		if d.Path == "/dev/null" && d.FileMode == nil {
			t.Errorf("/dev/null is the default node, not the spec's")
		}
	}
	want := []string{"/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/null", "/dev/kmsg", "/dev/./zero"}
	if !slices.Equal(got, want) {
		t.Errorf("devices %v, want %v", got, want)
	}
	if n := len(withDefaultDevices(nil)); n != len(defaultDevices) {
		t.Errorf("no spec devices: %d nodes, want the %d defaults", n, len(defaultDevices))
	}
}
