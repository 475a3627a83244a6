// Package bundle is an OCI bundle as containerd makes it for a task and the
// enarx runtime fills it: the name of every file in it, and its runtime
// spec. It is apart from package oci, which resolves a bundle's workload, so
// that the shim's launcher (what containerd executes for every task) links
// no more than it needs.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Bundle is an OCI bundle as containerd makes it for a task and the enarx
// runtime fills it: it owns the name of every file in it. containerd writes
// config.json and makes the root filesystem's mount point; the shim writes
// the address of its socket and reads its log FIFO; Create adds the files
// Clean removes.
type Bundle struct {
	// Dir is the bundle's directory, absolute, or "." when the process
	// runs in it (containerd starts the shim there).
	Dir string
}

// The files of a bundle.
const (
	// configFile is the runtime spec, written by containerd.
	configFile = "config.json"
	// addressFile records the address of the shim's socket, for
	// containerd to reconnect after a restart.
	addressFile = "address"
	// logFIFO is the FIFO containerd copies the shim's log from.
	logFIFO = "log"
	// artifactModuleFile holds the module of a wasm artifact image,
	// written for the Keep to load.
	artifactModuleFile = "enarx-module.wasm"
	// keepPIDFile records the Keep's PID for `shim delete`.
	keepPIDFile = "enarx-keep.pid"
	// keepExitFile records the Keep's exit status once the shim has
	// reaped it, for `shim delete` after a shim crash.
	keepExitFile = "enarx-keep.exit"
	// evidenceFile holds the Keep's evidence at start.
	evidenceFile = "enarx-evidence.json"
	// rootfsMountFile records where the shim mounted the root filesystem
	// (containerd gave it the mounts): the shim unmounts only that, never
	// a root filesystem someone else mounted (Docker, ctr run --rootfs).
	rootfsMountFile = "enarx-rootfs.mount"
	// keepStateDir is the Keep's state directory (keep.Config.StateDir),
	// made when the Keep gets a certificate.
	keepStateDir = "enarx"
	// cleanedFile marks a task whose Delete removed all its Create made.
	cleanedFile = "enarx-cleaned"
)

func (b Bundle) path(name string) string { return filepath.Join(b.Dir, name) }

// Config is the path of the bundle's runtime spec.
func (b Bundle) Config() string { return b.path(configFile) }

// Address is the file in which the shim records its socket's address.
func (b Bundle) Address() string { return b.path(addressFile) }

// Log is the FIFO the shim writes its log to.
func (b Bundle) Log() string { return b.path(logFIFO) }

// ArtifactModule is where the module of a wasm artifact image is written.
func (b Bundle) ArtifactModule() string { return b.path(artifactModuleFile) }

// KeepPID is the file that records the Keep's PID.
func (b Bundle) KeepPID() string { return b.path(keepPIDFile) }

// KeepExit is the file that records the Keep's exit status.
func (b Bundle) KeepExit() string { return b.path(keepExitFile) }

// Evidence is the file that holds the Keep's evidence at start.
func (b Bundle) Evidence() string { return b.path(evidenceFile) }

// RootfsMount is the file that records where the shim mounted the root
// filesystem.
func (b Bundle) RootfsMount() string { return b.path(rootfsMountFile) }

// KeepStateDir is the Keep's own directory (keep.Config.StateDir).
func (b Bundle) KeepStateDir() string { return b.path(keepStateDir) }

// Cleaned is the file whose presence says the shim server's Delete removed
// all that the task's Create made (the root filesystem's mount, the files
// Clean removes, the Keep's cgroup): `shim delete` then has nothing left to
// do (see MarkCleaned).
func (b Bundle) Cleaned() string { return b.path(cleanedFile) }

// MarkCleaned records that all the task's Create made is gone (Cleaned).
func (b Bundle) MarkCleaned() error { return os.WriteFile(b.Cleaned(), nil, 0o600) }

// IsCleaned reports whether MarkCleaned recorded the bundle cleaned.
func (b Bundle) IsCleaned() bool {
	_, err := os.Lstat(b.Cleaned())
	return err == nil
}

// Rootfs is the host path of the spec's root filesystem (see Rootfs).
func (b Bundle) Rootfs(spec *specs.Spec) string { return Rootfs(b.Dir, spec) }

// Spec reads the bundle's runtime spec (see LoadSpec).
func (b Bundle) Spec() (*specs.Spec, error) { return LoadSpec(b.Dir) }

// StartSpec is what of the bundle's runtime spec says how its process
// starts (LoadStartSpec).
func (b Bundle) StartSpec() (*specs.Spec, error) { return LoadStartSpec(b.Dir) }

// Clean removes what the enarx runtime added to the bundle: the artifact
// module, the Keep's PID and exit records, its evidence, the record of the
// root filesystem's mount (unmount it first) and its state directory. What
// containerd made is left alone; so is what is already gone. It returns
// every failure, joined.
func (b Bundle) Clean() error {
	var errs []error
	for _, f := range []string{artifactModuleFile, keepPIDFile, keepExitFile, evidenceFile, rootfsMountFile} {
		if err := os.Remove(b.path(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(b.path(keepStateDir)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// MaxSpecSize bounds the config.json LoadSpec reads: containerd writes a few
// KiB, and Kubernetes bounds a whole pod object to 1.5 MiB.
const MaxSpecSize = 16 << 20

// LoadSpec reads the runtime spec (config.json) of an OCI bundle.
func LoadSpec(bundle string) (*specs.Spec, error) {
	var spec specs.Spec
	if err := loadPart(bundle, &spec); err != nil {
		return nil, err
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("oci: %s has no process: the container needs process.args naming its module", Bundle{Dir: bundle}.Config())
	}
	return &spec, nil
}

// LoadAnnotations reads the annotations of the runtime spec of an OCI
// bundle, and nothing else of it: what `shim start` needs, without the cost
// of decoding the whole spec.
func LoadAnnotations(bundle string) (map[string]string, error) {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := loadPart(bundle, &spec); err != nil {
		return nil, err
	}
	return spec.Annotations, nil
}

// LoadStartSpec reads what of the runtime spec of an OCI bundle says how
// its process starts, and nothing else of it: the annotations, the root,
// the process's capabilities, the hooks, and of linux the namespaces, the
// ID mappings, the cgroup path and resources and the root filesystem's
// propagation. The first decoding of a whole spec costs 3-4 ms on a small
// machine, mostly in its many types; this is about half of it, for a Keep
// started before its container's Create (see host.StartAhead).
func LoadStartSpec(bundle string) (*specs.Spec, error) {
	var part struct {
		Annotations map[string]string `json:"annotations,omitempty"`
		Root        *specs.Root       `json:"root,omitempty"`
		Process     *struct {
			Capabilities *specs.LinuxCapabilities `json:"capabilities,omitempty"`
		} `json:"process,omitempty"`
		Hooks *specs.Hooks `json:"hooks,omitempty"`
		Linux *struct {
			Namespaces        []specs.LinuxNamespace `json:"namespaces,omitempty"`
			UIDMappings       []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
			GIDMappings       []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
			CgroupsPath       string                 `json:"cgroupsPath,omitempty"`
			Resources         *specs.LinuxResources  `json:"resources,omitempty"`
			RootfsPropagation string                 `json:"rootfsPropagation,omitempty"`
		} `json:"linux,omitempty"`
	}
	if err := loadPart(bundle, &part); err != nil {
		return nil, err
	}
	spec := &specs.Spec{Annotations: part.Annotations, Root: part.Root, Hooks: part.Hooks, Process: &specs.Process{}}
	if part.Process != nil {
		spec.Process.Capabilities = part.Process.Capabilities
	}
	if l := part.Linux; l != nil {
		spec.Linux = &specs.Linux{Namespaces: l.Namespaces, UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings,
			CgroupsPath: l.CgroupsPath, Resources: l.Resources, RootfsPropagation: l.RootfsPropagation}
	}
	return spec, nil
}

// loadPart decodes the runtime spec of an OCI bundle into part: a
// specs.Spec, or a struct with some of its fields.
func loadPart(bundle string, part any) error {
	p := Bundle{Dir: bundle}.Config()
	b, err := readRegularFile(p, MaxSpecSize)
	if err != nil {
		return fmt.Errorf("oci: read bundle config: %w", err)
	}
	if err := json.Unmarshal(b, part); err != nil {
		return fmt.Errorf("oci: %s is not a valid runtime spec: %w", p, err)
	}
	return nil
}

// Rootfs is the host path of the spec's root filesystem; with a nil spec,
// where containerd puts it by default.
func Rootfs(bundle string, spec *specs.Spec) string {
	root := "rootfs"
	if spec != nil && spec.Root != nil && spec.Root.Path != "" {
		root = spec.Root.Path
	}
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	return root
}

// readRegularFile reads the regular file at p, of at most max bytes,
// without blocking on a FIFO or a device.
func readRegularFile(p string, max int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", p, st.Mode().Type())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", p, st.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is more than the %d bytes allowed", p, max)
	}
	return b, nil
}
