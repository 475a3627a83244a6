package cgroup

import (
	"context"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
	systemdDbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestExpandSlice: runc's ExpandSlice cases (libcontainer/cgroups/systemd).
func TestExpandSlice(t *testing.T) {
	for _, tc := range []struct {
		slice, want string // want "" for an error
	}{
		{"-.slice", "/"},
		{"system.slice", "/system.slice"},
		{"Hello.slice", "/Hello.slice"},
		{"Hello-World.slice", "/Hello.slice/Hello-World.slice"},
		{"a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"},
		{"kubepods-besteffort-pod123.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"},
		{"kubepods-burstable-pod1_2.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"},
		{"", ""},
		{".slice", ""},
		{"-", ""},
		{"a--b.slice", ""},
		{"-a.slice", ""},
		{"a-.slice", ""},
		{"a/b.slice", ""},
		{"system.scope", ""},
		{"system", ""},
	} {
		got, err := expandSlice(tc.slice)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("expandSlice(%q) = %q, want an error", tc.slice, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("expandSlice(%q) = %q, %v; want %q", tc.slice, got, err, tc.want)
		}
	}
}

// TestParseSystemdPath: the unit and slice of "slice:prefix:name", as runc
// names them (getUnitName; an empty slice is system.slice for root).
func TestParseSystemdPath(t *testing.T) {
	for _, tc := range []struct {
		path        string
		slice, unit string
		err         string
	}{
		{path: "system.slice:docker:0123abcd", slice: "system.slice", unit: "docker-0123abcd.scope"},
		{path: "kubepods-besteffort-pod123.slice:cri-containerd:abc", slice: "kubepods-besteffort-pod123.slice", unit: "cri-containerd-abc.scope"},
		{path: ":cri-containerd:abc", slice: "system.slice", unit: "cri-containerd-abc.scope"},
		{path: "system.slice::abc", slice: "system.slice", unit: "abc.scope"},
		{path: "machine.slice:libpod:x.y", slice: "machine.slice", unit: "libpod-x.y.scope"},
		// A name that is a slice is made as that slice, in the parent.
		{path: "kubepods.slice:cri-containerd:kubepods-besteffort.slice", slice: "kubepods.slice", unit: "kubepods-besteffort.slice"},
		{path: "system.slice:p:n:x", err: `is "slice:prefix:name"`},
		{path: "system.slice:p", err: `is "slice:prefix:name"`},
		{path: "system:docker:abc", err: "invalid slice name"},
		{path: "a--b.slice:docker:abc", err: "invalid slice name"},
		{path: "system.slice:docker:", err: "not a unit name"},
		{path: "system.slice:docker:a/b", err: "not a unit name"},
		{path: "system.slice:do/cker:a", err: "not a unit name"},
		{path: "system.slice:p:a--b.slice", err: "invalid slice name"},
	} {
		u, err := parseSystemdPath(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("parseSystemdPath(%q) = %+v, %v; want an error naming the path and saying %q", tc.path, u, err, tc.err)
			}
			continue
		}
		if err != nil || u.slice != tc.slice || u.name != tc.unit {
			t.Errorf("parseSystemdPath(%q) = %+v, %v; want slice %q, unit %q", tc.path, u, err, tc.slice, tc.unit)
		}
	}
	if !isSystemdPath("system.slice:docker:a") || isSystemdPath("/default/a") || isSystemdPath("kubepods/pod1/a") {
		t.Errorf("isSystemdPath tells the drivers' paths apart wrongly")
	}
}

// TestSystemdCPUQuota: runc's addCpuQuota: quota per second rounded up to
// whole percent, the period only from systemd 242, no quota is infinity.
func TestSystemdCPUQuota(t *testing.T) {
	for _, tc := range []struct {
		quota   int64
		period  uint64
		version int
		want    map[string]uint64
	}{
		{0, 0, 252, map[string]uint64{}},
		{50000, 100000, 252, map[string]uint64{"CPUQuotaPeriodUSec": 100000, "CPUQuotaPerSecUSec": 500000}},
		{50000, 0, 252, map[string]uint64{"CPUQuotaPerSecUSec": 500000}},
		{12345, 100000, 252, map[string]uint64{"CPUQuotaPeriodUSec": 100000, "CPUQuotaPerSecUSec": 130000}},
		{50000, 100000, 241, map[string]uint64{"CPUQuotaPerSecUSec": 500000}},
		{-1, 100000, 252, map[string]uint64{"CPUQuotaPeriodUSec": 100000, "CPUQuotaPerSecUSec": math.MaxUint64}},
	} {
		got := props(systemdCPUQuota(tc.quota, tc.period, tc.version))
		if len(got) != len(tc.want) {
			t.Errorf("quota %d period %d (systemd %d): %v, want %v", tc.quota, tc.period, tc.version, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("quota %d period %d (systemd %d): %s = %v, want %d", tc.quota, tc.period, tc.version, k, got[k], v)
			}
		}
	}
}

// TestSystemdResources: the limits systemd is told to keep, none of the
// zero values runc leaves alone.
func TestSystemdResources(t *testing.T) {
	limit, pids, unlimited, zero := int64(64<<20), int64(32), int64(-1), int64(0)
	shares, zeroU := uint64(512), uint64(0)
	got := props(systemdResources(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit, Reservation: &zero},
		CPU:    &specs.LinuxCPU{Shares: &shares, Quota: &zero, Period: &zeroU},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}, 252))
	want := map[string]any{"TasksMax": uint64(32)}
	if cgroups.Mode() == cgroups.Unified {
		want["MemoryMax"], want["CPUWeight"] = uint64(limit), uint64(20)
	} else {
		want["MemoryLimit"], want["CPUShares"] = uint64(limit), shares
	}
	if len(got) != len(want) {
		t.Errorf("properties %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
	got = props(systemdResources(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &unlimited}, Memory: &specs.LinuxMemory{Limit: &zero}}, 252))
	if len(got) != 1 || got["TasksMax"] != uint64(math.MaxUint64) {
		t.Errorf("pids -1 and memory 0: %v, want TasksMax infinity alone", got)
	}
	if p := systemdResources(nil, 252); len(p) != 0 {
		t.Errorf("no resources: %v", p)
	}
}

func props(ps []systemdDbus.Property) map[string]any {
	m := map[string]any{}
	for _, p := range ps {
		m[p.Name] = p.Value.Value()
	}
	return m
}

// TestSystemdDevices: device rules become systemd's DevicePolicy and
// DeviceAllow as runc makes them.
func TestSystemdDevices(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	for _, c := range []struct {
		name   string
		rules  []specs.LinuxDeviceCgroup
		policy string
		allow  []deviceAllow
	}{
		{"none", nil, "", nil},
		{"deny all, then devices", []specs.LinuxDeviceCgroup{
			denyAll,
			{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},
			{Allow: true, Type: "c", Major: i(1), Minor: i(5)},
			{Allow: true, Type: "b", Major: i(-1), Minor: i(-1), Access: "m"},
		}, "strict", []deviceAllow{{"/dev/char/1:3", "rwm"}, {"/dev/char/1:5", "rwm"}, {"block-*", "m"}}},
		{"every minor of a major", []specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "c", Major: i(1), Access: "rw"}}, "strict", []deviceAllow{{"char-mem", "rw"}}},
		{"allow all", []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, "auto", []deviceAllow{}},
		{"deny all last", []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"}, denyAll}, "strict", []deviceAllow{}},
		{"a partial deny is left to the files", []specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"}, {Allow: false, Type: "c", Major: i(1), Minor: i(3), Access: "w"}}, "strict", []deviceAllow{{"/dev/char/1:3", "rwm"}}},
	} {
		props := systemdDevices(context.Background(), c.rules)
		if c.policy == "" {
			if props != nil {
				t.Errorf("%s: %v, want none", c.name, props)
			}
			continue
		}
		if len(props) != 2 || props[0].Name != "DevicePolicy" || props[0].Value.Value() != c.policy || props[1].Name != "DeviceAllow" || !reflect.DeepEqual(props[1].Value.Value(), c.allow) {
			t.Errorf("%s: %v, want DevicePolicy=%s DeviceAllow=%v", c.name, props, c.policy, c.allow)
		}
	}
}
