//go:build linux

// Package hostwasi implements WASI preview 1 (wasi_snapshot_preview1) as Go
// host functions on wasmtime, for workloads that need what wasmtime-go's own
// WASI cannot give them: sockets (docs/networking.md). The Go side owns the
// whole descriptor table: stdio, preopened directories, files opened in
// them, the sockets handed in by the host (listening or connected) and the
// connections accepted on them.
//
// It is Linux only: confinement to a preopened directory rests on openat2's
// RESOLVE_BENEATH, and waiting on ppoll.
package hostwasi

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// Config is what the workload sees of its environment.
type Config struct {
	// Args is argv, Args[0] being the program name.
	Args []string
	// Env holds "KEY=value" entries.
	Env []string
	// Stdin, Stdout and Stderr are descriptors 0, 1 and 2; nil is
	// /dev/null. The WASI does not close them.
	Stdin, Stdout, Stderr *os.File
	// Preopens are directories, at descriptors 3, 4, ... in this order.
	// A read-only one refuses opening for writing, creating, truncating,
	// removing and renaming.
	Preopens []engine.Preopen
	// Sockets are stream sockets, at the descriptors after the preopens,
	// in this order; a name cannot contain ':', and exactly one of File
	// and Acceptor is set. With sockets, FD_COUNT and FD_NAMES describe
	// every descriptor from 0 (see New). New duplicates each File, and the
	// duplicate shares the open file description: the socket is
	// non-blocking for the caller too from then on. The caller keeps and
	// closes its own. An Acceptor's connections become the workload's.
	Sockets []engine.Socket
	// BeforeInput, when not nil, is called once, with the guest's memory,
	// before the first host call that tells the module anything of its
	// container (see inputFree): what the module wrote until then depends
	// on the module alone, and on the clocks and random numbers.
	BeforeInput func(mem []byte)
}

// WASI is one instance's WASI state: its descriptor table and exit status.
// It serves one store; its host functions run on the goroutine that calls
// into the instance, so the table needs no lock.
type WASI struct {
	args, env []string
	// beforeInput is Config.BeforeInput until it is called.
	beforeInput func(mem []byte)
	fds         fdTable
	wake        [2]int // a pipe; a byte on it stops a blocking poll_oneoff
	// wakeMu orders Interrupt, from any goroutine, with Close closing
	// the pipe: a write must never reach a descriptor number reused since.
	wakeMu   sync.Mutex
	stopped  atomic.Bool
	exited   bool
	exitCode int32
	// interrupted: a host call trapped because of Interrupt.
	interrupted bool
}

// New opens cfg's preopens and duplicates its sockets' files. When there
// are sockets, it sets FD_COUNT and FD_NAMES in the environment as Enarx
// does, replacing any the caller put there: every descriptor from 0, named
// stdin, stdout, stderr, then each preopen's guest path, then each socket's
// name, separated by ':'.
func New(cfg Config) (*WASI, error) {
	w := &WASI{args: cfg.Args, env: cfg.Env, wake: [2]int{-1, -1}, beforeInput: cfg.BeforeInput}
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	for i, f := range []*os.File{cfg.Stdin, cfg.Stdout, cfg.Stderr} {
		if f == nil {
			var err error
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return nil, fmt.Errorf("hostwasi: stdio %d: %w", i, err)
			}
			w.fds.add(&entry{kind: kindStdio, stdio: i, file: f, hostFD: -1, stdioFD: rawFD(f), owned: true})
			continue
		}
		_, err := unix.IoctlGetTermios(rawFD(f), unix.TCGETS)
		w.fds.add(&entry{kind: kindStdio, stdio: i, tty: err == nil, file: f, hostFD: -1, stdioFD: rawFD(f)})
	}
	names := []string{"stdin", "stdout", "stderr"}
	for _, p := range cfg.Preopens {
		if len(cfg.Sockets) > 0 && strings.ContainsRune(p.GuestPath, ':') {
			return nil, fmt.Errorf("hostwasi: preopen %q at %q: a guest path with ':' cannot be listed in FD_NAMES", p.HostPath, p.GuestPath)
		}
		fd, err := unix.Open(p.HostPath, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("hostwasi: preopen %q at %q: %w", p.HostPath, p.GuestPath, err)
		}
		w.fds.add(&entry{kind: kindDir, hostFD: fd, preopen: p.GuestPath, readOnly: p.ReadOnly})
		names = append(names, p.GuestPath)
	}
	for _, s := range cfg.Sockets {
		e, err := openSocket(s)
		if err != nil {
			return nil, err
		}
		w.fds.add(e)
		names = append(names, s.Name)
	}
	if len(cfg.Sockets) > 0 {
		w.env = fdNamesEnv(cfg.Env, names)
	}
	if err := unix.Pipe2(w.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("hostwasi: wake pipe: %w", err)
	}
	ok = true
	return w, nil
}

// fdNamesEnv is env without its FD_COUNT and FD_NAMES entries, followed by
// the ones that name each descriptor from 0.
func fdNamesEnv(env, names []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, "FD_COUNT=") || strings.HasPrefix(kv, "FD_NAMES=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "FD_COUNT="+strconv.Itoa(len(names)), "FD_NAMES="+strings.Join(names, ":"))
}

// rawFD is f's descriptor, or -1. Unlike f.Fd it leaves f's blocking mode
// alone.
func rawFD(f *os.File) int {
	fd := -1
	if sc, err := f.SyscallConn(); err == nil {
		sc.Control(func(x uintptr) { fd = int(x) })
	}
	return fd
}

// Interrupt makes a poll_oneoff that blocks, or the next one, trap, so that
// a workload waiting in the host can be stopped. Wasm code itself is
// stopped by the engine's epoch interruption, or, on an engine without it
// (a Keep's), by the process's end. Safe from any goroutine, at
// any time, also during or after Close.
func (w *WASI) Interrupt() {
	if w.stopped.Swap(true) {
		return
	}
	w.wakeMu.Lock()
	defer w.wakeMu.Unlock()
	if w.wake[1] >= 0 {
		unix.Write(w.wake[1], []byte{0})
	}
}

// Interrupted reports whether a host call trapped because of Interrupt:
// the run was stopped from outside rather than failing by itself. Call it
// after the call into the instance has returned.
func (w *WASI) Interrupted() bool { return w.interrupted }

// Exited reports the status the workload gave proc_exit, if it called it.
// A run whose entrypoint returns a trap after proc_exit has exited.
func (w *WASI) Exited() (code int32, ok bool) { return w.exitCode, w.exited }

// Close closes every descriptor the workload still holds, except the
// caller's stdio files and Acceptors.
func (w *WASI) Close() error {
	w.fds.closeAll()
	w.wakeMu.Lock()
	defer w.wakeMu.Unlock()
	for i, fd := range w.wake {
		if fd >= 0 {
			unix.Close(fd)
			w.wake[i] = -1
		}
	}
	return nil
}
