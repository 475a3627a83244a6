package oci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// containerdDefaultMounts are the mounts containerd's default spec (ctr run)
// and the CRI add to every container.
func containerdDefaultMounts(shm string) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		// The CRI's sandbox /dev/shm is a bind mount of a directory.
		{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "ro"}},
	}
}

func TestPreopens(t *testing.T) {
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	data := t.TempDir()
	logs := t.TempDir()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	for _, dir := range []string{rootfs, filepath.Join(bundle, "relative")} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := containerdDefaultMounts(t.TempDir())
	mounts = append(mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/logs/", Type: "none", Source: logs, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/ro-then-rw", Source: data, Options: []string{"bind", "ro", "rw"}},
		specs.Mount{Destination: "/rel", Type: "bind", Source: "relative"},
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
	)
	spec := &specs.Spec{Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"/app.wasm"}}, Mounts: mounts}
	got, err := Preopens(bundle, spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Preopen{
		{HostPath: rootfs, GuestPath: "/"},
		{HostPath: data, GuestPath: "/data", ReadOnly: true},
		{HostPath: logs, GuestPath: "/logs"},
		{HostPath: data, GuestPath: "/ro-then-rw"},
		{HostPath: filepath.Join(bundle, "relative"), GuestPath: "/rel"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Preopens:\n got %+v\nwant %+v", got, want)
	}

	// A read-only root; a later mount at the same place replaces an
	// earlier one, a bind mount at "/" the root filesystem.
	spec.Root.Readonly = true
	spec.Mounts = []specs.Mount{
		{Destination: "/data", Type: "bind", Source: data},
		{Destination: "/data", Type: "bind", Source: logs, Options: []string{"ro"}},
	}
	got, err = Preopens(bundle, spec)
	if err != nil {
		t.Fatal(err)
	}
	want = []engine.Preopen{{HostPath: rootfs, GuestPath: "/", ReadOnly: true}, {HostPath: logs, GuestPath: "/data", ReadOnly: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read-only root:\n got %+v\nwant %+v", got, want)
	}
	spec.Mounts = []specs.Mount{{Destination: "/", Type: "bind", Source: data}}
	got, err = Preopens(bundle, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := []engine.Preopen{{HostPath: data, GuestPath: "/"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("bind mount at /: got %+v, want %+v", got, want)
	}

	// No root filesystem (a wasm artifact image): mounts only.
	spec.Root.Path = "missing"
	spec.Mounts = []specs.Mount{{Destination: "/data", Type: "bind", Source: data}}
	got, err = Preopens(bundle, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := []engine.Preopen{{HostPath: data, GuestPath: "/data"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("no rootfs: got %+v, want %+v", got, want)
	}
}

func TestPreopensMissingSource(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	spec := &specs.Spec{Process: &specs.Process{}, Mounts: []specs.Mount{{Destination: "/data", Type: "bind", Source: missing}}}
	_, err := Preopens(t.TempDir(), spec)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "/data") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing bind source: err = %v, want one naming %s and /data", err, missing)
	}
}
