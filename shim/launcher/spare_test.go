package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/version"
)

// spareServer serves the spare's claim with a real ttrpc server at path:
// answer decides, given the claim, what the spare says.
func spareServer(t *testing.T, path string, answer func(Claim) error) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterService(SpareService, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		ClaimMethod: func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req wrapperspb.BytesValue
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			var c Claim
			if err := json.Unmarshal(req.GetValue(), &c); err != nil {
				return nil, err
			}
			if err := answer(c); err != nil {
				return nil, err
			}
			return &wrapperspb.BytesValue{}, nil
		},
	}})
	go s.Serve(context.Background(), l)
	t.Cleanup(func() { s.Close() })
}

// TestStartClaimsSpare is start for a task with no shim of its group while
// a spare listens: the spare is claimed, moves to the group's socket and
// serves it; no server is started.
func TestStartClaimsSpare(t *testing.T) {
	dir := t.TempDir()
	const grpc = "/run/containerd/containerd.sock"
	spare := SpareSocketPath(dir, grpc, "default")
	claims := make(chan Claim, 1)
	spareServer(t, spare, func(c Claim) error {
		if err := os.Rename(spare, c.Socket); err != nil {
			return err
		}
		claims <- c
		return nil
	})
	dirBundle := t.TempDir()
	writeSpec(t, dirBundle, nil)
	t.Chdir(dirBundle)
	params := &bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default", ContainerdGrpcAddress: grpc, SocketDir: &dir}
	var out bytes.Buffer
	server := filepath.Join(t.TempDir(), ServerBinary) // missing: nothing may start it
	if err := Start(Flags{ID: "c1", Namespace: "default", Debug: true}, bytes.NewReader(marshal(t, params)), &out, server); err != nil {
		t.Fatalf("start: %v", err)
	}
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(out.Bytes(), &result); err != nil {
		t.Fatalf("start answered %q: %v", out.Bytes(), err)
	}
	want := SocketAddress(dir, grpc, "default", "c1")
	if result.Address != want {
		t.Errorf("address %q, want the group's %q", result.Address, want)
	}
	select {
	case c := <-claims:
		wantClaim := Claim{ID: "c1", Bundle: dirBundle, Namespace: "default", Address: grpc, Socket: SocketPath(want),
			Server: server, Revision: version.Revision, Debug: true}
		if c != wantClaim {
			t.Errorf("claim %+v, want %+v", c, wantClaim)
		}
	default:
		t.Fatal("the spare was not claimed")
	}
	if !Serving(SocketPath(want), time.Second) {
		t.Error("nothing serves the group's socket after the claim")
	}
}

// TestClaimRefused: a spare that refuses, or none, leaves start to start a
// server; the refusal's reason is in the error.
func TestClaimRefused(t *testing.T) {
	dir := t.TempDir()
	spare := filepath.Join(dir, "spare")
	if err := ClaimSpare(spare, Claim{ID: "c1"}, time.Second); !errors.Is(err, ErrNoSpare) {
		t.Errorf("claim without a spare: %v, want ErrNoSpare", err)
	}
	spareServer(t, spare, func(Claim) error {
		return status.Error(codes.FailedPrecondition, "this spare is an older build")
	})
	err := ClaimSpare(spare, Claim{ID: "c1"}, time.Second)
	if err == nil || errors.Is(err, ErrNoSpare) || !strings.Contains(err.Error(), "this spare is an older build") || !strings.Contains(err.Error(), "code 9") {
		t.Errorf("refused claim: %v", err)
	}
	// start then starts a server of its own (missing here, so it fails
	// saying so) and leaves the spare where it is.
	dirBundle := t.TempDir()
	writeSpec(t, dirBundle, nil)
	t.Chdir(dirBundle)
	const grpc = "/run/containerd/containerd.sock"
	spareServer(t, SpareSocketPath(dir, grpc, "default"), func(Claim) error { return status.Error(codes.FailedPrecondition, "no") })
	params := &bootapi.BootstrapParams{InstanceID: "c2", Namespace: "default", ContainerdGrpcAddress: grpc, SocketDir: &dir}
	err = Start(Flags{ID: "c2", Namespace: "default"}, bytes.NewReader(marshal(t, params)), &bytes.Buffer{}, filepath.Join(t.TempDir(), ServerBinary))
	if err == nil || !strings.Contains(err.Error(), "start shim server") {
		t.Errorf("start with a refusing spare: %v, want it to start a server", err)
	}
	if !Serving(SpareSocketPath(dir, grpc, "default"), time.Second) {
		t.Error("the refusing spare's socket is gone")
	}
}

// TestClaimStatus decodes a ttrpc answer's status as ttrpc encodes it.
func TestClaimStatus(t *testing.T) {
	ok, err := proto.Marshal(&ttrpc.Response{Payload: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := claimStatus(ok); err != nil {
		t.Errorf("OK answer: %v", err)
	}
	refused, err := proto.Marshal(&ttrpc.Response{Status: status.New(codes.InvalidArgument, "bad claim").Proto()})
	if err != nil {
		t.Fatal(err)
	}
	if err := claimStatus(refused); err == nil || !strings.Contains(err.Error(), "code 3") || !strings.Contains(err.Error(), "bad claim") {
		t.Errorf("refused answer: %v", err)
	}
	if err := claimStatus([]byte{0x0a, 0x05, 0x08}); err == nil {
		t.Error("malformed answer accepted")
	}
}
