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

// pollOneoff waits with ppoll on the sockets and stdio among the
// subscriptions (an Acceptor's listener on its PollFD), the earliest clock
// as the timeout, and the wake pipe (Interrupt). Files and directories are
// reported ready at once, as POSIX poll does; a descriptor that is not open
// gets an event with EBADF. Every clock whose time has come when ppoll
// returns gets an event.
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
	type clockWait struct {
		sub      uint32
		clk      int32
		deadline int64 // on clk
	}
	var clocks []clockWait
	for i := uint32(0); i < nsubs; i++ {
		s := subs[48*i:]
		switch s[8] {
		case eventClock:
			clk, ok := hostClock(int32(c.get32(in + 48*i + 16)))
			if !ok {
				bad = append(bad, i) // reported with EINVAL below
				continue
			}
			t := int64(c.get64(in + 48*i + 24))
			now := clockNow(clk)
			deadline := now + t
			if c.get32(in+48*i+40)&1 != 0 { // absolute
				deadline = t
			}
			clocks = append(clocks, clockWait{i, clk, deadline})
			if d := max(deadline-now, 0); timeout < 0 || d < timeout {
				timeout = d
			}
		case eventFdRead, eventFdWrite:
			e := w.fds.get(int32(c.get32(in + 48*i + 16)))
			switch {
			case e == nil:
				bad = append(bad, i)
			case e.pollFD() >= 0:
				ev := int16(unix.POLLIN)
				if s[8] == eventFdWrite {
					ev = unix.POLLOUT
				}
				pfds = append(pfds, unix.PollFd{Fd: int32(e.pollFD()), Events: ev})
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
		w.interrupted = true
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
		if subs[48*i+8] == eventClock {
			event(i, eInval, false)
		} else {
			event(i, eBadf, false)
		}
	}
	for _, i := range ready {
		event(i, eSuccess, false)
	}
	for k, p := range pfds[:len(which)] {
		if p.Revents != 0 {
			event(which[k], eSuccess, p.Revents&unix.POLLHUP != 0)
		}
	}
	earliest := -1
	for k, cw := range clocks {
		if clockNow(cw.clk) >= cw.deadline {
			event(cw.sub, eSuccess, false)
		}
		if earliest < 0 || cw.deadline < clocks[earliest].deadline {
			earliest = k
		}
	}
	if n == 0 && earliest >= 0 {
		// ppoll timed out a hair before a realtime deadline: the guest
		// waited for the clock, so it gets the clock.
		event(clocks[earliest].sub, eSuccess, false)
	}
	c.put32(nout, n)
	return eSuccess
}

func clockNow(clk int32) int64 {
	var ts unix.Timespec
	unix.ClockGettime(clk, &ts)
	return ts.Nano()
}

// pollFD is the host descriptor poll_oneoff waits on for e, or -1 for a
// descriptor that is always ready (files, directories).
func (e *entry) pollFD() int {
	switch {
	case e.acceptor != nil:
		return e.acceptor.PollFD()
	case e.kind == kindListener || e.kind == kindConn:
		return e.hostFD
	case e.kind == kindStdio:
		return e.stdioFD
	}
	return -1
}
