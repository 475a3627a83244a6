package shim

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/shim/attestapi"
)

// The attestation service a shim serves on its socket, beside the task API:
// fresh evidence from a running Keep, with a caller's nonce bound into it
// (`enarx attest`). Its wire format and client are package attestapi.

func registerAttestation(server *ttrpc.Server, s *service) {
	server.RegisterService(attestapi.Service, &ttrpc.ServiceDesc{Methods: attestationMethods(s)})
}

// attestationMethods are the attestation service's handlers, by name.
func attestationMethods(s *service) map[string]ttrpc.Method {
	return map[string]ttrpc.Method{attestapi.Method: method(s.attest)}
}

func (s *service) attest(ctx context.Context, r *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	var req attestapi.Request
	if err := json.Unmarshal(r.GetValue(), &req); err != nil {
		return nil, toGRPC(fmt.Errorf("attest request: %w: %w", err, errdefs.ErrInvalidArgument))
	}
	nonce, err := attestapi.ParseNonce(req.Nonce)
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
