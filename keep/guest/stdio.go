package guest

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// nullStdio connects the named standard streams of the Keep process, which
// the workload inherits, to /dev/null. When stderr is one of them, the
// Keep's own messages (a trap, a failure) keep going to the container's
// stderr through a copy of it: they are the runtime's, not the workload's.
func nullStdio(names []string) error {
	if len(names) == 0 {
		return nil
	}
	if err := keep.CheckNullStdio(names); err != nil {
		return err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s for the workload's %s: %w", os.DevNull, strings.Join(names, ", "), err)
	}
	defer null.Close()
	if slices.Contains(names, "stderr") {
		fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fmt.Errorf("keep a copy of stderr: %w", err)
		}
		os.Stderr = os.NewFile(uintptr(fd), "/dev/stderr")
	}
	for _, name := range names {
		fd, _ := workload.StdioFD(name)
		if err := unix.Dup3(int(null.Fd()), fd, 0); err != nil {
			return fmt.Errorf("connect the workload's %s to %s: %w", name, os.DevNull, err)
		}
	}
	return nil
}
