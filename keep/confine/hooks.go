package confine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Where each kind of OCI hook runs for a Keep, as runc runs it:
//
//   - prestart and createRuntime: by the shim, in the runtime's namespaces,
//     while the container is created (a failure fails Create);
//   - createContainer: by the Keep, in its own namespaces, once the spec's
//     mounts are made and before pivot_root (a failure fails Create);
//   - startContainer: by the Keep, in the container, before the workload
//     runs (a failure ends the Keep instead of the workload);
//   - poststart and poststop: by the shim, after Start and after Delete (a
//     failure is logged).
//
// Each gets the container's state (specs.State) on its stdin.

// RunHooks runs hooks in order with state on their stdin, each bounded by
// its timeout (none: ctx alone), and returns the first failure, naming the
// kind, the hook and its output.
func RunHooks(ctx context.Context, kind string, hooks []specs.Hook, state specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	stdin, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("%s hook: state: %w", kind, err)
	}
	for i, h := range hooks {
		hctx, cancel := ctx, context.CancelFunc(func() {})
		if h.Timeout != nil && *h.Timeout > 0 {
			hctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		}
		cmd := exec.CommandContext(hctx, h.Path)
		if len(h.Args) > 0 {
			cmd.Args = h.Args
		}
		cmd.Env = h.Env
		cmd.Stdin = bytes.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		expired := hctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if expired {
				err = fmt.Errorf("timed out after %d s", *h.Timeout)
			}
			return fmt.Errorf("%s hook %d (%s): %w: %s", kind, i, h.Path, err, bytes.TrimSpace(tail(out.Bytes(), 512)))
		}
	}
	return nil
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
