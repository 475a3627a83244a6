package host

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/confine"
	"github.com/enarx/containerd-shim-enarx/keep/proc"
)

// SandboxOptions say how to start a pod's sandbox process.
type SandboxOptions struct {
	// Executable is the runtime binary, as in StartOptions.
	Executable string
	// ID is the sandbox's container ID.
	ID string
	// Spec is the sandbox container's spec (the pause container's, as the
	// CRI plugin makes it): its hostname and namespaces.
	Spec *specs.Spec
}

// Sandbox is a pod's sandbox process: the runtime binary holding the pod's
// PID, IPC, UTS and network namespaces (confine.Hold), as pause does under
// runc. The pod's Keeps join them by the paths the CRI plugin gives them,
// /proc/PID/ns/*. It runs nothing else.
type Sandbox struct {
	child
}

// StartSandbox starts a pod's sandbox process in the namespaces of its spec
// (new ones, or the network namespace the CRI plugin made, joined by path),
// with its hostname and sysctls.
func StartSandbox(ctx context.Context, opts SandboxOptions) (*Sandbox, error) {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("pod sandbox %s: find runtime executable: %w", opts.ID, err)
		}
	}
	args := []string{keep.Subcommand, "-id", opts.ID, "-pause"}
	var namespaces []specs.LinuxNamespace
	if l := opts.Spec.Linux; l != nil {
		for _, ns := range l.Namespaces {
			switch ns.Type {
			case specs.PIDNamespace, specs.IPCNamespace, specs.NetworkNamespace:
			case specs.UTSNamespace:
				if ns.Path == "" && opts.Spec.Hostname != "" {
					args = append(args, "-hostname", opts.Spec.Hostname)
				}
			case specs.MountNamespace, specs.CgroupNamespace:
				continue // it mounts nothing and has no cgroup of its own
			default:
				return nil, fmt.Errorf("pod sandbox %s: %s namespaces are not supported by the enarx runtime: run the pod without one", opts.ID, ns.Type)
			}
			namespaces = append(namespaces, ns)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", opts.ID, err)
	}
	defer r.Close()
	if l := opts.Spec.Linux; l != nil && len(l.Sysctl) > 0 {
		if err := confine.CheckSysctls(l.Sysctl, namespaces); err != nil {
			return nil, fmt.Errorf("pod sandbox %s: %w", opts.ID, err)
		}
		for k, v := range l.Sysctl {
			args = append(args, "-sysctl", k+"="+v)
		}
	}
	s := &Sandbox{child{proc.New(exec.Command(exe, args...))}}
	s.proc.Cmd.ExtraFiles = []*os.File{w}
	// Signals from the shim's terminal or process group are not the pod's.
	s.proc.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = confine.Start(s.proc.Cmd, namespaces, nil)
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", opts.ID, err)
	}
	go s.proc.Reap(nil)
	// Ready once it takes the signals that end it and has its hostname.
	line, err := bufio.NewReader(r).ReadString('\n')
	if line = strings.TrimSpace(line); line != keep.SandboxReady {
		_ = s.Signal(syscall.SIGKILL)
		<-s.Done()
		if line == "" {
			status, _ := s.Status()
			return nil, fmt.Errorf("pod sandbox %s: %s exited with status %d before it was ready (%v): is it the enarx runtime?", opts.ID, exe, status, err)
		}
		return nil, fmt.Errorf("pod sandbox %s: %s", opts.ID, line)
	}
	log.G(ctx).WithField("id", opts.ID).WithField("pid", s.Pid()).Debug("pod sandbox started")
	return s, nil
}

// Run does nothing: the sandbox holds its namespaces from its start.
func (s *Sandbox) Run() error { return nil }
