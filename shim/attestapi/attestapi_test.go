package attestapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/enarx/containerd-shim-enarx/attestation"
)

// The names are on the wire: shims and CLIs of other versions must agree.
func TestWireNames(t *testing.T) {
	if Service != "enarx.keep.v1.Attestation" || Method != "Attest" {
		t.Errorf("service %q method %q", Service, Method)
	}
	b, err := json.Marshal(Request{ID: "hello", Nonce: "00ff"})
	if err != nil || string(b) != `{"id":"hello","nonce":"00ff"}` {
		t.Errorf("request JSON %s, %v", b, err)
	}
	if b, _ := json.Marshal(Request{ID: "hello"}); string(b) != `{"id":"hello"}` {
		t.Errorf("request JSON without a nonce %s", b)
	}
}

func TestParseNonce(t *testing.T) {
	max := strings.Repeat("ab", attestation.MaxNonceSize)
	for _, c := range []struct {
		in   string
		want int
		err  string
	}{
		{"", 0, ""},
		{"00ff", 2, ""},
		{"CAFE", 2, ""},
		{max, attestation.MaxNonceSize, ""},
		{max + "ab", 0, "nonce is 65 bytes, at most 64 are bound"},
		{"xyz", 0, `nonce "xyz" is not hex`},
		{"abc", 0, `nonce "abc" is not hex`},
	} {
		got, err := ParseNonce(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("ParseNonce(%q) = %v, want an invalid argument %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != c.want {
			t.Errorf("ParseNonce(%q) = %x, %v", c.in, got, err)
		}
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/containerd/s/abc": "/run/containerd/s/abc",
		"/run/containerd/s/abc":        "/run/containerd/s/abc",
	} {
		if got := SocketPath(in); got != want {
			t.Errorf("SocketPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// shortDir is a directory short enough for a unix socket path (t.TempDir
// may not be).
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "attest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeAddress records addr as the shim address of ns/id under stateDir, as
// containerd does in the task's bundle.
func writeAddress(t *testing.T, stateDir, ns, id, addr string) {
	bundle := filepath.Join(stateDir, "io.containerd.runtime.v2.task", ns, id)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serve serves the attestation service at sock with handler.
func serve(t *testing.T, sock string, handler func(Request) ([]byte, error)) {
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	server.RegisterService(Service, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		Method: func(_ context.Context, unmarshal func(any) error) (any, error) {
			var in wrapperspb.BytesValue
			if err := unmarshal(&in); err != nil {
				return nil, err
			}
			var req Request
			if err := json.Unmarshal(in.GetValue(), &req); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			b, err := handler(req)
			if err != nil {
				return nil, err
			}
			return wrapperspb.Bytes(b), nil
		},
	}})
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go server.Serve(context.Background(), l)
	t.Cleanup(func() { server.Close() })
}

func TestAttest(t *testing.T) {
	state, dir := t.TempDir(), shortDir(t)
	sock := filepath.Join(dir, "s")
	writeAddress(t, state, "k8s.io", "hello", "unix://"+sock)
	var got []Request
	serve(t, sock, func(r Request) ([]byte, error) {
		got = append(got, r)
		if r.ID == "gone" {
			return nil, status.Error(codes.NotFound, "task gone not found")
		}
		return []byte(`{"version":1}`), nil
	})
	ctx := context.Background()

	evidence, err := Attest(ctx, state, "k8s.io", "hello", "00ff")
	if err != nil || string(evidence) != `{"version":1}` {
		t.Fatalf("Attest = %s, %v", evidence, err)
	}
	if len(got) != 1 || got[0] != (Request{ID: "hello", Nonce: "00ff"}) {
		t.Errorf("the shim was asked %+v", got)
	}

	// The shim's error, with the container's ID.
	writeAddress(t, state, "k8s.io", "gone", "unix://"+sock)
	if _, err := Attest(ctx, state, "k8s.io", "gone", ""); err == nil || !strings.HasPrefix(err.Error(), "attest gone: ") || status.Code(err) != codes.NotFound {
		t.Errorf("Attest of a gone task: %v", err)
	}
}

func TestAttestErrors(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()

	// A bad nonce is refused before the shim is looked for.
	if _, err := Attest(ctx, filepath.Join(state, "nowhere"), "default", "hello", "xyz"); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "not hex") {
		t.Errorf("Attest with a bad nonce: %v", err)
	}

	_, err := Attest(ctx, state, "default", "hello", "")
	want := "no running task hello in namespace default under " + state + ": check --namespace, the container ID, and --state (containerd's state directory)"
	if err == nil || err.Error() != want {
		t.Errorf("Attest of no task: %v, want %q", err, want)
	}

	// The bundle's address unreadable: a directory.
	if err := os.MkdirAll(filepath.Join(state, "io.containerd.runtime.v2.task", "default", "dir", "address"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Attest(ctx, state, "default", "dir", ""); err == nil || !strings.HasPrefix(err.Error(), "find the shim of dir: ") {
		t.Errorf("Attest with an unreadable address: %v", err)
	}

	// No shim listening.
	writeAddress(t, state, "default", "dead", "unix://"+filepath.Join(shortDir(t), "s"))
	if _, err := Attest(ctx, state, "default", "dead", ""); err == nil || !strings.HasPrefix(err.Error(), "connect to the shim of dead: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Attest with no shim: %v", err)
	}
}
