// Package workload describes what a Keep runs: the module and everything the
// workload sees of its environment (argv, environment, files, working
// directory, stdio, sockets). Package oci makes a Workload from a bundle and
// its image; a Keep's configuration (keep.Config) carries it with what the
// node decides (backend, attestation service, module cache, limits).
//
// It imports only the leaves it names (keep/engine, socketspec), so that
// oci and the CLI describe a workload without linking the Keep.
package workload

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/sockets/socketspec"
)

// Workload is what a container runs. Its JSON encoding is part of the Keep's
// configuration, whose digest the Keep's evidence binds.
type Workload struct {
	// Module is the host path of the WebAssembly core module or component to run.
	Module string `json:"module"`
	// Entrypoint is the exported function to call (default "_start").
	Entrypoint string `json:"entrypoint,omitempty"`
	// Args is the workload's argv, Args[0] being the program name.
	Args []string `json:"args"`
	// Env holds "KEY=value" entries.
	Env []string `json:"env,omitempty"`
	// Preopens are the host directories the workload sees (the root
	// filesystem and the OCI mounts), each at its guest path.
	Preopens []engine.Preopen `json:"preopens,omitempty"`
	// Cwd is the workload's working directory (process.cwd), a guest path.
	Cwd string `json:"cwd,omitempty"`
	// NullStdio names the standard streams ("stdin", "stdout", "stderr")
	// connected to /dev/null instead of the container's (Enarx.toml files
	// of kind "null").
	NullStdio []string `json:"null_stdio,omitempty"`
	// Sockets are the sockets the workload gets (Enarx.toml listen and
	// connect entries, enarx.dev/listen.* and enarx.dev/connect.*
	// annotations), in descriptor order. Nothing else on the network is
	// reachable from the workload.
	Sockets []socketspec.Spec `json:"sockets,omitempty"`
	// NetNS is the path of the network namespace the sockets are opened
	// in (the container's, e.g. a pod's); empty means the Keep's own
	// unless NewNetNS is set.
	NetNS string `json:"netns,omitempty"`
	// NewNetNS opens the sockets in a new network namespace of their own,
	// with only a loopback interface: the OCI spec asked for a network
	// namespace without naming one, as `ctr run` without --net-host does.
	NewNetNS bool `json:"new_netns,omitempty"`
	// Instances is how many instances of the module the Keep runs at
	// once, each on a thread of its own, sharing the listen sockets
	// (enarx.dev/instances); 0 means 1.
	Instances int `json:"instances,omitempty"`
}

// MaxInstances bounds Workload.Instances.
const MaxInstances = 64

// InstanceCount is how many instances of the module w runs: Instances, at
// least 1.
func (w *Workload) InstanceCount() int { return max(w.Instances, 1) }

// stdioFDs are the descriptors of the standard streams NullStdio names.
var stdioFDs = map[string]int{"stdin": 0, "stdout": 1, "stderr": 2}

// StdioFD returns the descriptor of the standard stream called name
// ("stdin", "stdout" or "stderr").
func StdioFD(name string) (int, bool) {
	fd, ok := stdioFDs[name]
	return fd, ok
}

// Validate reports the first problem with w: what a Keep could not run, or
// would run otherwise than asked.
func (w *Workload) Validate() error {
	if w.Module == "" {
		return errors.New("module path is empty")
	}
	if !filepath.IsAbs(w.Module) {
		return fmt.Errorf("module path %q is not absolute", w.Module)
	}
	if w.NetNS != "" && (w.NewNetNS || !filepath.IsAbs(w.NetNS)) {
		return fmt.Errorf("network namespace %q: a path must be absolute, and excludes a new namespace", w.NetNS)
	}
	// A workload reads argv and the environment as NUL-terminated strings:
	// a NUL would silently cut them short, and the engine refuses them when
	// the workload starts; here they fail the container's creation instead.
	if i := engine.BadArg(w.Args); i >= 0 {
		return fmt.Errorf("argument %d %q contains a NUL byte", i, w.Args[i])
	}
	if i := engine.BadEnv(w.Env); i >= 0 {
		return fmt.Errorf("environment entry %d %q is not KEY=value without a NUL byte", i, w.Env[i])
	}
	for _, name := range w.NullStdio {
		if _, ok := StdioFD(name); !ok {
			return fmt.Errorf("null_stdio: %q is not stdin, stdout or stderr", name)
		}
	}
	for i, p := range w.Preopens {
		switch {
		case !filepath.IsAbs(p.HostPath) || !path.IsAbs(p.GuestPath):
			return fmt.Errorf("preopen %d (%q at %q): both paths must be absolute", i, p.HostPath, p.GuestPath)
		case strings.IndexByte(p.HostPath, 0) >= 0 || strings.IndexByte(p.GuestPath, 0) >= 0:
			return fmt.Errorf("preopen %d (%q at %q): a path contains a NUL byte", i, p.HostPath, p.GuestPath)
		case len(w.Sockets) > 0 && strings.ContainsRune(p.GuestPath, ':'):
			// FD_NAMES lists the preopens' guest paths with the sockets.
			return fmt.Errorf("preopen %d at %q: with sockets, FD_NAMES lists the preopened directories, separated by ':', so a guest path cannot contain ':': mount it elsewhere", i, p.GuestPath)
		}
	}
	for i, s := range w.Sockets {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("socket %d: %w", i, err)
		}
	}
	if w.Instances < 0 || w.Instances > MaxInstances {
		return fmt.Errorf("instances %d: from 1 to %d instances of a module run at once", w.Instances, MaxInstances)
	}
	if w.Instances > 1 {
		for _, s := range w.Sockets {
			if s.Kind == socketspec.Connect {
				return fmt.Errorf("instances %d: connect socket %q is one connection, which %d instances cannot share: run one instance", w.Instances, s.Name, w.Instances)
			}
		}
	}
	return nil
}
