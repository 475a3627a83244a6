//go:build linux

package hostwasi

import (
	"encoding/binary"
	"time"

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
// as the timeout, and the wake pipe (Interrupt), and reports what is ready,
// as wasmtime's WASI does: files are always ready (nbytes 1, hangup at
// their end), stdio and files only in the direction they go, and any other
// descriptor, or a clock other than realtime and monotonic, fails the whole
// call (EBADF, EINVAL). Events come in subscription order.
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
	if nsubs == 1 && subs[8] == eventClock && c.get32(in+16) <= 3 && c.get32(in+40)&1 == 0 {
		// One relative clock, of any kind: a sleep, reported as
		// wasmtime's WASI reports it (nbytes 1).
		return w.sleep(c, int64(c.get64(in+24)), func() {
			ev := c.bytes(out, 32)
			clear(ev)
			copy(ev[:8], subs[:8])
			ev[16] = 1
			c.put32(nout, 1)
		})
	}
	type sub struct {
		tag      uint8
		clk      int32
		deadline int64 // on clk
		e        *entry
		pfd      int // index in pfds, -1 when ready without waiting
	}
	list := make([]sub, nsubs)
	var pfds []unix.PollFd
	timeout := int64(-1)
	for i := range list {
		s, at := &list[i], in+48*uint32(i)
		s.tag, s.pfd = subs[48*i+8], -1
		switch s.tag {
		case eventClock:
			var clk int32
			switch c.get32(at + 16) {
			case 0:
				clk = unix.CLOCK_REALTIME
			case 1:
				clk = unix.CLOCK_MONOTONIC
			default:
				return eInval
			}
			flags := c.get32(at+40) & 0xffff
			if flags&^1 != 0 {
				return eInval
			}
			t := int64(c.get64(at + 24))
			now := clockNow(clk)
			s.clk, s.deadline = clk, now+t
			if flags&1 != 0 { // absolute
				s.deadline = t
			}
			if d := max(s.deadline-now, 0); timeout < 0 || d < timeout {
				timeout = d
			}
		case eventFdRead, eventFdWrite:
			e := w.fds.get(int32(c.get32(at + 16)))
			if e == nil {
				return eBadf
			}
			s.e = e
			switch {
			case e.kind == kindFile:
			case e.stream != nil && e.stream.Ready(s.tag == eventFdWrite):
				// Data the stream holds, or room: ready without waiting,
				// and without a look at the descriptor.
			case e.kind == kindStdio && (e.stdio == 0) == (s.tag == eventFdRead),
				e.kind == kindListener && s.tag == eventFdRead, e.kind == kindConn:
				ev := int16(unix.POLLIN)
				if s.tag == eventFdWrite {
					ev = unix.POLLOUT
				}
				s.pfd = len(pfds)
				pfds = append(pfds, unix.PollFd{Fd: int32(e.pollFD()), Events: ev})
			default:
				return eBadf
			}
			if s.pfd < 0 {
				timeout = 0 // a file, or a ready stream, is ready now
			}
		default:
			return eInval
		}
	}
	wake := len(pfds)
	pfds = append(pfds, unix.PollFd{Fd: int32(w.wake[0]), Events: unix.POLLIN})
	for {
		var tsp *unix.Timespec
		if timeout >= 0 {
			ts := unix.NsecToTimespec(timeout)
			tsp = &ts
		}
		_, err := unix.Ppoll(pfds, tsp, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errnoOf(err)
		}
		break
	}
	if w.stopped.Load() || pfds[wake].Revents != 0 {
		w.interrupted = true
		c.trap = "hostwasi: interrupted"
		return eSuccess
	}
	n := uint32(0)
	event := func(i int, nbytes uint64, hup bool) {
		ev := c.bytes(out+32*n, 32)
		clear(ev)
		copy(ev[:8], subs[48*i:48*i+8])
		ev[10] = list[i].tag
		binary.LittleEndian.PutUint64(ev[16:], nbytes)
		if hup {
			ev[24] = 1 // fd_readwrite_hangup
		}
		n++
	}
	clockReady := func() []bool {
		r := make([]bool, len(list))
		for i, s := range list {
			r[i] = s.tag == eventClock && clockNow(s.clk) >= s.deadline
		}
		return r
	}
	ready := clockReady()
	got := false
	for i, s := range list {
		switch {
		case s.tag == eventClock:
			if ready[i] {
				event(i, 0, false)
			}
		case s.pfd < 0 && s.e.stream != nil: // a ready stream
			event(i, 1, false)
		case s.pfd < 0: // a file
			hup := false
			if s.tag == eventFdRead {
				var st unix.Stat_t
				if unix.Fstat(s.e.hostFD, &st) == nil && uint64(st.Size) <= s.e.pos {
					hup = true
				}
			}
			event(i, 1, hup)
		case pfds[s.pfd].Revents != 0:
			event(i, 1, pfds[s.pfd].Revents&unix.POLLHUP != 0)
		default:
			continue
		}
		got = true
	}
	if !got {
		// ppoll timed out a hair before a realtime deadline: the guest
		// waited for the clock, so it gets the earliest.
		earliest := -1
		for i, s := range list {
			if s.tag == eventClock && (earliest < 0 || s.deadline < list[earliest].deadline) {
				earliest = i
			}
		}
		if earliest >= 0 {
			event(earliest, 0, false)
		}
	}
	c.put32(nout, n)
	return eSuccess
}

// sleep waits d nanoseconds or until Interrupt, then calls done.
func (w *WASI) sleep(c *call, d int64, done func()) errno {
	pfds := []unix.PollFd{{Fd: int32(w.wake[0]), Events: unix.POLLIN}}
	deadline := clockNow(unix.CLOCK_MONOTONIC) + max(d, 0)
	for {
		ts := unix.NsecToTimespec(max(deadline-clockNow(unix.CLOCK_MONOTONIC), 0))
		_, err := unix.Ppoll(pfds, &ts, nil)
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
		c.trap = "hostwasi: interrupted"
		return eSuccess
	}
	done()
	return eSuccess
}

// clockNow reads a clock of hostClock's. Go's clocks are read through the
// vDSO, a system call is not: clock_time_get is the call a Go workload
// makes most (a dozen per HTTP request), and a system call costs several
// times more than the read on a VM.
func clockNow(clk int32) int64 {
	switch clk {
	case unix.CLOCK_REALTIME:
		return time.Now().UnixNano()
	case unix.CLOCK_MONOTONIC:
		return monoBase + int64(time.Since(monoStart))
	}
	var ts unix.Timespec
	unix.ClockGettime(clk, &ts)
	return ts.Nano()
}

// monoBase is CLOCK_MONOTONIC at monoStart: Go's monotonic clock is
// CLOCK_MONOTONIC, so the two advance together and clockNow's readings
// are CLOCK_MONOTONIC's to within the two reads here.
var monoStart, monoBase = func() (time.Time, int64) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now(), ts.Nano()
}()

// pollFD is the host descriptor poll_oneoff waits on for e, or -1 for a
// descriptor that is always ready (files, directories).
func (e *entry) pollFD() int {
	switch {
	case e.acceptor != nil:
		return e.acceptor.PollFD()
	case e.stream != nil:
		return e.stream.PollFD()
	case e.kind == kindListener || e.kind == kindConn:
		return e.hostFD
	case e.kind == kindStdio:
		return e.stdioFD
	}
	return -1
}
