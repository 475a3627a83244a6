// Package keeptest provides a fake engine.Engine for tests of the Keep process
// and the shim: no WebAssembly runtime, the bytes after a module's 8-byte
// header are a command. A test binary that starts itself as a Keep (see
// keep.Subcommand) runs guest.Main with Factory.
package keeptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"github.com/enarx/containerd-shim-enarx/keep/host"
)

// Header is the 8-byte header of a WebAssembly core module.
const Header = "\x00asm\x01\x00\x00\x00"

// EngineName is the engine name a fake Keep reports.
const EngineName = "fake-engine 1.0"

// Module returns a fake module running cmd:
//
//	exit N         return status N
//	trap           trap ("unreachable instruction executed")
//	fail MSG       fail to run with MSG
//	spin           loop until interrupted
//	block          sleep, ignoring interruption (a blocking WASI host call)
//	print TEXT     print TEXT to stdout
//	print-args     print PrintedArgs as JSON to stdout
//	cat            copy stdin to stdout
//	compile-error  fail to compile
//	compile-hang   never finish compiling
//	compile-bomb   take memory while compiling, 1 MiB at a time, until
//	               killed
func Module(cmd string) []byte { return []byte(Header + cmd) }

// Factory is the keep.EngineFactory of the fake engine.
func Factory() (engine.Engine, error) { return fakeEngine{}, nil }

// PrintedArgs is what the "print-args" command writes to stdout.
type PrintedArgs struct {
	Entrypoint string   `json:"entrypoint"`
	Args       []string `json:"args"`
	Env        []string `json:"env"`
}

type fakeEngine struct{}

func (fakeEngine) Name() string { return EngineName }

func (fakeEngine) Compile(ctx context.Context, wasm []byte) (engine.Module, error) {
	if !bytes.HasPrefix(wasm, []byte(Header)) {
		return nil, errors.New("fake engine: not a WebAssembly module")
	}
	cmd := string(wasm[len(Header):])
	switch cmd {
	case "compile-error":
		return nil, errors.New("fake engine: invalid opcode 0xff at offset 42")
	case "compile-hang":
		time.Sleep(24 * time.Hour)
	case "compile-bomb":
		var held [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
		}
	}
	return module{cmd: cmd}, nil
}

type module struct{ cmd string }

func (m module) Run(ctx context.Context, opts engine.RunOptions) (int, error) {
	verb, arg, _ := strings.Cut(m.cmd, " ")
	switch verb {
	case "exit":
		return strconv.Atoi(arg)
	case "trap":
		return 0, &engine.TrapError{Message: "unreachable instruction executed at fake+0x2a"}
	case "fail":
		return 0, errors.New(arg)
	case "spin":
		for ctx.Err() == nil {
		}
		return 0, fmt.Errorf("spin: %w", engine.ErrInterrupted)
	case "block":
		time.Sleep(24 * time.Hour)
		return 0, nil
	case "print":
		_, err := fmt.Fprintln(os.Stdout, arg)
		return 0, err
	case "print-args":
		err := json.NewEncoder(os.Stdout).Encode(PrintedArgs{Entrypoint: opts.Entrypoint, Args: opts.Args, Env: opts.Env})
		return 0, err
	case "cat":
		_, err := io.Copy(os.Stdout, os.Stdin)
		return 0, err
	case "touch":
		// What the run was given to populate, then a report of pages.
		if err := json.NewEncoder(os.Stdout).Encode(opts.Populate); err != nil {
			return 0, err
		}
		if opts.Touched != nil {
			opts.Touched(TouchedRanges)
		}
		return 0, nil
	}
	return 0, fmt.Errorf("fake engine: unknown command %q", m.cmd)
}

// TouchedRanges are what the fake module "touch" reports it wrote
// (engine.RunOptions.Touched).
var TouchedRanges = []engine.MemoryRange{{Offset: 0, Length: 8192}, {Offset: 65536, Length: 4096}}

// Processes lists the live Keep processes of container id.
func Processes(id string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && host.IsProcessOf(pid, id) {
			pids = append(pids, pid)
		}
	}
	return pids
}

var ids atomic.Int64

// ID returns a container ID unique to this process, derived from the test's
// name, so that Processes finds only this test's Keeps.
func ID(t testing.TB) string {
	name := nonAlnum.ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("%s-%d-%d", strings.ToLower(name), os.Getpid(), ids.Add(1))
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)
