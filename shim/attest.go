package shim

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
)

// The attestation service a shim serves on its socket, beside the task API:
// fresh evidence from a running Keep, with a caller's nonce bound into it
// (`enarx attest`). Its one method takes and returns a BytesValue: the
// request is the JSON of attestRequest, the answer the evidence's canonical
// JSON (docs/attestation.md).
const (
	AttestationService = "enarx.keep.v1.Attestation"
	attestMethod       = "Attest"
)

type attestRequest struct {
	ID string `json:"id"`
	// Nonce is hex, at most attestation.MaxNonceSize bytes.
	Nonce string `json:"nonce,omitempty"`
}

func registerAttestation(server *ttrpc.Server, s *service) {
	server.RegisterService(AttestationService, &ttrpc.ServiceDesc{Methods: attestationMethods(s)})
}

// attestationMethods are the attestation service's handlers, by name.
func attestationMethods(s *service) map[string]ttrpc.Method {
	return map[string]ttrpc.Method{attestMethod: method(s.attest)}
}

func (s *service) attest(ctx context.Context, r *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	var req attestRequest
	if err := json.Unmarshal(r.GetValue(), &req); err != nil {
		return nil, toGRPC(fmt.Errorf("attest request: %w: %w", err, errdefs.ErrInvalidArgument))
	}
	nonce, err := parseNonce(req.Nonce)
	if err != nil {
		return nil, toGRPC(err)
	}
	t, err := s.get(req.ID, "")
	if err != nil {
		return nil, err
	}
	if st := t.current(); st != stateCreated && st != stateRunning {
		return nil, toGRPC(fmt.Errorf("task %s is %s: only a live Keep can attest: %w", req.ID, st, errdefs.ErrFailedPrecondition))
	}
	if t.keep == nil {
		return nil, toGRPC(fmt.Errorf("task %s is a pod sandbox: it runs no Keep, so there is nothing to attest: %w", req.ID, errdefs.ErrFailedPrecondition))
	}
	evidence, err := t.keep.Attest(ctx, nonce)
	if err != nil {
		return nil, toGRPC(fmt.Errorf("task %s: %w: %w", req.ID, err, errdefs.ErrUnavailable))
	}
	return wrapperspb.Bytes(evidence), nil
}

func parseNonce(s string) ([]byte, error) {
	nonce, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("nonce %q is not hex: %w", s, errdefs.ErrInvalidArgument)
	}
	if len(nonce) > attestation.MaxNonceSize {
		return nil, fmt.Errorf("nonce is %d bytes, at most %d are bound: %w", len(nonce), attestation.MaxNonceSize, errdefs.ErrInvalidArgument)
	}
	return nonce, nil
}

// Attest asks the shim of container id in namespace ns for fresh evidence
// from its Keep, with nonce (hex) bound into it. stateDir is containerd's
// state directory (/run/containerd by default), where the task's bundle
// records the shim's address.
func Attest(ctx context.Context, stateDir, ns, id, nonce string) ([]byte, error) {
	if _, err := parseNonce(nonce); err != nil {
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
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "unix", socketPath(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("connect to the shim of %s: %w", id, err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	req, err := json.Marshal(attestRequest{ID: id, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	var resp wrapperspb.BytesValue
	if err := client.Call(ctx, AttestationService, attestMethod, wrapperspb.Bytes(req), &resp); err != nil {
		return nil, fmt.Errorf("attest %s: %w", id, err)
	}
	return resp.GetValue(), nil
}
