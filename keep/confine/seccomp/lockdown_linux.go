package seccomp

import (
	"fmt"
	"runtime"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// keepSyscalls are the system calls a confined Keep makes once its workload
// runs: the Go runtime's and the C library's (memory, threads, signals,
// timers, polling), wasmtime's (memory images, trap handlers), WASI's file
// and socket calls (hostwasi's openat2 and friends), fresh evidence (the
// report device's ioctl, configfs-tsm's files) and the Keep's own exit.
// Measured with strace on every kind of workload, then checked by running
// the end-to-end tests (both daemons: files, sockets and TLS, attestation
// on demand, hostile workloads, faults, load, CRI) with SECCOMP_RET_KILL_PROCESS
// as the default action: no Keep was killed. In production a call not
// listed fails with EPERM rather than killing the Keep, and the kernel
// logs it where audit is on (type 1326).
//
// Left out on purpose: mounting and namespaces (mount, umount2, pivot_root,
// chroot, setns, unshare, the new mount API), executing (execve,
// execveat), creating sockets (socket, bind, listen, connect: a Keep's
// sockets are open before it is confined), other processes' memory
// (ptrace, process_vm_*, pidfd_getfd), the kernel's own (modules, kexec,
// bpf, perf_event_open, keyctl, userfaultfd, io_uring, reboot, swap,
// clocks, syslog), device nodes (mknod) and credentials (set*id, capset).
var keepSyscalls = []string{
	// Memory.
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync", "mlock", "munlock",
	"memfd_create", "membarrier",
	// Threads, scheduling and futexes.
	"clone", "clone3", "exit", "exit_group", "futex", "futex_waitv", "set_robust_list", "get_robust_list",
	"set_tid_address", "rseq", "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
	"getpid", "gettid", "getppid", "getpgid", "getpgrp", "getsid", "arch_prctl", "prctl",
	// Signals.
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
	"rt_tgsigqueueinfo", "sigaltstack", "kill", "tgkill", "tkill", "restart_syscall", "pause",
	// Time.
	"clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "nanosleep", "time", "times",
	"timer_create", "timer_settime", "timer_gettime", "timer_delete", "timer_getoverrun",
	"timerfd_create", "timerfd_settime", "timerfd_gettime", "setitimer", "getitimer", "alarm",
	// Polling and waiting.
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"poll", "ppoll", "select", "pselect6", "eventfd", "eventfd2", "pipe", "pipe2", "wait4", "waitid",
	// Descriptors and files.
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
	"open", "openat", "openat2", "close", "close_range", "creat", "dup", "dup2", "dup3", "fcntl", "flock",
	"ioctl", "lseek", "fstat", "stat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
	"access", "faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
	"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
	"link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat",
	"chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown", "umask",
	"utime", "utimes", "utimensat", "futimesat", "truncate", "ftruncate", "fallocate",
	"fsync", "fdatasync", "sync_file_range", "fadvise64", "readahead", "copy_file_range", "sendfile",
	"splice", "tee", "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	// The Keep's sockets: accepting, handing a connection over, reading and writing.
	"accept", "accept4", "socketpair", "shutdown", "recvfrom", "sendto", "recvmsg", "sendmsg",
	"recvmmsg", "sendmmsg", "getsockname", "getpeername", "getsockopt", "setsockopt",
	// Identity and limits, read only; the Keep's own exit by a signal.
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "capget",
	"getrlimit", "setrlimit", "prlimit64", "getrusage", "sysinfo", "uname", "getcpu", "getrandom",
	"pidfd_open", "pidfd_send_signal", "seccomp",
}

// KeepFilter is the Keep's own seccomp filter, assembled, not loaded: a
// Keep assembles it (AssembleLockDown) while it waits to run, and loads it
// (LockDown) just before its workload runs.
type KeepFilter struct {
	filter []unix.SockFilter
}

// AssembleLockDown assembles the Keep's filter, which depends on nothing of
// the Keep's.
func AssembleLockDown() (*KeepFilter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("confinement: the Keep's seccomp filter: %w", err)
	}
	var names []string
	for _, n := range keepSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	p := &seccomp.Policy{DefaultAction: seccomp.ActionErrno, Syscalls: []seccomp.SyscallGroup{{Names: names, Action: seccomp.ActionAllow}}}
	filter, err := assemble(p, seccomp.ActionErrno)
	if err != nil {
		return nil, fmt.Errorf("confinement: the Keep's seccomp filter: %w", err)
	}
	return &KeepFilter{filter: filter}, nil
}

// LockDown gives the confined Keep its seccomp filter f, on every thread
// and stacked on the spec's: only keepSyscalls. Call it once the Keep has
// done everything but run its workload (startContainer hooks included). It
// sets no_new_privs, which a Keep that executes nothing does not feel, so
// that the filter loads without CAP_SYS_ADMIN.
func (f *KeepFilter) LockDown() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// On this thread; the filter's TSYNC gives every thread both.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("confinement: the Keep's seccomp filter: no_new_privs: %w", err)
	}
	if err := load(f.filter, 0); err != nil {
		return fmt.Errorf("confinement: the Keep's seccomp filter: %w", err)
	}
	return nil
}
