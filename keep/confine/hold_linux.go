package confine

import (
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// Hold is a pod's sandbox process, as the pause container's is: it holds
// the namespaces the shim started it in (see Start) for the pod's Keeps to
// join, sets hostname in its UTS namespace when not "" and the pod's
// sysctls in its namespaces (the CRI plugin gives them to the sandbox
// only; CheckSysctls has checked them), reaps any child
// it inherits, and returns when it gets SIGINT or SIGTERM. As the first
// process of a PID namespace, it gets no other signal but SIGKILL from
// outside it. It calls ready once it is set up and takes those signals.
func Hold(hostname string, sysctls map[string]string, ready func()) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGCHLD)
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("pod sandbox: hostname %q: %w", hostname, err)
		}
	}
	if err := setSysctls(sysctls, true); err != nil {
		return fmt.Errorf("pod sandbox: %w", err)
	}
	ready()
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			return nil
		}
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return nil
}
