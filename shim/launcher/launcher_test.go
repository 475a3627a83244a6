package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/enarx/containerd-shim-enarx/oci/bundle"
	"github.com/enarx/containerd-shim-enarx/version"
)

// deleteEnv makes the test binary run Delete, as the launcher binary would,
// with the server binary the variable names (see TestDeleteRunsTheServer).
const deleteEnv = "LAUNCHER_TEST_DELETE_SERVER"

func TestMain(m *testing.M) {
	if server := os.Getenv(deleteEnv); server != "" {
		args := os.Args[1:]
		f, err := ParseFlags(args)
		if err == nil {
			err = Delete(f, os.Stdout, args, func() (string, error) { return server, nil })
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBootstrap(t *testing.T) {
	f := Flags{ID: "task1", Namespace: "default"}
	params := &bootapi.BootstrapParams{
		InstanceID:             "task1",
		Namespace:              "default",
		ContainerdVersion:      "2.4.0",
		ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
		ContainerdGrpcAddress:  "/run/containerd/containerd.sock",
	}
	// What containerd 1.6 writes on a shim's stdin: an Any of the
	// runtime's options.
	options, err := anypb.New(&runtimeoptions.Options{TypeUrl: "io.containerd.enarx.v1.options", ConfigPath: "/etc/containerd/enarx.toml"})
	if err != nil {
		t.Fatal(err)
	}
	otherID := proto.Clone(params).(*bootapi.BootstrapParams)
	otherID.InstanceID = "task2"
	otherNS := proto.Clone(params).(*bootapi.BootstrapParams)
	otherNS.Namespace = "k8s.io"

	for _, tc := range []struct {
		name  string
		stdin []byte
		want  *bootapi.BootstrapParams
	}{
		{"bootstrap params", marshal(t, params), params},
		{"runtime options (containerd 1.6)", marshal(t, options), nil},
		{"empty stdin", nil, nil},
		{"params of another task", marshal(t, otherID), nil},
		{"params of another namespace", marshal(t, otherNS), nil},
		{"not protobuf", []byte("\xff\xff\xff\xff"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bootstrap(f, bytes.NewReader(tc.stdin))
			if err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			if tc.want == nil {
				if got != nil {
					t.Fatalf("bootstrap = %v, want nil (legacy start)", got)
				}
				return
			}
			if !sameParams(got, tc.want) {
				t.Fatalf("bootstrap = %+v, want %v", got, tc.want)
			}
		})
	}
	if _, err := bootstrap(f, iotest.ErrReader(errors.New("broken stdin"))); err == nil || !strings.Contains(err.Error(), "broken stdin") {
		t.Errorf("bootstrap of a failing reader: %v", err)
	}
}

// sameParams reports whether the launcher decoded of a BootstrapParams
// what the bootstrap protocol's own package decodes.
func sameParams(got *bootstrapParams, want *bootapi.BootstrapParams) bool {
	return got.InstanceID == want.InstanceID && got.Namespace == want.Namespace &&
		got.ContainerdTtrpcAddress == want.ContainerdTtrpcAddress && got.ContainerdGrpcAddress == want.ContainerdGrpcAddress &&
		(got.SocketDir == nil) == (want.SocketDir == nil) && (got.SocketDir == nil || *got.SocketDir == *want.SocketDir)
}

// FuzzBootstrapParams: what the launcher decodes of containerd's stdin is
// what proto.Unmarshal decodes as a BootstrapParams, and it fails exactly
// when that does.
func FuzzBootstrapParams(f *testing.F) {
	dir := "/run/containerd/s"
	full := &bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default", LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG, ContainerdVersion: "2.4.2",
		ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc", ContainerdGrpcAddress: "/run/containerd/containerd.sock",
		ContainerdBinary: "/usr/bin/containerd", SocketDir: &dir}
	if err := full.AddExtension(&types.MountCapabilities{}); err != nil {
		f.Fatal(err)
	}
	options, err := anypb.New(&runtimeoptions.Options{TypeUrl: "io.containerd.enarx.v1.options", ConfigPath: "/etc/containerd/enarx.toml"})
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []proto.Message{full, options, &bootapi.BootstrapParams{InstanceID: "c1"}, &bootapi.BootstrapResult{Version: 3, Address: "unix:///x"}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x0a\x02\xff\xfe"))         // instance_id, not UTF-8
	f.Add([]byte("\x42\x04\x0a\x02\x0a\x80")) // an extension's Any, its type URL not UTF-8
	f.Add([]byte("\x0b\x0c"))                 // field 1 as a group
	f.Add([]byte("\x0c"))                     // an end of group with no start
	f.Fuzz(func(t *testing.T, b []byte) {
		var want bootapi.BootstrapParams
		wantErr := proto.Unmarshal(b, &want)
		got, err := parseBootstrapParams(b)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("parseBootstrapParams(%x): %v; proto.Unmarshal: %v", b, err, wantErr)
		case err == nil && !sameParams(got, &want):
			t.Fatalf("parseBootstrapParams(%x) = %+v; proto.Unmarshal decodes %v", b, got, &want)
		}
	})
}

// TestBootstrapResult: start's answer to containerd 2.x is the
// BootstrapResult the bootstrap protocol's own package encodes.
func TestBootstrapResult(t *testing.T) {
	const address = "unix:///run/containerd/s/0123abcd"
	want := &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}
	if err := want.AddExtension(&types.MountCapabilities{}); err != nil {
		t.Fatal(err)
	}
	b := bootstrapResult(address)
	var got bootapi.BootstrapResult
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("bootstrapResult is not a BootstrapResult: %v", err)
	}
	if !proto.Equal(&got, want) || len(got.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("bootstrapResult decodes to %v, want %v", &got, want)
	}
	var caps types.MountCapabilities
	if ok, err := got.FindExtension(&caps); !ok || err != nil {
		t.Fatalf("no MountCapabilities extension: %v", err)
	}
	if direct := marshal(t, want); !bytes.Equal(direct, b) {
		t.Errorf("bootstrapResult = %x, the protocol's package encodes %x", b, direct)
	}
}

func TestSocketAddress(t *testing.T) {
	const address = "/run/containerd/containerd.sock"
	// printf %s /run/containerd/containerd.sock/default/hello | sha256sum
	const want = "unix:///run/containerd/s/f89a747f6a50d5c2ffc699d28a658410899f12d03fa638893cc55d2da1cf53f6"
	got := SocketAddress(defaultSocketDir, address, "default", "hello")
	if got != want {
		t.Errorf("SocketAddress = %q, want %q", got, want)
	}
	// printf %s /run/containerd/containerd.sock/k8s.io/4e7f0c3a | sha256sum
	const want2 = "unix:///tmp/s/42306264577a41aa46697f3fb066051d42d3e8c78246e14c6f935eb09636aaa5"
	if got := SocketAddress("/tmp/s", address, "k8s.io", "4e7f0c3a"); got != want2 {
		t.Errorf("SocketAddress = %q, want %q", got, want2)
	}
	// A unix socket path holds at most 107 bytes and a NUL.
	long := SocketAddress(defaultSocketDir, address, strings.Repeat("n", 200), strings.Repeat("i", 200))
	if p := SocketPath(long); len(p) >= 106 {
		t.Errorf("socket path %q is %d bytes", p, len(p))
	}
	if p := SocketPath(got); p != strings.TrimPrefix(want, "unix://") {
		t.Errorf("SocketPath = %q", p)
	}
}

func TestInfo(t *testing.T) {
	var buf bytes.Buffer
	if err := Info(&buf); err != nil {
		t.Fatal(err)
	}
	var ri types.RuntimeInfo
	if err := proto.Unmarshal(buf.Bytes(), &ri); err != nil {
		t.Fatalf("info output is not a RuntimeInfo: %v", err)
	}
	if ri.Name != "io.containerd.enarx.v1" {
		t.Errorf("Name = %q", ri.Name)
	}
	if ri.GetVersion().GetVersion() != version.Version {
		t.Errorf("Version = %v, want %s", ri.GetVersion(), version.Version)
	}
	if len(ri.ProtoReflect().GetUnknown()) != 0 {
		t.Errorf("info output has unknown fields")
	}
	want := &types.RuntimeInfo{Name: RuntimeName, Version: &types.RuntimeVersion{Version: version.Version, Revision: version.Revision}}
	if direct := marshal(t, want); !bytes.Equal(direct, buf.Bytes()) {
		t.Errorf("info = %x, the API's package encodes %x", buf.Bytes(), direct)
	}
}

func TestGroupID(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		want        string
	}{
		{nil, "c1"},
		{map[string]string{AnnotationSandboxID: "pod"}, "pod"},
		{map[string]string{AnnotationSandboxID: ""}, "c1"},
	} {
		if got := GroupID(tc.annotations, "c1"); got != tc.want {
			t.Errorf("GroupID(%v) = %q, want %q", tc.annotations, got, tc.want)
		}
	}
}

// writeSpec writes a bundle's config.json with the given annotations.
func writeSpec(t *testing.T, dir string, annotations map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"ociVersion":  "1.2.0",
		"process":     map[string]any{"args": []string{"/app.wasm"}, "cwd": "/"},
		"root":        map[string]any{"path": "rootfs"},
		"annotations": annotations,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle.Bundle{Dir: dir}.Config(), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// start of a pod's container answers with the shim already serving its pod
// (its sandbox's socket) and starts no other.
func TestStartJoinsPodShim(t *testing.T) {
	dir := t.TempDir()
	const grpc = "/run/containerd/containerd.sock"
	pod, id := "pod0123", "container4567"
	want := SocketAddress(dir, grpc, "k8s.io", pod)
	l, err := net.Listen("unix", SocketPath(want))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	dirBundle := t.TempDir()
	writeSpec(t, dirBundle, map[string]string{"io.kubernetes.cri.container-type": "container", AnnotationSandboxID: pod})
	t.Chdir(dirBundle)
	params := &bootapi.BootstrapParams{InstanceID: id, Namespace: "k8s.io", ContainerdGrpcAddress: grpc, SocketDir: &dir}
	var out bytes.Buffer
	// No server is started: the pod's serves the container.
	if err := Start(Flags{ID: id, Namespace: "k8s.io"}, bytes.NewReader(marshal(t, params)), &out, "/nonexistent/enarx-shim"); err != nil {
		t.Fatalf("start: %v", err)
	}
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(out.Bytes(), &result); err != nil {
		t.Fatalf("start answered %q: %v", out.Bytes(), err)
	}
	if result.Address != want {
		t.Errorf("address %q, want the pod's %q", result.Address, want)
	}
	if b, err := os.ReadFile(filepath.Join(dirBundle, "address")); err != nil || string(b) != want {
		t.Errorf("address file %q (%v), want %q", b, err, want)
	}
	// containerd 1.6 (no bootstrap parameters) reads the bare address. (Its
	// socket directory is fixed, so start itself is not run here.)
	out.Reset()
	if err := answer(&out, nil, want); err != nil || out.String() != want {
		t.Errorf("answer without bootstrap parameters = %q, %v; want %q", out.String(), err, want)
	}
}

// TestStartServer is start for a task with no shim yet: the server binary
// runs with the socket and is told its address.
func TestStartServer(t *testing.T) {
	dir := t.TempDir()
	server := filepath.Join(t.TempDir(), ServerBinary)
	// The server records its arguments and whether it got the listening
	// socket on fd 3.
	record := filepath.Join(t.TempDir(), "server.args")
	script := "#!/bin/sh\necho \"$@\" >" + record + ".tmp\n[ -S /proc/self/fd/3 ] && echo fd3 >>" + record + ".tmp\nmv " + record + ".tmp " + record + "\n"
	if err := os.WriteFile(server, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dirBundle := t.TempDir()
	writeSpec(t, dirBundle, nil)
	t.Chdir(dirBundle)
	const grpc = "/run/containerd/containerd.sock"
	params := &bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default", ContainerdGrpcAddress: grpc, SocketDir: &dir}
	var out bytes.Buffer
	if err := Start(Flags{ID: "c1", Namespace: "default"}, bytes.NewReader(marshal(t, params)), &out, server); err != nil {
		t.Fatalf("start: %v", err)
	}
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(out.Bytes(), &result); err != nil {
		t.Fatalf("start answered %q: %v", out.Bytes(), err)
	}
	want := SocketAddress(dir, grpc, "default", "c1")
	if result.Address != want || result.Protocol != "ttrpc" {
		t.Errorf("answer %v, want address %q over ttrpc", &result, want)
	}
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got, _ = os.ReadFile(record); len(got) > 0 {
			break
		}
	}
	wantArgs := "-namespace default -id c1 -address " + grpc + " -socket " + SocketPath(want) + " serve\nfd3\n"
	if string(got) != wantArgs {
		t.Errorf("server ran with %q, want %q", got, wantArgs)
	}
	// A missing server binary fails start, and leaves no socket behind.
	t.Chdir(t.TempDir())
	writeSpec(t, ".", nil)
	params.InstanceID = "c2"
	err := Start(Flags{ID: "c2", Namespace: "default"}, bytes.NewReader(marshal(t, params)), &out, filepath.Join(t.TempDir(), ServerBinary))
	if err == nil || !strings.Contains(err.Error(), "start shim server") {
		t.Errorf("start without a server binary: %v", err)
	}
	if _, serr := os.Stat(SocketPath(SocketAddress(dir, grpc, "default", "c2"))); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("socket left after a failed start: %v", serr)
	}
}

func TestDeleteResponse(t *testing.T) {
	for _, tc := range []struct {
		pid, status uint32
		at          time.Time
	}{
		{0, 137, time.Unix(1700000000, 123456789)}, {4242, 0, time.Unix(1700000000, 0)}, {1, 3, time.Unix(0, 999)},
		{0, 0, time.Unix(0, 0)}, {1 << 31, 255, time.Unix(-1, 5)}, {7, 1 << 31, time.Unix(-62135596800, 0)},
	} {
		at := tc.at
		var resp taskapi.DeleteResponse
		b := DeleteResponse(tc.pid, tc.status, at)
		if err := proto.Unmarshal(b, &resp); err != nil {
			t.Fatalf("DeleteResponse(%d, %d) is not a DeleteResponse: %v", tc.pid, tc.status, err)
		}
		want := &taskapi.DeleteResponse{Pid: tc.pid, ExitStatus: tc.status}
		want.ExitedAt = resp.ExitedAt
		if !proto.Equal(&resp, want) || len(resp.ProtoReflect().GetUnknown()) != 0 || !resp.ExitedAt.AsTime().Equal(at) {
			t.Errorf("DeleteResponse(%d, %d) decodes to %v", tc.pid, tc.status, &resp)
		}
		// The bytes the task API's own encoding gives.
		if direct := marshal(t, &taskapi.DeleteResponse{Pid: tc.pid, ExitStatus: tc.status, ExitedAt: resp.ExitedAt}); !bytes.Equal(direct, b) {
			t.Errorf("DeleteResponse(%d, %d) = %x, the task API encodes %x", tc.pid, tc.status, b, direct)
		}
	}
}

// TestDeleteCleaned is `shim delete` after the server's Delete cleaned the
// bundle: answered at once, without the server binary.
func TestDeleteCleaned(t *testing.T) {
	dir := t.TempDir()
	b := bundle.Bundle{Dir: dir}
	if err := b.MarkCleaned(); err != nil {
		t.Fatal(err)
	}
	// A stale socket (its server gone) is removed; the address file is
	// containerd's and stays.
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if err := os.WriteFile(b.Address(), []byte("unix://"+sock+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	before := time.Now()
	noServer := func() (string, error) { return "", errors.New("no server binary here") }
	if err := Delete(Flags{ID: "c1", Bundle: dir, Action: "delete"}, &out, nil, noServer); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var resp taskapi.DeleteResponse
	if err := proto.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ExitStatus != 137 || resp.Pid != 0 || resp.ExitedAt.AsTime().Before(before.Truncate(time.Second)) {
		t.Errorf("delete answered %v, want status 137, no pid, now", &resp)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket left: %v", err)
	}
	if _, err := os.Stat(b.Address()); err != nil {
		t.Errorf("address file: %v", err)
	}
}

// TestDeleteRunsTheServer is `shim delete` of a bundle the server did not
// clean (it crashed, or its cleanup failed): the server binary's delete
// runs in the launcher's place, with its arguments and stdout.
func TestDeleteRunsTheServer(t *testing.T) {
	server := filepath.Join(t.TempDir(), ServerBinary)
	if err := os.WriteFile(server, []byte("#!/bin/sh\necho \"server $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-id", "c1", "-bundle", dir, "delete")
	cmd.Env = append(os.Environ(), deleteEnv+"="+server)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if want := "server -id c1 -bundle " + dir + " delete\n"; string(out) != want {
		t.Errorf("delete printed %q, want the server's %q", out, want)
	}
	// A server binary that is not there: the error says so.
	cmd = exec.Command(os.Args[0], "-id", "c1", "-bundle", dir, "delete")
	cmd.Env = append(os.Environ(), deleteEnv+"="+filepath.Join(t.TempDir(), ServerBinary))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "execute the shim server") {
		t.Errorf("delete without a server binary: %v, %q", err, stderr.String())
	}
}

func TestServerExecutable(t *testing.T) {
	// The test binary has no enarx-shim beside it.
	if _, err := ServerExecutable(); err == nil || !strings.Contains(err.Error(), ServerBinary) {
		t.Errorf("ServerExecutable = %v, want an error naming %s", err, ServerBinary)
	}
}

// TestMainActions: each action goes to its handler with the flags and the
// whole command line; an unknown one is a usage error (2); a failing one
// exits 1.
func TestMainActions(t *testing.T) {
	var got []string
	a := Actions{
		Start:  func(f Flags) error { got = append(got, "start "+f.ID); return nil },
		Delete: func(f Flags, args []string) error { got = append(got, "delete "+strings.Join(args, " ")); return nil },
		Serve:  func(f Flags, _ []string) error { return errors.New("no server") },
		Usage:  "usage",
	}
	if st := Main([]string{"-id", "c1", "start"}, a); st != 0 {
		t.Errorf("start: status %d", st)
	}
	if st := Main([]string{"-id", "c1", "-bundle", "/b", "delete"}, a); st != 0 {
		t.Errorf("delete: status %d", st)
	}
	if st := Main([]string{"serve"}, a); st != 1 {
		t.Errorf("a failing serve: status %d, want 1", st)
	}
	if st := Main([]string{"bogus"}, a); st != 2 {
		t.Errorf("an unknown action: status %d, want 2", st)
	}
	if st := Main([]string{"-nosuchflag"}, a); st != 2 {
		t.Errorf("an unknown flag: status %d, want 2", st)
	}
	if want := []string{"start c1", "delete -id c1 -bundle /b delete"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("handlers got %q, want %q", got, want)
	}
}

// TestListenRace: starts that listen on one socket at once get one
// listener among them; every other finds it serving, none replaces it.
func TestListenRace(t *testing.T) {
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "s")
		const n = 16
		type result struct {
			l   *net.UnixListener
			err error
		}
		results := make(chan result, n)
		var ready sync.WaitGroup
		ready.Add(n)
		for range n {
			go func() {
				ready.Done()
				ready.Wait()
				l, err := listen(path, nil)
				results <- result{l, err}
			}()
		}
		listeners := 0
		for range n {
			r := <-results
			switch {
			case r.err == nil:
				listeners++
				defer r.l.Close()
			case !errors.Is(r.err, errServing):
				t.Fatalf("listen: %v", r.err)
			}
		}
		if listeners != 1 {
			t.Fatalf("round %d: %d listeners on one socket, want 1", round, listeners)
		}
	}
}
