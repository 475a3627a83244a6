//go:build enarx_sockets_proto

// Prototype for issue 7 item 2: a listening socket for a WASI preview 1
// workload. Built only with -tags enarx_sockets_proto, so that the shim's
// build is unaffected; docs/networking.md has the findings. Nothing here is
// meant to be kept as is.

package wasmtime

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sock"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// protoSocketSymbol is the C API function that older wasmtime releases had
// for candidate (a), wasi_config_preopen_socket(config, fd, "host:port").
// The test looks for it in the headers and the static library that
// wasmtime-go v39 bundles.
const protoSocketSymbol = "wasi_config_preopen_socket"

// wazeroSocketRun runs wasm with wazero (candidate c), giving it a TCP
// listener on host:port as its first descriptor after stdio (fd 3, there
// being no preopened directories). wazero opens the listener itself, which
// is why it takes an address rather than a net.Listener. The wall and
// monotonic clocks, sleep and randomness are the host's: wazero's defaults
// are deterministic fakes, under which a Go runtime's timers never fire.
// It returns the module's exit status when the module exits.
func wazeroSocketRun(ctx context.Context, wasm []byte, host string, port int, stdout, stderr io.Writer) (uint32, error) {
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return 0, fmt.Errorf("wazero: compile: %w", err)
	}
	ctx = sock.WithConfig(ctx, sock.NewConfig().WithTCPListener(host, port))
	cfg := wazero.NewModuleConfig().
		WithArgs("httpserver").
		WithEnv("FD_COUNT", "4").
		WithEnv("FD_NAMES", "stdin:stdout:stderr:listener").
		WithStdout(stdout).WithStderr(stderr).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)
	mod, err := rt.InstantiateModule(ctx, compiled, cfg)
	if mod != nil {
		mod.Close(ctx)
	}
	return exitStatus(err)
}

// exitStatus turns wazero's way of reporting proc_exit into a status.
func exitStatus(err error) (uint32, error) {
	if err == nil {
		return 0, nil
	}
	if e, ok := err.(interface{ ExitCode() uint32 }); ok {
		return e.ExitCode(), nil
	}
	return 0, err
}
