package tlssock_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/tlssock"
)

// result is one side of a loopback exchange.
type result struct {
	state *tlssock.State
	err   error
}

// exchange listens with srv on network, dials with cli, echoes one message,
// and returns both sides' states (or errors).
func exchange(tb testing.TB, network string, srv, cli *tlssock.Config) (server, client result) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := tlssock.Listen(ctx, network, "127.0.0.1:0", srv)
	if err != nil {
		tb.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s, err := tlssock.ConnectionState(c)
		if err != nil {
			done <- result{err: err}
			return
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil {
			_, err = c.Write(buf[:n])
		}
		done <- result{state: s, err: err}
	}()
	client = dialEcho(ctx, network, l.Addr().String(), cli)
	if client.err != nil && network != "tcp" {
		l.Close() // a failed DTLS client leaves Accept waiting
	}
	server = <-done
	return server, client
}

func dialEcho(ctx context.Context, network, addr string, cli *tlssock.Config) result {
	c, err := tlssock.Dial(ctx, network, addr, cli)
	if err != nil {
		return result{err: err}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := tlssock.ConnectionState(c)
	if err != nil {
		return result{err: err}
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return result{state: s, err: err}
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err == nil && string(buf[:n]) != "ping" {
		err = io.ErrUnexpectedEOF
	}
	return result{state: s, err: err}
}
