package guest

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// crashSignals are the signals whose default action ends a process as
// crashed. The Go runtime of a Keep would turn one sent from outside (`kill
// -SEGV`, `ctr tasks kill -s SIGABRT`) or raised by the engine's native code
// (abort()) into a goroutine dump and exit status 2, which a workload's own
// exit(2) also gives. A Keep ends by the signal instead, as any process
// does: status 128+n (139, 134...), which says the Keep crashed or was
// crashed. A fault inside the Go runtime or inside the engine's native code
// is still the Go runtime's to report (a stack trace, status 2).
var crashSignals = []os.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGABRT, unix.SIGQUIT}

// dieOfCrashSignals makes the Keep end by any of crashSignals it receives,
// saying so on its stderr (the container's log).
func dieOfCrashSignals(id string) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, crashSignals...)
	go func() {
		sig := (<-c).(syscall.Signal)
		fmt.Fprintf(os.Stderr, "enarx keep: %s: killed by signal %s (%s)\n", id, unix.SignalName(sig), sig)
		dieOf(sig)
	}()
}

// dieOf ends the process by sig with its default action, without a core
// dump: a Keep's memory is its workload's, not to be written to disk.
func dieOf(sig syscall.Signal) {
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if unix.Getpid() == 1 {
		// The init of its own PID namespace (a confined Keep) is not
		// killed by a signal it sends itself: exit with the status.
		os.Exit(128 + int(sig))
	}
	// The Go runtime's handler stays installed whatever os/signal is told:
	// set the default action with the system call. A zeroed kernel
	// sigaction is SIG_DFL, no flags, an empty mask, on every architecture.
	var dfl [4]uint64
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	_ = unix.Kill(unix.Getpid(), sig)
	time.Sleep(time.Second)
	os.Exit(128 + int(sig))
}
