package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// TestMain makes the test binary a Keep when a test starts it with
// keep.Subcommand, as the shim binary is: service.exe is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == keep.Subcommand {
		os.Exit(keep.Main(os.Args[2:], fakeEngineFactory))
	}
	os.Exit(m.Run())
}

// The fake engine (the same as keep's tests use, which a non-test package
// would be needed to share): no wasmtime, the module bytes after the 8-byte
// header are a command.

const wasmHeader = "\x00asm\x01\x00\x00\x00"

const fakeEngineName = "fake-engine 1.0"

func fakeEngineFactory() (keep.Engine, error) { return fakeEngine{}, nil }

type fakeEngine struct{}

func (fakeEngine) Name() string { return fakeEngineName }

func (fakeEngine) Compile(ctx context.Context, wasm []byte) (keep.Module, error) {
	if !bytes.HasPrefix(wasm, []byte(wasmHeader)) {
		return nil, errors.New("fake engine: not a WebAssembly module")
	}
	cmd := string(wasm[len(wasmHeader):])
	if cmd == "compile-error" {
		return nil, errors.New("fake engine: invalid opcode 0xff at offset 42")
	}
	return fakeModule{cmd: cmd}, nil
}

type fakeModule struct{ cmd string }

func (m fakeModule) Run(ctx context.Context, opts keep.RunOptions) (int, error) {
	verb, arg, _ := strings.Cut(m.cmd, " ")
	switch verb {
	case "exit":
		return strconv.Atoi(arg)
	case "trap":
		return 0, &keep.TrapError{Message: "unreachable instruction executed"}
	case "spin":
		for ctx.Err() == nil {
		}
		return 0, fmt.Errorf("spin: %w", keep.ErrInterrupted)
	case "block":
		time.Sleep(24 * time.Hour)
		return 0, nil
	case "print":
		fmt.Fprintln(os.Stdout, arg)
		return 0, nil
	case "cat":
		_, err := io.Copy(os.Stdout, os.Stdin)
		return 0, err
	}
	return 0, fmt.Errorf("fake engine: unknown command %q", m.cmd)
}
