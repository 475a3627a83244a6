package sockets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// connect creates a socket of type typ in the namespace and connects it to
// ap within ctx. The socket it returns is non-blocking.
func (t *nsThread) connect(ctx context.Context, ap netip.AddrPort, typ int) (int, error) {
	family, sa, err := t.sockaddr(ap)
	if err != nil {
		return -1, err
	}
	fd, err := t.socket(family, typ|unix.SOCK_NONBLOCK)
	if err != nil {
		return -1, err
	}
	if err := connectFD(ctx, fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connectFD connects the non-blocking socket fd to sa, waiting within ctx.
// It runs only while a Set opens, so it waits in poll(2) on its thread
// rather than in the runtime's poller, looking at ctx between short polls.
func connectFD(ctx context.Context, fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	if errors.Is(err, unix.EINTR) {
		err = unix.EINPROGRESS // the attempt goes on in the kernel
	}
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINPROGRESS) {
		return fmt.Errorf("connect: %w", err)
	}
	const slice = 50 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("connect: %w", unix.ETIMEDOUT)
			}
			return fmt.Errorf("connect: %w", err)
		}
		wait := slice
		if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
			wait = max(time.Until(d), time.Millisecond)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(wait/time.Millisecond))
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("connect: poll: %w", err)
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("connect: SO_ERROR: %w", err)
		}
		if soerr != 0 {
			return fmt.Errorf("connect: %w", unix.Errno(soerr))
		}
		return nil
	}
}
