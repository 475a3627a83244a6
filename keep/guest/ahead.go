package guest

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep"
)

// receiveHandOver reads what the shim hands a Keep started ahead, the first
// message on its control socket: the container's stdio, put in place of the
// /dev/null the Keep started with, and a detached tree of the root
// filesystem, returned for the Keep to attach (confine.Spec.AttachRootTree).
func receiveHandOver(ctl net.Conn) (*os.File, error) {
	uc, ok := ctl.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("hand-over: the control socket is a %T, not a unix socket", ctl)
	}
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, fmt.Errorf("hand-over: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("hand-over: %w", err)
		}
		for _, m := range msgs {
			rights, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, fmt.Errorf("hand-over: %w", err)
			}
			fds = append(fds, rights...)
		}
	}
	mask := b[0]
	if n != 1 || mask&^(keep.HandOverRootfs|7) != 0 || len(fds) != bits.OnesCount8(mask) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, errors.New("hand-over: not what a shim sends (one byte, and a descriptor for each of its bits)")
	}
	for std := range 3 {
		if mask&(1<<std) == 0 {
			continue
		}
		err := unix.Dup3(fds[0], std, 0)
		unix.Close(fds[0])
		fds = fds[1:]
		if err != nil {
			return nil, fmt.Errorf("hand-over: fd %d: %w", std, err)
		}
	}
	if mask&keep.HandOverRootfs == 0 {
		return nil, nil
	}
	return os.NewFile(uintptr(fds[0]), "rootfs-tree"), nil
}
