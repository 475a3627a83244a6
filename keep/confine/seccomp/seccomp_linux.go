package seccomp

import (
	"fmt"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The spec's seccomp profile (linux.seccomp: Docker's and containerd's
// default profiles arrive this way) becomes a BPF filter with elastic's
// go-seccomp-bpf, which assembles it in pure Go (no libseccomp), and is
// loaded on every thread of the Keep (SECCOMP_FILTER_FLAG_TSYNC).

// seccompAction is the filter's return value of an OCI action.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (seccomp.Action, error) {
	errno := uint(unix.EPERM)
	if errnoRet != nil {
		errno = *errnoRet
	}
	switch a {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		return seccomp.ActionErrno | seccomp.Action(errno&unix.SECCOMP_RET_DATA), nil
	case specs.ActTrace:
		return seccomp.ActionTrace | seccomp.Action(errno&unix.SECCOMP_RET_DATA), nil
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("action %q is not supported by the enarx runtime: use SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS or another action that needs no listener", a)
}

// seccompOperations are the argument comparisons go-seccomp-bpf makes.
var seccompOperations = map[specs.LinuxSeccompOperator]seccomp.Operation{
	specs.OpNotEqual: seccomp.NotEqual, specs.OpLessThan: seccomp.LessThan, specs.OpLessEqual: seccomp.LessOrEqual,
	specs.OpEqualTo: seccomp.Equal, specs.OpGreaterEqual: seccomp.GreaterOrEqual, specs.OpGreaterThan: seccomp.GreaterThan,
}

// seccompCondition is one argument comparison of a rule.
func seccompCondition(a specs.LinuxSeccompArg) (seccomp.Condition, error) {
	c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	if op, ok := seccompOperations[a.Op]; ok {
		c.Operation = op
		return c, nil
	}
	if a.Op == specs.OpMaskedEqual {
		// (arg & Value) == ValueTwo, as the default profiles use it: no bit
		// of the mask set, or all of them.
		switch a.ValueTwo {
		case 0:
			c.Operation = seccomp.BitsNotSet
			return c, nil
		case a.Value:
			c.Operation = seccomp.BitsSet
			return c, nil
		}
		return c, fmt.Errorf("SCMP_CMP_MASKED_EQ of argument %d with mask %#x and value %#x: only a value of 0 or of the whole mask is supported by the enarx runtime", a.Index, a.Value, a.ValueTwo)
	}
	return c, fmt.Errorf("comparison %q of argument %d is not a seccomp comparison", a.Op, a.Index)
}

// seccompPolicy translates linux.seccomp. Rules apply in their order, each
// to the syscalls of its names this build knows (an unknown name, a
// syscall newer than the build, is skipped as libseccomp skips it). A
// rule's comparisons must all hold, except that comparisons of one
// argument make a rule each, one of which must hold (as runc reads them).
func seccompPolicy(s *specs.LinuxSeccomp) (*seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	p := &seccomp.Policy{DefaultAction: def}
	for i, r := range s.Syscalls {
		action, err := seccompAction(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
		var conds []seccomp.ArgumentConditions
		byIndex := map[uint]bool{}
		repeated := false
		for _, a := range r.Args {
			repeated = repeated || byIndex[a.Index]
			byIndex[a.Index] = true
		}
		for _, a := range r.Args {
			c, err := seccompCondition(a)
			if err != nil {
				return nil, fmt.Errorf("syscalls[%d] (%v): %w", i, r.Names, err)
			}
			if repeated || len(conds) == 0 {
				conds = append(conds, seccomp.ArgumentConditions{c})
			} else {
				conds[0] = append(conds[0], c)
			}
		}
		g := seccomp.SyscallGroup{Action: action}
		for _, name := range r.Names {
			if _, known := info.SyscallNames[name]; !known {
				continue
			}
			if len(conds) == 0 {
				g.Names = append(g.Names, name)
			}
			for _, c := range conds {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: name, Conditions: c})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			p.Syscalls = append(p.Syscalls, g)
		}
	}
	if len(p.Syscalls) == 0 {
		// A profile of only a default action.
		p.Syscalls = []seccomp.SyscallGroup{{Names: []string{"restart_syscall"}, Action: seccomp.ActionAllow}}
	}
	return p, nil
}

// Load loads the spec's profile on every thread of the process
// (confine.SeccompLoader). The caller has no_new_privs set, or
// CAP_SYS_ADMIN.
func Load(s *specs.LinuxSeccomp) error {
	p, err := seccompPolicy(s)
	if err != nil {
		return fmt.Errorf("confinement: linux.seccomp: %w", err)
	}
	var flags uintptr
	for _, f := range s.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		}
	}
	if err := loadPolicy(p, p.DefaultAction, flags); err != nil {
		return fmt.Errorf("confinement: load linux.seccomp: %w", err)
	}
	return nil
}

// loadPolicy assembles p and loads it on every thread (TSYNC, and flags).
// def is the default action with its errno (see assemble).
func loadPolicy(p *seccomp.Policy, def seccomp.Action, flags uintptr) error {
	filter, err := assemble(p, def)
	if err != nil {
		return err
	}
	return load(filter, flags)
}

// assemble assembles p into a filter whose default action is def, with its
// errno, which go-seccomp-bpf's policy cannot name but for EPERM: it is the
// program's last instruction.
func assemble(p *seccomp.Policy, def seccomp.Action) ([]unix.SockFilter, error) {
	p.DefaultAction = def &^ seccomp.Action(unix.SECCOMP_RET_DATA)
	program, err := p.Assemble()
	if err != nil {
		return nil, err
	}
	if ret, ok := program[len(program)-1].(bpf.RetConstant); ok && def != seccomp.ActionErrno {
		ret.Val = uint32(def)
		program[len(program)-1] = ret
	}
	raw, err := bpf.Assemble(program)
	if err != nil {
		return nil, err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, in := range raw {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return filter, nil
}

// load loads filter on every thread (TSYNC, and flags).
func load(filter []unix.SockFilter, flags uintptr) error {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags|unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return errno
	}
	if r != 0 {
		return fmt.Errorf("thread %d could not take the filter", r)
	}
	return nil
}
