package launcher

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// A shim server whose last task is deleted does not exit at once: it
// becomes the spare of its daemon and namespace, listening at
// SpareSocketPath, for SpareLinger. The next `start` there that finds no
// server for its group claims the spare (Claim) instead of starting a new
// server: the server's executable, Go runtime, its connection to containerd
// and its per-type caches are ready, and the spare starts the container's
// Keep while containerd is still connecting. A server serves one group at a
// time, as before: only a server with nothing left to serve is a spare, and
// there is at most one spare per daemon and namespace.

// SpareService and ClaimMethod are the ttrpc service and method of a
// spare's claim. The request and the response are a
// google.protobuf.BytesValue: the request's value is a Claim in JSON, the
// response's is empty.
const (
	SpareService = "enarx.shim.v1.Spare"
	ClaimMethod  = "Claim"
)

// SpareLinger is how long a spare waits to be claimed before it exits.
const SpareLinger = time.Minute

// spareGroup names the spare's socket: '@' is in no containerd identifier,
// so no container or pod has this group.
const spareGroup = "@spare"

// SpareSocketPath is where the spare shim server of (address, namespace)
// listens, in the socket directory dir.
func SpareSocketPath(dir, address, ns string) string {
	return SocketPath(SocketAddress(dir, address, ns, spareGroup))
}

// Claim is what `start` tells the spare it claims: the group it is to
// serve and where.
type Claim struct {
	// ID is the group (the container's ID, or its pod's) and Bundle the
	// directory of the container `start` runs for.
	ID     string `json:"id"`
	Bundle string `json:"bundle"`
	// Namespace and Address must be the spare's own: a server serves one
	// daemon and namespace.
	Namespace string `json:"namespace"`
	Address   string `json:"address"`
	// Socket is the path the spare's socket moves to, the group's.
	Socket string `json:"socket"`
	// Server and Revision are the server binary `start` would execute
	// and the launcher's build: a spare of another build does not serve.
	Server   string `json:"server"`
	Revision string `json:"revision"`
	Debug    bool   `json:"debug"`
}

// ErrNoSpare is ClaimSpare's error when no spare listens.
var ErrNoSpare = errors.New("no spare shim server")

// ttrpc's framing (github.com/containerd/ttrpc: channel.go, request.proto).
const (
	ttrpcHeaderLength   = 10
	ttrpcTypeRequest    = 1
	ttrpcTypeResponse   = 2
	ttrpcMaxMessage     = 4 << 20
	requestService      = 1
	requestMethod       = 2
	requestPayload      = 3
	requestTimeoutNanos = 4
	responseStatus      = 1
	statusCode          = 1
	statusMessage       = 2
	bytesValueValue     = 1
)

// ClaimSpare asks the spare listening at path to serve c, and waits up to
// timeout for its answer. The caller holds the lock of the socket
// directory (see Start), so that the spare neither exits nor is claimed by
// another start meanwhile. It fails with ErrNoSpare when none listens.
func ClaimSpare(path string, c Claim, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return fmt.Errorf("%w at %s: %w", ErrNoSpare, path, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	claim, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req := appendString(nil, requestService, SpareService)
	req = appendString(req, requestMethod, ClaimMethod)
	req = appendMessage(req, requestPayload, appendMessage(nil, bytesValueValue, claim))
	req = appendVarint(req, requestTimeoutNanos, uint64(timeout))
	// Stream 1: a client's streams are odd, from 1.
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	frame = binary.BigEndian.AppendUint32(frame, 1)
	frame = append(frame, ttrpcTypeRequest, 0)
	if _, err := conn.Write(append(frame, req...)); err != nil {
		return fmt.Errorf("claim the spare shim server at %s: %w", path, err)
	}
	var h [ttrpcHeaderLength]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		return fmt.Errorf("claim the spare shim server at %s: no answer: %w", path, err)
	}
	n := binary.BigEndian.Uint32(h[:4])
	if binary.BigEndian.Uint32(h[4:8]) != 1 || h[8] != ttrpcTypeResponse || n > ttrpcMaxMessage {
		return fmt.Errorf("claim the spare shim server at %s: not a ttrpc answer", path)
	}
	resp := make([]byte, n)
	if _, err := io.ReadFull(conn, resp); err != nil {
		return fmt.Errorf("claim the spare shim server at %s: %w", path, err)
	}
	return claimStatus(resp)
}

// claimStatus is the error of a ttrpc Response whose status is not OK.
func claimStatus(resp []byte) error {
	var code uint64
	var msg string
	err := walk(resp, func(num protowire.Number, typ protowire.Type, _ uint64, v []byte) error {
		if num != responseStatus || typ != protowire.BytesType {
			return nil
		}
		return walk(v, func(num protowire.Number, typ protowire.Type, x uint64, v []byte) error {
			switch {
			case num == statusCode && typ == protowire.VarintType:
				code = x
			case num == statusMessage && typ == protowire.BytesType:
				msg = string(v)
			}
			return nil
		})
	})
	switch {
	case err != nil:
		return fmt.Errorf("claim: malformed answer: %w", err)
	case code != 0:
		return fmt.Errorf("the spare shim server refused the claim (code %d): %s", code, msg)
	}
	return nil
}

// LockDir takes the lock of the socket directory dir, which decides who
// listens where in it: start, and a server that becomes the spare or stops
// being it. unlock releases it. Without the directory (it cannot be
// opened) there is no lock, and unlock does nothing.
func LockDir(dir string) (unlock func()) {
	d, err := os.Open(dir)
	if err != nil {
		return func() {}
	}
	_ = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
	return func() { d.Close() } // and the lock with it
}

// ExecutableDeleted reports whether the running executable was removed or
// replaced since it started.
func ExecutableDeleted() bool {
	exe, err := os.Readlink("/proc/self/exe")
	return err == nil && strings.HasSuffix(exe, " (deleted)")
}
