package guest

import (
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// TestReceiveHandOver: a Keep started ahead takes the hand-over its shim
// sends, and refuses, without a panic, one whose byte and descriptors
// disagree, or none.
func TestReceiveHandOver(t *testing.T) {
	for _, c := range []struct {
		name  string
		mask  byte
		fds   int
		close bool
		err   string
	}{
		{name: "rootfs only", mask: keep.HandOverRootfs, fds: 1},
		{name: "no rootfs", mask: 0, fds: 0},
		{name: "fewer descriptors", mask: keep.HandOverRootfs | 1, fds: 1, err: "not what a shim sends"},
		{name: "more descriptors", mask: 0, fds: 2, err: "not what a shim sends"},
		{name: "unknown bits", mask: 0x80, fds: 0, err: "not what a shim sends"},
		{name: "shim gone", close: true, err: "hand-over"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctl, remote, err := keep.ControlSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer ctl.Close()
			keepEnd, err := netFileConn(remote)
			if err != nil {
				t.Fatal(err)
			}
			defer keepEnd.Close()
			if c.close {
				ctl.Close()
			} else {
				var fds []int
				for range c.fds {
					f, err := os.Open(os.DevNull)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					fds = append(fds, int(f.Fd()))
				}
				var oob []byte
				if len(fds) > 0 {
					oob = unix.UnixRights(fds...)
				}
				if _, _, err := ctl.(*net.UnixConn).WriteMsgUnix([]byte{c.mask}, oob, nil); err != nil {
					t.Fatal(err)
				}
			}
			tree, err := receiveHandOver(keepEnd)
			if tree != nil {
				defer tree.Close()
			}
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("receiveHandOver: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("receiveHandOver: %v, want an error with %q", err, c.err)
			case c.err == "" && (tree != nil) != (c.mask&keep.HandOverRootfs != 0):
				t.Fatalf("tree %v, want one only when the byte says so", tree)
			}
		})
	}
}

// netFileConn is the connection of f, the Keep's end, as Main makes it.
func netFileConn(f *os.File) (net.Conn, error) {
	defer f.Close()
	return net.FileConn(f)
}
