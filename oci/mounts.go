package oci

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A WebAssembly workload sees files only through WASI preopened directories:
// nothing is mounted for it, and the Keep has no mount namespace of its own.
// Preopens turns the container's root filesystem and its OCI mounts into
// preopens with these rules:
//
//   - The root filesystem is preopened at "/", read-only when root.readonly
//     is set in the spec (`ctr run --read-only`, a read-only rootfs in
//     Kubernetes) and writable otherwise, as runc would mount it. It is left
//     out when it does not exist (a wasm artifact image may have none).
//   - A mount becomes a preopen at its destination when it is a bind mount
//     (type "bind", or an option "bind" or "rbind") of a directory. Its
//     options decide whether it is read-only: the last of "ro" and "rw"
//     wins, as for mount(8); the default is writable.
//   - Every other mount type (proc, sysfs, tmpfs, devpts, mqueue, cgroup,
//     overlay, ...) is skipped: those are kernel file systems the shim would
//     have to mount, and nothing in WASI preview 1 can use them.
//   - A bind mount whose destination is /proc, /sys, /dev or under them is
//     skipped: those hold kernel interfaces (containerd's CRI binds the
//     sandbox's /dev/shm there), not workload data.
//   - A bind mount of a file (/etc/hosts, /etc/resolv.conf and /etc/hostname
//     from the CRI, /dev/termination-log) is skipped: WASI preopens are
//     directories. A bind mount whose source does not exist is an error, as
//     it is for runc.
//   - When two preopens have the same guest path, the later one replaces
//     the earlier one, as a later mount hides an earlier one: a bind mount
//     at "/" replaces the root filesystem.
//
// Nested preopens (a mount at /data inside the root filesystem at "/") are
// resolved by the workload's own libc: WASI libc and Go's wasip1 runtime
// both open a path in the preopen with the longest matching prefix, so
// "/data/x" is "x" in the /data preopen, never "data/x" in the root
// filesystem. Go matches that prefix as a string, not by path components:
// with a mount at /data, a Go workload's "/database" also goes to that
// mount (as "base"). Since nothing is mounted, the root filesystem's own
// /data directory is a separate, ordinary directory of the "/" preopen that
// the workload does not reach by that name.
//
// Inside a preopen, wasmtime (cap-std) confines every lookup: "..", an
// absolute symbolic link, or a relative one leading out of the directory
// fails with a permission error, so the workload never reaches a host path
// that is not preopened. A consequence that differs from runc: an absolute
// symbolic link in the image (/etc/alternatives/x -> /usr/bin/y) does not
// resolve even when its target is in the root filesystem.
func Preopens(bundle string, spec *specs.Spec) ([]engine.Preopen, error) {
	var preopens []engine.Preopen
	add := func(p engine.Preopen) {
		preopens = slices.DeleteFunc(preopens, func(q engine.Preopen) bool { return q.GuestPath == p.GuestPath })
		preopens = append(preopens, p)
	}
	rootfs := Rootfs(bundle, spec)
	if st, err := os.Stat(rootfs); err == nil && st.IsDir() {
		add(engine.Preopen{HostPath: rootfs, GuestPath: "/", ReadOnly: spec.Root != nil && spec.Root.Readonly})
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("oci: root filesystem %s: %w", rootfs, err)
	}
	for i, m := range spec.Mounts {
		p, ok, err := mountPreopen(bundle, m)
		if err != nil {
			return nil, fmt.Errorf("oci: mounts[%d] (%s on %s): %w", i, m.Source, m.Destination, err)
		}
		if ok {
			add(p)
		}
	}
	return preopens, nil
}

// systemPaths are the guest directories whose mounts are never preopened.
var systemPaths = []string{"/proc", "/sys", "/dev"}

// mountPreopen applies the rules of Preopens to one mount: ok is false for
// a mount that is skipped.
func mountPreopen(bundle string, m specs.Mount) (p engine.Preopen, ok bool, err error) {
	if !isBindMount(m) {
		return engine.Preopen{}, false, nil
	}
	if m.Destination == "" {
		return engine.Preopen{}, false, errors.New("a bind mount needs a destination")
	}
	guest := path.Clean("/" + m.Destination)
	for _, sys := range systemPaths {
		if guest == sys || strings.HasPrefix(guest, sys+"/") {
			return engine.Preopen{}, false, nil
		}
	}
	if m.Source == "" {
		return engine.Preopen{}, false, errors.New("a bind mount needs a source directory")
	}
	source := m.Source
	if !filepath.IsAbs(source) {
		// runc resolves a relative source against the bundle, its cwd.
		source = filepath.Join(bundle, source)
	}
	st, err := os.Stat(source)
	if err != nil {
		return engine.Preopen{}, false, fmt.Errorf("bind mount source: %w", err)
	}
	if !st.IsDir() {
		return engine.Preopen{}, false, nil
	}
	readOnly := false
	for _, o := range m.Options {
		switch o {
		case "ro":
			readOnly = true
		case "rw":
			readOnly = false
		}
	}
	return engine.Preopen{HostPath: source, GuestPath: guest, ReadOnly: readOnly}, true, nil
}

// isBindMount reports whether m is a bind mount: type "bind" (runc's
// convention) or the mount(8) option "bind" or "rbind" whatever the type
// (containerd and Docker write type "bind" with "rbind", or type "none").
func isBindMount(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}
