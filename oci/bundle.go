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

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// ArtifactModuleFile is the file in the bundle where the module of a wasm
// artifact image is written for the Keep to load.
const ArtifactModuleFile = "enarx-module.wasm"

// LoadSpec reads the runtime spec (config.json) of an OCI bundle.
func LoadSpec(bundle string) (*specs.Spec, error) {
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
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

// Rootfs is the host path of the spec's root filesystem.
func Rootfs(bundle string, spec *specs.Spec) string {
	root := "rootfs"
	if spec.Root != nil && spec.Root.Path != "" {
		root = spec.Root.Path
	}
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	return root
}

// Resolve turns a bundle's spec, and the container's image when the module is
// not in the root filesystem, into the configuration of the Keep that runs
// it. images may be nil when no image is available.
//
// process.args[0] names the module: a file ending in ".wasm" in the root
// filesystem, optionally followed by "#function" to call another export than
// _start. When there is no such file, a wasm artifact image (config
// architecture "wasm" with a wasm layer) provides the module and args[0] is
// only the program name.
//
// The workload's files are the root filesystem and the bind mounts, as
// preopened directories (see Preopens), and its working directory is
// process.cwd. An Enarx.toml in the image adds args, env and stdio settings
// (see EnarxTOMLFile).
func Resolve(ctx context.Context, id, bundle string, spec *specs.Spec, images ImageStore) (keep.Config, error) {
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return keep.Config{}, errors.New("oci: process.args is empty: name the module to run, e.g. /app.wasm (`enarx package` sets it in the image)")
	}
	args := append([]string(nil), spec.Process.Args...)
	name, function, _ := strings.Cut(args[0], "#")
	args[0] = name
	cfg := keep.Config{
		ID:         id,
		Entrypoint: function,
		Args:       args,
		Env:        spec.Process.Env,
	}
	// The workload's linear memory is capped at the container's memory
	// limit; the Keep's cgroup bounds the whole Keep (keep.Process.Run).
	if l := spec.Linux; l != nil && l.Resources != nil && l.Resources.Memory != nil && l.Resources.Memory.Limit != nil && *l.Resources.Memory.Limit > 0 {
		cfg.MemoryLimit = *l.Resources.Memory.Limit
	}

	module, err := moduleInRootfs(Rootfs(bundle, spec), name)
	if err == nil {
		cfg.Module = module
		return withFiles(ctx, cfg, bundle, spec, nil)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return keep.Config{}, err
	}
	notFound := err
	if images != nil {
		dst := filepath.Join(bundle, ArtifactModuleFile)
		found, ierr := extractArtifactModule(ctx, images, dst)
		if ierr != nil {
			return keep.Config{}, ierr
		}
		if found {
			cfg.Module = dst
			return withFiles(ctx, cfg, bundle, spec, images)
		}
	}
	return keep.Config{}, notFound
}

// moduleInRootfs finds name in rootfs without ever leaving it: ".." and
// symbolic links are resolved as if rootfs were "/". It returns the host path
// of the module after checking its header.
func moduleInRootfs(rootfs, name string) (string, error) {
	if !strings.HasSuffix(name, ".wasm") {
		return "", fmt.Errorf("oci: process.args[0] %q is not a WebAssembly module: the enarx runtime runs .wasm files, e.g. `ctr run --runtime io.containerd.enarx.v1 IMAGE ID /app.wasm`: %w", name, os.ErrNotExist)
	}
	root, err := os.Open(rootfs)
	if err != nil {
		return "", fmt.Errorf("oci: open root filesystem %s: %w", rootfs, err)
	}
	defer root.Close()
	clean := path.Clean("/" + name)
	fd, err := unix.Openat2(int(root.Fd()), strings.TrimPrefix(clean, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
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
