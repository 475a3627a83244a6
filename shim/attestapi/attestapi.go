// Package attestapi is the wire format of the attestation service a shim
// serves on its socket beside the task API, and its client: fresh evidence
// from a running Keep, with a caller's nonce bound into it (`enarx attest`).
//
// It is apart from package shim, which serves it, so that the enarx CLI
// links only the client (ttrpc and a BytesValue) and not the shim with its
// task API, grpc and containerd's mount package.
package attestapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/attestation"
	"github.com/enarx/containerd-shim-enarx/shim/launcher"
)

// The service's one method takes and returns a BytesValue: the request is
// the JSON of a Request, the answer the evidence's canonical JSON
// (docs/attestation.md).
const (
	Service = "enarx.keep.v1.Attestation"
	Method  = "Attest"
)

// Request is what the Attest method is asked, as JSON.
type Request struct {
	ID string `json:"id"`
	// Nonce is hex, at most attestation.MaxNonceSize bytes.
	Nonce string `json:"nonce,omitempty"`
}

// ParseNonce decodes a request's hex nonce and checks its size. Its errors
// are errdefs.ErrInvalidArgument.
func ParseNonce(s string) ([]byte, error) {
	nonce, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("nonce %q is not hex: %w", s, errdefs.ErrInvalidArgument)
	}
	if len(nonce) > attestation.MaxNonceSize {
		return nil, fmt.Errorf("nonce is %d bytes, at most %d are bound: %w", len(nonce), attestation.MaxNonceSize, errdefs.ErrInvalidArgument)
	}
	return nonce, nil
}

// SocketPath is the path of the unix socket at a shim's address (as in a
// bundle's "address" file: unix://PATH).
func SocketPath(addr string) string { return launcher.SocketPath(addr) }

// Attest asks the shim of container id in namespace ns for fresh evidence
// from its Keep, with nonce (hex) bound into it. stateDir is containerd's
// state directory (/run/containerd by default), where the task's bundle
// records the shim's address.
func Attest(ctx context.Context, stateDir, ns, id, nonce string) ([]byte, error) {
	if _, err := ParseNonce(nonce); err != nil {
		return nil, err
	}
	bundle := filepath.Join(stateDir, "io.containerd.runtime.v2.task", ns, id)
	b, err := os.ReadFile(filepath.Join(bundle, "address"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no running task %s in namespace %s under %s: check --namespace, the container ID, and --state (containerd's state directory)", id, ns, stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("find the shim of %s: %w", id, err)
	}
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", SocketPath(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("connect to the shim of %s: %w", id, err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	req, err := json.Marshal(Request{ID: id, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	var resp wrapperspb.BytesValue
	if err := client.Call(ctx, Service, Method, wrapperspb.Bytes(req), &resp); err != nil {
		return nil, fmt.Errorf("attest %s: %w", id, err)
	}
	return resp.GetValue(), nil
}
