package keep

import (
	"fmt"

	"github.com/enarx/containerd-shim-enarx/keep/workload"
)

// CheckNullStdio reports a name in Config.NullStdio that is not a standard
// stream.
func CheckNullStdio(names []string) error {
	for _, name := range names {
		if _, ok := workload.StdioFD(name); !ok {
			return fmt.Errorf("keep config: null_stdio: %q is not stdin, stdout or stderr", name)
		}
	}
	return nil
}
