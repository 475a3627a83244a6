package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prctlMmMap is the kernel's struct prctl_mm_map (linux/prctl.h), for
// prctl(PR_SET_MM, PR_SET_MM_MAP).
type prctlMmMap struct {
	StartCode, EndCode, StartData, EndData uint64
	StartBrk, Brk, StartStack              uint64
	ArgStart, ArgEnd, EnvStart, EnvEnd     uint64
	Auxv                                   uint64
	AuxvSize                               uint32
	ExeFD                                  uint32
}

// cmdline holds the buffer the kernel shows as the process's command line
// (SetCmdline): it must never be freed, or moved.
var cmdline struct {
	sync.Mutex
	buf []byte
}

// SetCmdline makes args what /proc/self/cmdline, and so ps, shows of the
// calling process: a spare shim server names no container and a claimed
// one the group it serves, as one started for it would; a spare Keep
// takes its container's ID once it has one (host.IsProcessOf reads it).
// The kernel reads the command line from the process's memory;
// prctl(PR_SET_MM_MAP) points it at a new buffer (a kernel built with
// CONFIG_CHECKPOINT_RESTORE, as distributions' are).
func SetCmdline(args []string) error {
	var b bytes.Buffer
	for _, a := range args {
		b.WriteString(a)
		b.WriteByte(0)
	}
	buf := b.Bytes()
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return fmt.Errorf("set the command line: %w", err)
	}
	// Fields from the third on follow the command's name, which may hold
	// spaces and parentheses: proc(5) numbers them from 1.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return fmt.Errorf("set the command line: /proc/self/stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	field := func(n int) uint64 {
		if n-3 >= len(f) {
			return 0
		}
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	brk, _, _ := unix.RawSyscall(unix.SYS_BRK, 0, 0, 0)
	cmdline.Lock()
	defer cmdline.Unlock()
	m := prctlMmMap{
		StartCode: field(26), EndCode: field(27), StartStack: field(28),
		StartData: field(45), EndData: field(46), StartBrk: field(47), Brk: uint64(brk),
		ArgStart: uint64(uintptr(unsafe.Pointer(&buf[0]))), EnvStart: field(50), EnvEnd: field(51),
		ExeFD: ^uint32(0), // the executable stays
	}
	m.ArgEnd = m.ArgStart + uint64(len(buf))
	if _, _, errno := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, uintptr(unsafe.Pointer(&m)), unsafe.Sizeof(m), 0, 0); errno != 0 {
		return fmt.Errorf("set the command line: prctl(PR_SET_MM_MAP): %w", errno)
	}
	cmdline.buf = buf
	return nil
}
