// Package seccomp gives a Keep its seccomp filters: the spec's profile
// (linux.seccomp, Load, which confine's Enter calls through a
// confine.SeccompLoader) and the Keep's own (AssembleLockDown, LockDown).
//
// It is a package of its own so that only the Keep's binary links the
// filter assembler: go-seccomp-bpf's tables of every architecture are
// built when a process starts (some 160 KB, about 1 ms), and the shim,
// which containerd executes for every container, needs none of it.
package seccomp
