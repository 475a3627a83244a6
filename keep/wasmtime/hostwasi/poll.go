//go:build linux

package hostwasi

import (
	"github.com/bytecodealliance/wasmtime-go/v39"
	"golang.org/x/sys/unix"
)

// Subscription tags.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2
)

// pollOneoff waits with ppoll on the sockets among the subscriptions, the
// earliest clock as the timeout, and the wake pipe (Interrupt). Other
// descriptors (stdio, files, directories) are reported ready at once.
// Subscriptions are 48 bytes: userdata u64, tag u8, then at 16 either a
// clock (id u32, timeout u64 at 24, precision u64 at 32, flags u16 at 40)
// or an fd (u32). Events are 32 bytes: userdata, errno u16 at 8, type u8 at
// 10, nbytes u64 at 16, flags u16 at 24.
func pollOneoff(w *WASI, c *call) errno {
	in, out, nsubs, nout := c.u32(0), c.u32(1), c.u32(2), c.u32(3)
	if nsubs == 0 {
		return eInval
	}
	subs := c.bytes(in, 48*nsubs)
	c.bytes(out, 32*nsubs) // fault now rather than half way through
	var pfds []unix.PollFd
	var which []uint32 // subscription index of pfds[i]
	var ready []uint32 // ready without waiting
	var bad []uint32   // EBADF
	timeout := int64(-1)
	clockSub := int64(-1)
	for i := uint32(0); i < nsubs; i++ {
		s := subs[48*i:]
		switch s[8] {
		case eventClock:
			id := int32(c.get32(in + 48*i + 16))
			t := int64(c.get64(in + 48*i + 24))
			if c.get32(in+48*i+40)&1 != 0 { // absolute
				clk, ok := hostClock(id)
				if !ok {
					return eInval
				}
				var ts unix.Timespec
				unix.ClockGettime(clk, &ts)
				t = max(t-ts.Nano(), 0)
			}
			if timeout < 0 || t < timeout {
				timeout, clockSub = t, int64(i)
			}
		case eventFdRead, eventFdWrite:
			e := w.fds.get(int32(c.get32(in + 48*i + 16)))
			switch {
			case e == nil:
				bad = append(bad, i)
			case e.kind == kindListener || e.kind == kindConn:
				ev := int16(unix.POLLIN)
				if s[8] == eventFdWrite {
					ev = unix.POLLOUT
				}
				pfds = append(pfds, unix.PollFd{Fd: int32(e.hostFD), Events: ev})
				which = append(which, i)
			default:
				ready = append(ready, i)
			}
		default:
			return eInval
		}
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(w.wake[0]), Events: unix.POLLIN})
	if len(ready)+len(bad) > 0 {
		timeout = 0
	}
	var tsp *unix.Timespec
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
			return errnoOf(err)
		}
		break
	}
	if w.stopped.Load() {
		c.trap = wasmtime.NewTrap("hostwasi: interrupted")
		return eSuccess
	}
	n := uint32(0)
	event := func(i uint32, e errno, hup bool) {
		ev := c.bytes(out+32*n, 32)
		s := subs[48*i:]
		clear(ev)
		copy(ev[:8], s[:8])
		ev[8], ev[9] = byte(e), byte(e>>8)
		ev[10] = s[8]
		if s[8] != eventClock && e == eSuccess {
			ev[16] = 1 // nbytes: unknown; at least one
			if hup {
				ev[24] = 1 // fd_readwrite_hangup
			}
		}
		n++
	}
	for _, i := range bad {
		event(i, eBadf, false)
	}
	for _, i := range ready {
		event(i, eSuccess, false)
	}
	for k, p := range pfds[:len(which)] {
		if p.Revents != 0 {
			event(which[k], eSuccess, p.Revents&unix.POLLHUP != 0)
		}
	}
	if n == 0 && clockSub >= 0 {
		event(uint32(clockSub), eSuccess, false)
	}
	c.put32(nout, n)
	return eSuccess
}
