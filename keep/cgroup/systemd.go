package cgroup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/log"
	systemdDbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The systemd cgroup driver: a linux.cgroupsPath of the form
// "slice:prefix:name" (kubelet's and Docker's with --cgroup-driver=systemd,
// containerd's SystemdCgroup = true) names a transient scope unit
// "prefix-name.scope" in the slice, which systemd makes over D-Bus with the
// Keep's PID in it, as runc's systemd driver (libcontainer/cgroups/systemd)
// does. The unit's control group is then limited and read through the
// cgroup file system, as a cgroupfs path is; stopping the unit removes it.

// systemdTimeout bounds how long systemd may take to start or stop a unit
// (runc waits as long).
const systemdTimeout = 30 * time.Second

// systemdUnit is the unit a systemd cgroup path names.
type systemdUnit struct {
	// slice is the slice the unit is in, "system.slice" when the path
	// leaves it empty.
	slice string
	// name is the unit: "prefix-name.scope", or the path's name itself
	// when it ends in ".slice".
	name string
}

// isSystemdPath reports whether path is in the systemd driver's form
// "slice:prefix:name": cgroupfs paths hold no colon.
func isSystemdPath(path string) bool { return strings.Contains(path, ":") }

// parseSystemdPath reads a systemd driver cgroup path "slice:prefix:name"
// as runc does: an empty slice is "system.slice" ("user.slice" when not
// root), the unit is the scope "prefix-name.scope" ("name.scope" without a
// prefix), or the slice "name" when name ends in ".slice".
func parseSystemdPath(path string) (systemdUnit, error) {
	parts := strings.Split(path, ":")
	if len(parts) != 3 {
		return systemdUnit{}, fmt.Errorf("cgroup %q: a systemd cgroup path is \"slice:prefix:name\"", path)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = "system.slice"
		if os.Geteuid() != 0 {
			slice = "user.slice"
		}
	}
	if _, err := expandSlice(slice); err != nil {
		return systemdUnit{}, fmt.Errorf("cgroup %q: %w", path, err)
	}
	if name == "" || strings.Contains(name, "/") || strings.Contains(prefix, "/") {
		return systemdUnit{}, fmt.Errorf("cgroup %q: %q is not a unit name", path, name)
	}
	u := systemdUnit{slice: slice, name: name}
	switch {
	case strings.HasSuffix(name, ".slice"):
		if _, err := expandSlice(name); err != nil {
			return systemdUnit{}, fmt.Errorf("cgroup %q: %w", path, err)
		}
	case prefix == "":
		u.name = name + ".scope"
	default:
		u.name = prefix + "-" + name + ".scope"
	}
	return u, nil
}

// expandSlice is the cgroup path of a slice unit below systemd's root, as
// systemd nests slices by the dashes of their names:
// "kubepods-besteffort-pod1.slice" is
// "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
// and "-.slice" is "/".
func expandSlice(slice string) (string, error) {
	const suffix = ".slice"
	if len(slice) <= len(suffix) || !strings.HasSuffix(slice, suffix) || strings.Contains(slice, "/") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	base := strings.TrimSuffix(slice, suffix)
	if base == "-" {
		return "/", nil
	}
	var path, prefix string
	for _, component := range strings.Split(base, "-") {
		if component == "" {
			return "", fmt.Errorf("invalid slice name %q", slice)
		}
		path += "/" + prefix + component + suffix
		prefix += component + "-"
	}
	return path, nil
}

// systemdBus is the shim's connection to systemd, shared by its Keeps
// and made again when systemd closed it (a restart of systemd or of D-Bus).
var systemdBus struct {
	sync.Mutex
	conn *systemdDbus.Conn
}

// systemdConn returns the connection to systemd: the system bus, or, for
// root, systemd's private socket /run/systemd/private when no bus runs.
func systemdConn(ctx context.Context, path string) (*systemdDbus.Conn, error) {
	systemdBus.Lock()
	defer systemdBus.Unlock()
	if systemdBus.conn != nil && systemdBus.conn.Connected() {
		return systemdBus.conn, nil
	}
	if systemdBus.conn != nil {
		systemdBus.conn.Close()
		systemdBus.conn = nil
	}
	conn, err := systemdDbus.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s is a systemd cgroup path (slice:prefix:name), but systemd cannot be reached over D-Bus (the system bus or /run/systemd/private): %w; "+
			"on a node without systemd use the cgroupfs driver (kubelet --cgroup-driver=cgroupfs with SystemdCgroup = false in containerd's runc options, dockerd --exec-opt native.cgroupdriver=cgroupfs, or a cgroupfs path such as /default/ID), or start systemd", path, err)
	}
	systemdBus.conn = conn
	return conn, nil
}

// startSystemdUnit makes the transient unit u with pid in it and
// properties (resources that systemd itself keeps applied), and returns
// its control group as systemd reports it: its path in each hierarchy.
func startSystemdUnit(ctx context.Context, path string, u systemdUnit, pid int, properties []systemdDbus.Property) (string, error) {
	conn, err := systemdConn(ctx, path)
	if err != nil {
		return "", err
	}
	props := []systemdDbus.Property{
		systemdDbus.PropDescription("enarx Keep " + path),
		// Accounting of every controller, as the cgroupfs path has it (and
		// the kernel cannot account memory used before a late join).
		newSystemdProperty("MemoryAccounting", true),
		newSystemdProperty("CPUAccounting", true),
		newSystemdProperty("TasksAccounting", true),
		newSystemdProperty("DefaultDependencies", false),
	}
	if cgroups.Mode() == cgroups.Unified {
		props = append(props, newSystemdProperty("IOAccounting", true))
	} else {
		props = append(props, newSystemdProperty("BlockIOAccounting", true))
	}
	if strings.HasSuffix(u.name, ".slice") {
		props = append(props, systemdDbus.PropWants(u.slice))
	} else {
		// A scope is delegated: its cgroup's files are ours to write.
		props = append(props, systemdDbus.PropSlice(u.slice), newSystemdProperty("Delegate", true))
	}
	props = append(props, systemdDbus.PropPids(uint32(pid)))
	props = append(props, properties...)

	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, u.name, "replace", props, done); err != nil {
		if !isUnitExists(err) {
			return "", fmt.Errorf("cgroup %s: systemd: start unit %s in %s: %w", path, u.name, u.slice, err)
		}
		// A failed unit of the same name is left from before: reset it once.
		_ = conn.ResetFailedUnitContext(ctx, u.name)
		if _, err := conn.StartTransientUnitContext(ctx, u.name, "replace", props, done); err != nil {
			return "", fmt.Errorf("cgroup %s: systemd: start unit %s in %s: %w", path, u.name, u.slice, err)
		}
	}
	select {
	case result := <-done:
		if result != "done" {
			_ = conn.ResetFailedUnitContext(context.Background(), u.name)
			return "", fmt.Errorf("cgroup %s: systemd: start unit %s in %s: job %s", path, u.name, u.slice, result)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("cgroup %s: systemd: start unit %s: %w", path, u.name, ctx.Err())
	}
	group, err := unitControlGroup(ctx, conn, u)
	if err != nil {
		return "", fmt.Errorf("cgroup %s: %w", path, err)
	}
	return group, nil
}

// unitControlGroup is the control group of unit u, which systemd gives
// from its hierarchy's root: below the slice's expanded path, and below
// systemd's own root when systemd runs in a container. A unit that is not
// loaded or has no cgroup is an error matching os.ErrNotExist.
func unitControlGroup(ctx context.Context, conn *systemdDbus.Conn, u systemdUnit) (string, error) {
	iface := "org.freedesktop.systemd1.Scope"
	if strings.HasSuffix(u.name, ".slice") {
		iface = "org.freedesktop.systemd1.Slice"
	}
	p, err := conn.GetUnitTypePropertyContext(ctx, u.name, strings.TrimPrefix(iface, "org.freedesktop.systemd1."), "ControlGroup")
	if err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && strings.HasSuffix(derr.Name, ".NoSuchUnit") {
			return "", fmt.Errorf("systemd unit %s: %w", u.name, os.ErrNotExist)
		}
		return "", fmt.Errorf("systemd unit %s: control group: %w", u.name, err)
	}
	group, ok := p.Value.Value().(string)
	if !ok || group == "" || !strings.HasPrefix(group, "/") {
		return "", fmt.Errorf("systemd unit %s has no control group (%v): %w", u.name, p.Value, os.ErrNotExist)
	}
	return group, nil
}

// stopSystemdUnit stops unit u, which removes its control group. A unit
// that is gone already is not an error.
func stopSystemdUnit(ctx context.Context, path string, u systemdUnit) error {
	conn, err := systemdConn(ctx, path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, u.name, "replace", done); err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && strings.HasSuffix(derr.Name, ".NoSuchUnit") {
			return nil
		}
		return fmt.Errorf("cgroup %s: systemd: stop unit %s: %w", path, u.name, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			log.L.WithField("unit", u.name).WithField("result", result).Warn("systemd: stop the unit of a Keep")
		}
	case <-ctx.Done():
		return fmt.Errorf("cgroup %s: systemd: stop unit %s: %w", path, u.name, ctx.Err())
	}
	// A scope that failed (a Keep killed by a signal) stays listed as
	// failed until reset.
	_ = conn.ResetFailedUnitContext(ctx, u.name)
	return nil
}

// setSystemdProperties sets properties of unit u for as long as it runs.
func setSystemdProperties(ctx context.Context, path string, u systemdUnit, properties []systemdDbus.Property) error {
	if len(properties) == 0 {
		return nil
	}
	conn, err := systemdConn(ctx, path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	if err := conn.SetUnitPropertiesContext(ctx, u.name, true, properties...); err != nil {
		return fmt.Errorf("cgroup %s: systemd: set properties of unit %s: %w", path, u.name, err)
	}
	return nil
}

// isUnitExists reports whether err is systemd's answer that a unit of the
// name exists already.
func isUnitExists(err error) bool {
	var derr dbus.Error
	return errors.As(err, &derr) && strings.HasSuffix(derr.Name, "org.freedesktop.systemd1.UnitExists")
}

func newSystemdProperty(name string, value any) systemdDbus.Property {
	return systemdDbus.Property{Name: name, Value: dbus.MakeVariant(value)}
}

// systemdResources are the properties by which systemd itself applies the
// resources res (as the library writes them to the cgroup's files), so
// that it keeps them when it applies its own view of the unit again (on
// `systemctl daemon-reload`): memory, CPU and tasks limits, as runc sets
// them. Values of 0 are left alone, as runc leaves them. The files are
// written after, for the rest.
func systemdResources(res *specs.LinuxResources, version int) []systemdDbus.Property {
	var props []systemdDbus.Property
	if res == nil {
		return nil
	}
	unifiedHost := cgroups.Mode() == cgroups.Unified
	if m := res.Memory; m != nil {
		if unifiedHost {
			r := cgroup2.ToResources(&specs.LinuxResources{Memory: m}).Memory
			if r != nil && r.Max != nil && *r.Max != 0 {
				props = append(props, newSystemdProperty("MemoryMax", systemdLimit(*r.Max)))
			}
			if r != nil && r.Swap != nil && *r.Swap != 0 {
				props = append(props, newSystemdProperty("MemorySwapMax", systemdLimit(*r.Swap)))
			}
			if r != nil && r.Low != nil && *r.Low != 0 {
				props = append(props, newSystemdProperty("MemoryLow", systemdLimit(*r.Low)))
			}
		} else if m.Limit != nil && *m.Limit != 0 {
			props = append(props, newSystemdProperty("MemoryLimit", systemdLimit(*m.Limit)))
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			if unifiedHost {
				if w := cgroup2.ToResources(&specs.LinuxResources{CPU: c}).CPU; w != nil && w.Weight != nil && *w.Weight != 0 {
					props = append(props, newSystemdProperty("CPUWeight", *w.Weight))
				}
			} else {
				props = append(props, newSystemdProperty("CPUShares", *c.Shares))
			}
		}
		var quota int64
		var period uint64
		if c.Quota != nil {
			quota = *c.Quota
		}
		if c.Period != nil {
			period = *c.Period
		}
		props = append(props, systemdCPUQuota(quota, period, version)...)
	}
	if p := res.Pids; p != nil && p.Limit != nil && (*p.Limit > 0 || *p.Limit == -1) {
		props = append(props, newSystemdProperty("TasksMax", systemdLimit(*p.Limit)))
	}
	return props
}

// systemdLimit is a limit as systemd takes it: a negative one, or the
// largest, is none (infinity).
func systemdLimit(v int64) uint64 {
	if v < 0 || v == math.MaxInt64 {
		return math.MaxUint64
	}
	return uint64(v)
}

// systemdCPUQuota are the properties of a CPU quota and period (µs), as
// runc sets them: systemd keeps quotas in whole percent of a CPU, so a
// fraction is rounded up to the next 10 ms per second; the period is
// systemd's since version 242.
func systemdCPUQuota(quota int64, period uint64, version int) []systemdDbus.Property {
	var props []systemdDbus.Property
	if period != 0 && version >= 242 {
		props = append(props, newSystemdProperty("CPUQuotaPeriodUSec", period))
	}
	if quota != 0 || period != 0 {
		perSec := uint64(math.MaxUint64)
		if quota > 0 {
			if period == 0 {
				period = 100000
			}
			perSec = uint64(quota) * 1000000 / period
			if perSec%10000 != 0 {
				perSec = (perSec/10000 + 1) * 10000
			}
		}
		props = append(props, newSystemdProperty("CPUQuotaPerSecUSec", perSec))
	}
	return props
}

// systemdVersion is the version of the systemd at the other end of conn,
// -1 when it does not say.
func systemdVersion(conn *systemdDbus.Conn) int {
	v, err := conn.GetManagerProperty("Version")
	if err != nil {
		return -1
	}
	v = strings.TrimLeft(v, `"v`)
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil {
		return -1
	}
	return n
}

// startUnit makes the systemd unit of c with pid in it, then applies
// the resources New and SetMemoryLimit were given to its cgroup as the
// cgroupfs path applies them. On cgroup v1 the Keep also joins the
// hierarchies that systemd does not manage (cpuset, freezer, ...), as runc
// has it join them.
func (c *Cgroup) startUnit(ctx context.Context, pid int) error {
	conn, err := systemdConn(ctx, c.path)
	if err != nil {
		return err
	}
	applied := withoutHeldBack(c.res)
	held := &specs.LinuxResources{Memory: c.memory}
	props := append(systemdResources(applied, systemdVersion(conn)), systemdResources(held, -1)...)
	if applied != nil {
		props = append(props, systemdDevices(ctx, applied.Devices)...)
	}
	dir, err := startSystemdUnit(ctx, c.path, *c.unit, pid, props)
	if err != nil {
		return err
	}
	c.dir = dir
	log.G(ctx).WithField("unit", c.unit.name).WithField("cgroup", dir).Debug("systemd made the unit of a Keep")
	if err := c.fill(pid, applied); err != nil {
		// The unit holds the Keep: Start's rollback kills it, and Delete
		// stops the unit.
		return err
	}
	if c.memory != nil {
		limit, swap := *c.memory.Limit, int64(0)
		if c.memory.Swap != nil {
			swap = *c.memory.Swap
		}
		return c.SetMemoryLimit(limit, swap)
	}
	return nil
}

// fill applies res to the unit's cgroup, c.dir, through the cgroup file
// system, with pid in it in every hierarchy.
func (c *Cgroup) fill(pid int, res *specs.LinuxResources) error {
	var err error
	if cgroups.Mode() == cgroups.Unified {
		if c.v2, err = cgroup2.Load(c.dir); err != nil {
			return fmt.Errorf("cgroup %s: load %s: %w", c.path, c.dir, err)
		}
		if err := c.v2.Update(cgroup2.ToResources(res)); err != nil {
			return fmt.Errorf("cgroup %s: apply resources to %s: %w", c.path, c.dir, err)
		}
		return nil
	}
	if c.v1, err = cgroup1.New(cgroup1.StaticPath(c.dir), res); err != nil {
		return fmt.Errorf("cgroup %s: apply resources to %s: %w", c.path, c.dir, err)
	}
	if err := c.v1.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("cgroup %s: add process %d to %s: %w", c.path, pid, c.dir, err)
	}
	return nil
}

// loadSystemd is Load of a systemd driver path: the cgroup of its unit,
// an error matching os.ErrNotExist when the unit is gone.
func loadSystemd(ctx context.Context, path string) (*Cgroup, error) {
	u, err := parseSystemdPath(path)
	if err != nil {
		return nil, err
	}
	conn, err := systemdConn(ctx, path)
	if err != nil {
		return nil, err
	}
	c := &Cgroup{path: path, unit: &u}
	if c.dir, err = unitControlGroup(ctx, conn, u); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if cgroups.Mode() == cgroups.Unified {
		if c.v2, err = cgroup2.Load(c.dir); err != nil {
			return nil, fmt.Errorf("cgroup %s: load %s: %w", path, c.dir, err)
		}
		return c, nil
	}
	if c.v1, err = cgroup1.Load(cgroup1.StaticPath(c.dir)); err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return nil, fmt.Errorf("cgroup %s: %w: %w", path, err, os.ErrNotExist)
		}
		return nil, fmt.Errorf("cgroup %s: load %s: %w", path, c.dir, err)
	}
	return c, nil
}

// deviceAllow is one DeviceAllow= entry, D-Bus signature (ss).
type deviceAllow struct {
	Path  string
	Perms string
}

// systemdDevices are the properties by which systemd itself applies the
// device rules (a DevicePolicy and its DeviceAllow list), as runc sets
// them: without them, systemd writes its own view of the unit's devices
// on `systemctl daemon-reload`, and on cgroup v1 that allows every device.
// A rule that denies all starts the list again; one allowing all makes the
// policy auto. A device is named as systemd names it: /dev/char/MAJ:MIN,
// or char-NAME (block-NAME) for every minor of a major, NAME from
// /proc/devices. Denying one device after allowing more cannot be said to
// systemd: the rule is left to the cgroup's own files, which the Keep's
// cgroup holds until a reload.
func systemdDevices(ctx context.Context, rules []specs.LinuxDeviceCgroup) []systemdDbus.Property {
	if len(rules) == 0 {
		return nil
	}
	policy, allow := "strict", []deviceAllow{}
	for _, r := range rules {
		typ := r.Type
		if typ == "" {
			typ = "a"
		}
		access := r.Access
		if access == "" {
			access = "rwm"
		}
		wildMajor, wildMinor := r.Major == nil || *r.Major < 0, r.Minor == nil || *r.Minor < 0
		if !r.Allow {
			if typ == "a" && wildMajor && wildMinor && strings.ContainsRune(access, 'r') && strings.ContainsRune(access, 'w') && strings.ContainsRune(access, 'm') {
				policy, allow = "strict", []deviceAllow{}
				continue
			}
			log.G(ctx).WithField("rule", fmt.Sprintf("%+v", r)).Warn("cgroup: a device rule that denies part of what was allowed cannot be given to systemd; it holds in the cgroup until systemd applies the unit again")
			continue
		}
		if typ == "a" {
			if wildMajor && wildMinor {
				policy, allow = "auto", []deviceAllow{}
			}
			continue
		}
		kind := map[string]string{"c": "char", "b": "block"}[typ]
		if kind == "" {
			continue
		}
		switch {
		case wildMajor:
			allow = append(allow, deviceAllow{kind + "-*", access})
		case wildMinor:
			name, ok := deviceName(typ, *r.Major)
			if !ok {
				log.G(ctx).WithField("major", *r.Major).Warnf("cgroup: no %s device of that major in /proc/devices to name to systemd", kind)
				continue
			}
			allow = append(allow, deviceAllow{kind + "-" + name, access})
		default:
			allow = append(allow, deviceAllow{fmt.Sprintf("/dev/%s/%d:%d", kind, *r.Major, *r.Minor), access})
		}
	}
	return []systemdDbus.Property{newSystemdProperty("DevicePolicy", policy), newSystemdProperty("DeviceAllow", allow)}
}

// deviceName is the name /proc/devices gives the major of a character
// ("c") or block ("b") device.
func deviceName(typ string, major int64) (string, bool) {
	b, err := os.ReadFile("/proc/devices")
	if err != nil {
		return "", false
	}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		switch strings.TrimSpace(line) {
		case "Character devices:":
			section = "c"
			continue
		case "Block devices:":
			section = "b"
			continue
		}
		f := strings.Fields(line)
		if section == typ && len(f) == 2 && f[0] == strconv.FormatInt(major, 10) {
			return f[1], true
		}
	}
	return "", false
}
