package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
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

// Rootfs is the host path of the spec's root filesystem (see Rootfs).
func (b Bundle) Rootfs(spec *specs.Spec) string { return Rootfs(b.Dir, spec) }

// Spec reads the bundle's runtime spec (see LoadSpec).
func (b Bundle) Spec() (*specs.Spec, error) { return LoadSpec(b.Dir) }

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
	p := Bundle{Dir: bundle}.Config()
	b, err := readRegularFile(p, MaxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("oci: read bundle config: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("oci: %s is not a valid runtime spec: %w", p, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("oci: %s has no process: the container needs process.args naming its module", p)
	}
	return &spec, nil
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

// Resolve turns a bundle's spec, and the container's image when the module is
// not in the root filesystem, into the workload it runs (the shim makes the
// Keep's configuration of it). images may be nil when no image is available.
//
// process.args[0] names the module: a file ending in ".wasm" in the root
// filesystem, optionally followed by "#function" to call another export than
// _start. When there is no such file, a wasm artifact image (config
// architecture "wasm" with a wasm layer) provides the module and args[0] is
// only the program name.
//
// The workload's files are the container's filesystem view, which the Keep
// mounts (keep/confine), and its working directory is process.cwd. An Enarx.toml in the image adds args, env and stdio settings
// (see EnarxTOMLFile).
func Resolve(ctx context.Context, bundle string, spec *specs.Spec, images ImageStore) (workload.Workload, error) {
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return workload.Workload{}, errors.New("oci: process.args is empty: name the module to run, e.g. /app.wasm (`enarx package` sets it in the image)")
	}
	// A workload reads argv and the environment as NUL-terminated strings.
	if i := engine.BadArg(spec.Process.Args); i >= 0 {
		return workload.Workload{}, fmt.Errorf("oci: process.args[%d] %q contains a NUL byte, which would cut the argument short: remove it", i, spec.Process.Args[i])
	}
	if i := engine.BadEnv(spec.Process.Env); i >= 0 {
		return workload.Workload{}, fmt.Errorf("oci: process.env[%d] %q is not KEY=value (without a NUL byte): write it as NAME=value", i, spec.Process.Env[i])
	}
	args := append([]string(nil), spec.Process.Args...)
	name, function, _ := strings.Cut(args[0], "#")
	args[0] = name
	cfg := workload.Workload{
		Entrypoint: function,
		Args:       args,
		Env:        spec.Process.Env,
	}

	module, err := moduleInRootfs(Rootfs(bundle, spec), name)
	if err == nil {
		cfg.Module = module
		return withFiles(ctx, cfg, bundle, spec, nil)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return workload.Workload{}, err
	}
	notFound := err
	if images != nil {
		dst := Bundle{Dir: bundle}.ArtifactModule()
		found, ierr := extractArtifactModule(ctx, images, dst)
		if ierr != nil {
			return workload.Workload{}, ierr
		}
		if found {
			cfg.Module = dst
			cfg, err := withFiles(ctx, cfg, bundle, spec, images)
			if err != nil {
				os.Remove(dst)
			}
			return cfg, err
		}
	}
	return workload.Workload{}, notFound
}

// moduleInRootfs finds name in rootfs without ever leaving it: ".." and
// symbolic links are resolved as if rootfs were "/". It returns the host path
// of the module after checking its header.
func moduleInRootfs(rootfs, name string) (string, error) {
	if !strings.HasSuffix(name, ".wasm") {
		return "", fmt.Errorf("oci: process.args[0] %q is not a WebAssembly module: the enarx runtime runs .wasm files, e.g. `ctr run --runtime io.containerd.enarx.v1 IMAGE ID /app.wasm`: %w", name, os.ErrNotExist)
	}
	root, err := openRootfs(rootfs)
	if err != nil {
		return "", err
	}
	defer root.Close()
	clean := path.Clean("/" + name)
	// O_NONBLOCK: an image may hold a FIFO by that name, whose open would
	// wait for a writer forever; it is refused below as not a regular file.
	fd, err := unix.Openat2(int(root.Fd()), strings.TrimPrefix(clean, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return "", fmt.Errorf("oci: module %q (process.args[0]) not found in the container's root filesystem: check the image contains it, or package the module with `enarx package` (a wasm-layer image, `enarx package --artifact`, needs containerd 2.x): %w", name, os.ErrNotExist)
		}
		return "", fmt.Errorf("oci: open module %q in root filesystem: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("oci: stat module %q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("oci: module %q in the root filesystem is not a regular file (%s)", name, st.Mode().Type())
	}
	header := make([]byte, ModuleHeaderSize)
	n, err := io.ReadFull(f, header)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("oci: read module %q: %w", name, err)
	}
	if err := CheckModuleHeader(fmt.Sprintf("module %q", name), header[:n]); err != nil {
		return "", fmt.Errorf("oci: %w", err)
	}
	// The resolved path, with every link followed inside the root.
	resolved, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("oci: resolve module %q: %w", name, err)
	}
	return resolved, nil
}

// openRootfs opens the root filesystem directory. A missing one is an error
// wrapping os.ErrNotExist: a wasm artifact image has none, and Resolve then
// looks for the module in the image.
func openRootfs(rootfs string) (*os.File, error) {
	fd, err := unix.Open(rootfs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("oci: the container has no root filesystem at %s, and its image is not a wasm artifact image: check root.path in the bundle's config.json and that the image was unpacked (ctr images import, or pull with the snapshotter in use): %w", rootfs, os.ErrNotExist)
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("oci: root filesystem %s is not a directory: root.path in the bundle's config.json must name a directory", rootfs)
	case err != nil:
		return nil, fmt.Errorf("oci: open root filesystem %s: %w", rootfs, &os.PathError{Op: "open", Path: rootfs, Err: err})
	}
	return os.NewFile(uintptr(fd), rootfs), nil
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
