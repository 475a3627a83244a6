package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/oci/bundle"
)

// Bundle is an OCI bundle as containerd makes it and the enarx runtime
// fills it (package oci/bundle).
type Bundle = bundle.Bundle

// MaxSpecSize bounds the config.json LoadSpec reads (bundle.MaxSpecSize).
const MaxSpecSize = bundle.MaxSpecSize

// LoadSpec reads the runtime spec (config.json) of an OCI bundle
// (bundle.LoadSpec).
func LoadSpec(dir string) (*specs.Spec, error) { return bundle.LoadSpec(dir) }

// Rootfs is the host path of the spec's root filesystem (bundle.Rootfs).
func Rootfs(dir string, spec *specs.Spec) string { return bundle.Rootfs(dir, spec) }

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
