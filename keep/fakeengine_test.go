package keep_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// wasmHeader starts every fake module: the 8-byte header of a WebAssembly
// core module, followed by a command for the fake engine.
const wasmHeader = "\x00asm\x01\x00\x00\x00"

// fakeEngineName is the engine name the Keep reports.
const fakeEngineName = "fake-engine 1.0"

// fakeEngineFactory is the keep.EngineFactory of the test binary acting as a
// Keep: no wasmtime, the module bytes after the header are a command.
func fakeEngineFactory() (keep.Engine, error) { return fakeEngine{}, nil }

type fakeEngine struct{}

func (fakeEngine) Name() string { return fakeEngineName }

func (fakeEngine) Compile(ctx context.Context, wasm []byte) (keep.Module, error) {
	if !bytes.HasPrefix(wasm, []byte(wasmHeader)) {
		return nil, errors.New("fake engine: not a WebAssembly module")
	}
	cmd := string(wasm[len(wasmHeader):])
	switch cmd {
	case "compile-error":
		return nil, errors.New("fake engine: invalid opcode 0xff at offset 42")
	case "compile-hang":
		time.Sleep(24 * time.Hour)
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
		return 0, &keep.TrapError{Message: "unreachable instruction executed at fake+0x2a"}
	case "fail":
		return 0, errors.New(arg)
	case "spin":
		for ctx.Err() == nil {
		}
		return 0, fmt.Errorf("spin: %w", keep.ErrInterrupted)
	case "block":
		// A blocking host call: the context is not looked at.
		time.Sleep(24 * time.Hour)
		return 0, nil
	case "print":
		fmt.Fprintln(os.Stdout, arg)
		return 0, nil
	case "print-args":
		err := json.NewEncoder(os.Stdout).Encode(printedArgs{Entrypoint: opts.Entrypoint, Args: opts.Args, Env: opts.Env})
		return 0, err
	}
	return 0, fmt.Errorf("fake engine: unknown command %q", m.cmd)
}

// printedArgs is what the "print-args" command writes to stdout.
type printedArgs struct {
	Entrypoint string   `json:"entrypoint"`
	Args       []string `json:"args"`
	Env        []string `json:"env"`
}
