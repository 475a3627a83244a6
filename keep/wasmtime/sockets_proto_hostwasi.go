//go:build enarx_sockets_proto && linux

package wasmtime

// Candidate (b'): wasmtime as the engine, but wasi_snapshot_preview1 served
// by Go host functions instead of wasmtime's WASI. Forwarding single
// descriptors to wasmtime's WASI does not work (TestProtoShadowDelegation:
// "missing required memory export" when Go calls it), so the Go side must
// own the whole descriptor table. This minimal version has stdio, args, env,
// clocks, randomness, TCP sockets and poll_oneoff, and no filesystem: every
// other import answers ENOSYS. It is only good enough to measure.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

const (
	wasiESUCCESS    = 0
	wasiEAGAIN      = 6
	wasiEBADF       = 8
	wasiECONNRESET  = 15
	wasiEINVAL      = 28
	wasiEIO         = 29
	wasiENOSYS      = 52
	wasiEPIPE       = 64
	wasiFileSocket  = 6
	wasiFileCharDev = 2
	wasiNonblock    = 4
)

type hostWasi struct {
	args, env []string
	stdout    io.Writer
	stderr    io.Writer
	fds       map[int32]int // guest fd -> host socket fd
	next      int32
	wake      [2]int // pipe; written to stop a blocked poll
	exit      *int32
	ctx       context.Context
}

func errnoOf(err error) int32 {
	var e unix.Errno
	if !errors.As(err, &e) {
		return wasiEIO
	}
	switch e {
	case unix.EAGAIN:
		return wasiEAGAIN
	case unix.EPIPE:
		return wasiEPIPE
	case unix.ECONNRESET:
		return wasiECONNRESET
	case unix.EBADF:
		return wasiEBADF
	case unix.EINVAL:
		return wasiEINVAL
	}
	return wasiEIO
}

func mem(c *wasmtime.Caller) []byte {
	return c.GetExport("memory").Memory().UnsafeData(c)
}

func le32(m []byte, p int32) uint32 { return binary.LittleEndian.Uint32(m[p:]) }

// iovecs returns the guest buffers of an iovec array.
func iovecs(m []byte, iovs, n int32) [][]byte {
	out := make([][]byte, 0, n)
	for i := int32(0); i < n; i++ {
		b, l := le32(m, iovs+8*i), le32(m, iovs+8*i+4)
		out = append(out, m[b:b+l])
	}
	return out
}

func putStrings(m []byte, list []string, ptrs, buf int32) {
	for i, s := range list {
		binary.LittleEndian.PutUint32(m[ptrs+int32(4*i):], uint32(buf))
		buf += int32(copy(m[buf:], s))
		m[buf] = 0
		buf++
	}
}

func sizes(m []byte, list []string, countPtr, sizePtr int32) int32 {
	n := 0
	for _, s := range list {
		n += len(s) + 1
	}
	binary.LittleEndian.PutUint32(m[countPtr:], uint32(len(list)))
	binary.LittleEndian.PutUint32(m[sizePtr:], uint32(n))
	return 0
}

// define puts the host functions in linker under wasi_snapshot_preview1,
// and an ENOSYS stub for any other import of mod from that module.
func (h *hostWasi) define(linker *wasmtime.Linker, mod *wasmtime.Module) error {
	const ns = "wasi_snapshot_preview1"
	fns := map[string]interface{}{
		"args_sizes_get":    func(c *wasmtime.Caller, a, b int32) int32 { return sizes(mem(c), h.args, a, b) },
		"args_get":          func(c *wasmtime.Caller, a, b int32) int32 { putStrings(mem(c), h.args, a, b); return 0 },
		"environ_sizes_get": func(c *wasmtime.Caller, a, b int32) int32 { return sizes(mem(c), h.env, a, b) },
		"environ_get":       func(c *wasmtime.Caller, a, b int32) int32 { putStrings(mem(c), h.env, a, b); return 0 },
		"clock_time_get": func(c *wasmtime.Caller, id int32, _ int64, p int32) int32 {
			var ts unix.Timespec
			clk := int32(unix.CLOCK_REALTIME)
			if id == 1 {
				clk = unix.CLOCK_MONOTONIC
			}
			unix.ClockGettime(clk, &ts)
			binary.LittleEndian.PutUint64(mem(c)[p:], uint64(ts.Nano()))
			return 0
		},
		"random_get": func(c *wasmtime.Caller, p, n int32) int32 {
			rand.Read(mem(c)[p : p+n])
			return 0
		},
		"sched_yield": func() int32 { return 0 },
		"proc_exit": func(code int32) *wasmtime.Trap {
			*h.exit = code
			return wasmtime.NewTrap("proc_exit")
		},
		"fd_prestat_get": func(fd, p int32) int32 { return wasiEBADF },
		"fd_fdstat_get": func(c *wasmtime.Caller, fd, p int32) int32 {
			m := mem(c)
			var typ byte
			switch {
			case fd <= 2:
				typ = wasiFileCharDev
			case h.fds[fd] != 0:
				typ = wasiFileSocket
			default:
				return wasiEBADF
			}
			clear(m[p : p+24])
			m[p] = typ
			binary.LittleEndian.PutUint64(m[p+8:], ^uint64(0))
			binary.LittleEndian.PutUint64(m[p+16:], ^uint64(0))
			return 0
		},
		"fd_fdstat_set_flags": func(fd, flags int32) int32 {
			if _, ok := h.fds[fd]; !ok && fd > 2 {
				return wasiEBADF
			}
			return 0 // host sockets are always non-blocking; Go asks for that
		},
		"sock_accept": func(c *wasmtime.Caller, fd, flags, p int32) int32 {
			hfd, ok := h.fds[fd]
			if !ok {
				return wasiEBADF
			}
			nfd, _, err := unix.Accept4(hfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err != nil {
				return errnoOf(err)
			}
			unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			g := h.next
			h.next++
			h.fds[g] = nfd
			binary.LittleEndian.PutUint32(mem(c)[p:], uint32(g))
			return 0
		},
		"sock_shutdown": func(fd, how int32) int32 {
			hfd, ok := h.fds[fd]
			if !ok {
				return wasiEBADF
			}
			var mode int
			switch how {
			case 1:
				mode = unix.SHUT_RD
			case 2:
				mode = unix.SHUT_WR
			default:
				mode = unix.SHUT_RDWR
			}
			if err := unix.Shutdown(hfd, mode); err != nil {
				return errnoOf(err)
			}
			return 0
		},
		"fd_close": func(fd int32) int32 {
			hfd, ok := h.fds[fd]
			if !ok {
				return wasiEBADF
			}
			delete(h.fds, fd)
			unix.Close(hfd)
			return 0
		},
		"fd_write": func(c *wasmtime.Caller, fd, iovs, n, p int32) int32 {
			m := mem(c)
			bufs := iovecs(m, iovs, n)
			var total int
			switch fd {
			case 1, 2:
				w := h.stdout
				if fd == 2 {
					w = h.stderr
				}
				for _, b := range bufs {
					k, _ := w.Write(b)
					total += k
				}
			default:
				hfd, ok := h.fds[fd]
				if !ok {
					return wasiEBADF
				}
				k, err := unix.Writev(hfd, bufs)
				if err != nil {
					return errnoOf(err)
				}
				total = k
			}
			binary.LittleEndian.PutUint32(m[p:], uint32(total))
			return 0
		},
		"fd_read": func(c *wasmtime.Caller, fd, iovs, n, p int32) int32 {
			hfd, ok := h.fds[fd]
			if !ok {
				return wasiEBADF
			}
			m := mem(c)
			k, err := unix.Readv(hfd, iovecs(m, iovs, n))
			if err != nil {
				return errnoOf(err)
			}
			binary.LittleEndian.PutUint32(m[p:], uint32(k))
			return 0
		},
		"poll_oneoff": h.pollOneoff,
	}
	for name, f := range fns {
		if err := linker.FuncWrap(ns, name, f); err != nil {
			return fmt.Errorf("define %s: %w", name, err)
		}
	}
	stubbed := map[string]bool{}
	for _, imp := range mod.Imports() {
		name := *imp.Name()
		if imp.Module() != ns || fns[name] != nil || stubbed[name] {
			continue
		}
		stubbed[name] = true
		ft := imp.Type().FuncType()
		err := linker.FuncNew(ns, name, ft, func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
			return []wasmtime.Val{wasmtime.ValI32(wasiENOSYS)}, nil
		})
		if err != nil {
			return fmt.Errorf("stub %s: %w", name, err)
		}
	}
	return nil
}

// pollOneoff waits on host sockets with ppoll. Subscriptions are 48 bytes
// (userdata, tag, then clock or fd), events 32 bytes.
func (h *hostWasi) pollOneoff(c *wasmtime.Caller, in, out, nsubs, neventsPtr int32) (int32, *wasmtime.Trap) {
	m := mem(c)
	var pfds []unix.PollFd
	var which []int32 // subscription index for pfds[i]
	var ready []int32 // subscriptions ready without waiting
	timeout := int64(-1)
	clockSub := int32(-1)
	for i := int32(0); i < nsubs; i++ {
		s := in + 48*i
		switch m[s+8] {
		case 0: // clock
			t := int64(binary.LittleEndian.Uint64(m[s+24:]))
			if binary.LittleEndian.Uint16(m[s+40:])&1 != 0 { // absolute
				var ts unix.Timespec
				unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
				t -= ts.Nano()
				if t < 0 {
					t = 0
				}
			}
			if timeout < 0 || t < timeout {
				timeout, clockSub = t, i
			}
		case 1, 2:
			fd := int32(le32(m, s+16))
			hfd, ok := h.fds[fd]
			if !ok {
				ready = append(ready, i) // stdio: always ready
				continue
			}
			ev := int16(unix.POLLIN)
			if m[s+8] == 2 {
				ev = unix.POLLOUT
			}
			pfds = append(pfds, unix.PollFd{Fd: int32(hfd), Events: ev})
			which = append(which, i)
		}
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(h.wake[0]), Events: unix.POLLIN})
	var tsp *unix.Timespec
	if len(ready) > 0 {
		timeout = 0
	}
	if timeout >= 0 {
		ts := unix.NsecToTimespec(timeout)
		tsp = &ts
	}
	for {
		_, err := unix.Ppoll(pfds, tsp, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errnoOf(err), nil
		}
		break
	}
	if h.ctx.Err() != nil {
		return 0, wasmtime.NewTrap("interrupted")
	}
	n := int32(0)
	event := func(i int32, errno uint16) {
		e := out + 32*n
		s := in + 48*i
		clear(m[e : e+32])
		copy(m[e:e+8], m[s:s+8])
		binary.LittleEndian.PutUint16(m[e+8:], errno)
		m[e+10] = m[s+8]
		if m[s+8] != 0 {
			binary.LittleEndian.PutUint64(m[e+16:], 1)
		}
		n++
	}
	for _, i := range ready {
		event(i, 0)
	}
	for k, p := range pfds[:len(which)] {
		if p.Revents != 0 {
			event(which[k], 0)
		}
	}
	if n == 0 && clockSub >= 0 {
		event(clockSub, 0)
	}
	binary.LittleEndian.PutUint32(m[neventsPtr:], uint32(n))
	return 0, nil
}

// wasmtimeSocketRun runs wasm on wasmtime with the Go WASI above, the
// listener ln as fd 3. It returns the exit status.
func wasmtimeSocketRun(ctx context.Context, wasm []byte, ln *net.TCPListener, stdout, stderr io.Writer) (int32, error) {
	f, err := ln.File() // a dup, blocking; make it non-blocking for Go's netpoll
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lfd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return 0, err
	}
	unix.SetNonblock(lfd, true)
	var exit int32 = -1
	h := &hostWasi{
		args: []string{"httpserver"}, env: []string{"FD_COUNT=4", "FD_NAMES=stdin:stdout:stderr:listener"},
		stdout: stdout, stderr: stderr, fds: map[int32]int{3: lfd}, next: 4, exit: &exit, ctx: ctx,
	}
	if err := unix.Pipe2(h.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return 0, err
	}
	defer func() {
		for _, fd := range h.fds {
			unix.Close(fd)
		}
		unix.Close(h.wake[0])
		unix.Close(h.wake[1])
	}()
	stop := context.AfterFunc(ctx, func() { unix.Write(h.wake[1], []byte{0}) })
	defer stop()

	engine := wasmtime.NewEngine()
	mod, err := wasmtime.NewModule(engine, wasm)
	if err != nil {
		return 0, fmt.Errorf("wasmtime: compile: %w", err)
	}
	store := wasmtime.NewStore(engine)
	defer store.Close()
	linker := wasmtime.NewLinker(engine)
	defer linker.Close()
	if err := h.define(linker, mod); err != nil {
		return 0, err
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, err = inst.GetFunc(store, "_start").Call(store)
	_ = t0
	if exit >= 0 {
		return exit, nil
	}
	return 0, err
}
