package test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// ttrpc framing: a 10-byte header (length, stream ID, type, flags), then
// the payload; a request's payload is a ttrpc.Request.
const (
	ttrpcHeaderSize  = 10
	ttrpcRequestType = 1
)

func ttrpcFrame(length, stream uint32, typ byte, payload []byte) []byte {
	b := make([]byte, ttrpcHeaderSize, ttrpcHeaderSize+len(payload))
	binary.BigEndian.PutUint32(b[0:4], length)
	binary.BigEndian.PutUint32(b[4:8], stream)
	b[8] = typ
	return append(b, payload...)
}

func ttrpcRequest(t *testing.T, service, method string, payload []byte) []byte {
	t.Helper()
	b, err := proto.Marshal(&ttrpc.Request{Service: service, Method: method, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shimConnect asks the shim on socket for its PID over a fresh, well-behaved
// ttrpc connection.
func shimConnect(t *testing.T, socket, id string) uint32 {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the shim: %v", err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := taskapi.NewTTRPCTaskClient(client).Connect(ctx, &taskapi.ConnectRequest{ID: id})
	if err != nil {
		t.Fatalf("Connect to the shim: %v", err)
	}
	return resp.ShimPid
}

// TestHostileInputTTRPC writes garbage to the socket of a shim serving a
// running container: random bytes, half a frame, an oversized frame header,
// frames of undecodable requests, requests with undecodable payloads, a
// connection that never says anything, and a burst of connections. The
// shim must survive all of it: the same shim process answers, the task is
// still RUNNING in `ctr tasks ls`, and it can be killed and removed.
func TestHostileInputTTRPC(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importWasmImage(t, d, ns, "docker.io/enarx-test/sleep:latest", buildGoWasm(t, "sleep"), false)
		id := uniqueID("hostile-ttrpc")
		d.mustCtr(t, ns, "run", "-d", "--runtime", runtimeEnarx, ref, id, "/app.wasm", "1h")
		waitStatus(t, d, ns, id, "RUNNING")
		address, err := os.ReadFile(filepath.Join(d.State, "io.containerd.runtime.v2.task", ns, id, "address"))
		if err != nil {
			t.Fatalf("the shim's address: %v", err)
		}
		socket := strings.TrimPrefix(strings.TrimSpace(string(address)), "unix://")
		shimPID := shimConnect(t, socket, id)

		random := make([]byte, 64<<10)
		rand.Read(random)
		task := "containerd.task.v3.Task"
		// answered: a well-framed request, which gets an error answer
		// (not a crash, not a silent close); the others get the
		// connection closed once the shim sees the end of the input.
		attacks := []struct {
			name     string
			data     []byte
			answered bool
		}{
			{"random bytes", random, false},
			{"half a header", ttrpcFrame(100, 1, ttrpcRequestType, nil)[:5], false},
			{"half a frame", ttrpcFrame(100, 1, ttrpcRequestType, make([]byte, 20)), false},
			{"oversized frame header", ttrpcFrame(0xffffffff, 1, ttrpcRequestType, random[:1024]), false},
			{"frame just over the limit", ttrpcFrame(4<<20+1, 3, ttrpcRequestType, random[:4096]), false},
			{"undecodable request", ttrpcFrame(64, 1, ttrpcRequestType, random[:64]), true},
			{"unknown message type", ttrpcFrame(4, 1, 0x7f, []byte("abcd")), false},
			{"even stream ID", ttrpcFrame(0, 2, ttrpcRequestType, nil), true},
			{"unknown service", framed(ttrpcRequest(t, "no.such.Service", "Call", []byte("x"))), true},
			{"Kill with an undecodable payload", framed(ttrpcRequest(t, task, "Kill", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})), true},
			{"Create with an undecodable payload", framed(ttrpcRequest(t, task, "Create", random[:512])), true},
			{"Attest with garbage", framed(ttrpcRequest(t, "enarx.keep.v1.Attestation", "Attest", random[:256])), true},
			{"State of a task with a hostile ID", framed(ttrpcRequest(t, task, "State", mustMarshal(t, &taskapi.StateRequest{ID: "../../" + strings.Repeat("x", 1<<16)}))), true},
		}
		// A connection that says nothing holds no lock the others need.
		idle, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		for _, a := range attacks {
			conn, err := net.DialTimeout("unix", socket, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: dial: %v", a.name, err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(a.data); err != nil {
				t.Logf("%s: write: %v", a.name, err)
			}
			if a.answered {
				t.Logf("%s: %s", a.name, ttrpcAnswer(t, conn))
			} else {
				conn.(*net.UnixConn).CloseWrite()
				n, err := io.Copy(io.Discard, conn)
				if err != nil {
					t.Errorf("%s: the shim did not close the connection: %v", a.name, err)
				}
				t.Logf("%s: connection closed after %d bytes", a.name, n)
			}
			conn.Close()
			if got := shimConnect(t, socket, id); got != shimPID {
				t.Fatalf("after %s: shim pid %d, want %d: the shim was restarted", a.name, got, shimPID)
			}
		}
		// A burst of connections writing garbage at once.
		done := make(chan struct{})
		for i := 0; i < 64; i++ {
			go func() {
				defer func() { done <- struct{}{} }()
				conn, err := net.DialTimeout("unix", socket, 5*time.Second)
				if err != nil {
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				conn.Write(random[i*512 : (i+1)*512])
				conn.(*net.UnixConn).CloseWrite()
				io.Copy(io.Discard, conn)
			}()
		}
		for i := 0; i < 64; i++ {
			<-done
		}

		if got := shimConnect(t, socket, id); got != shimPID {
			t.Fatalf("shim pid %d after the garbage, want %d", got, shimPID)
		}
		if got := taskStatus(t, d, ns, id); got != "RUNNING" {
			t.Fatalf("after the garbage the task is %q, want RUNNING\n%s", got, d.LogTail(30))
		}
		d.mustCtr(t, ns, "tasks", "ps", id)
		d.mustCtr(t, ns, "tasks", "kill", "-s", "SIGKILL", id)
		waitStatus(t, d, ns, id, "STOPPED")
		d.mustCtr(t, ns, "tasks", "rm", id)
		d.mustCtr(t, ns, "containers", "rm", id)
		assertNoLeftovers(t, id)
		assertNoTaskState(t, d, ns, id)
		if log := d.LogTail(400); strings.Contains(log, "panic") {
			t.Errorf("the daemon's log mentions a panic:\n%s", log)
		}
	})
}

// ttrpcAnswer reads the shim's answer to a request and returns its status,
// failing the test unless it is an error.
func ttrpcAnswer(t *testing.T, conn net.Conn) string {
	t.Helper()
	var h [ttrpcHeaderSize]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		t.Errorf("no answer: %v", err)
		return ""
	}
	p := make([]byte, binary.BigEndian.Uint32(h[0:4]))
	if _, err := io.ReadFull(conn, p); err != nil {
		t.Errorf("half an answer: %v", err)
		return ""
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(p, &resp); err != nil || h[8] != 2 {
		t.Errorf("answer of type %d is not a response: %v", h[8], err)
		return ""
	}
	if resp.GetStatus().GetCode() == 0 {
		t.Errorf("garbage was answered OK")
	}
	if n := len(resp.GetStatus().GetMessage()); n > 1024 {
		t.Errorf("a %d-byte error message: the shim echoes what it was sent", n)
	}
	return resp.GetStatus().String()
}

func framed(payload []byte) []byte {
	return ttrpcFrame(uint32(len(payload)), 1, ttrpcRequestType, payload)
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileInputCorruptLayer damages the wasm layer of an artifact image
// in containerd's content store (containerd 2.x: 1.6 cannot import artifact
// images): a flipped byte, then a truncation. Each run fails with an error
// naming the layer and saying to pull or import the image again, leaves
// nothing running, and once the layer is restored the image runs.
func TestHostileInputCorruptLayer(t *testing.T) {
	d := sharedDaemon(t, containerd24)
	ns := newNamespace(t, d)
	wasm, err := os.ReadFile(buildGoWasm(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	ref := "docker.io/enarx-test/echo-corrupt:latest"
	archive := filepath.Join(t.TempDir(), "artifact.tar")
	if err := writeArtifactImage(archive, ref, wasm, []byte("args = [\"from-toml\"]\n")); err != nil {
		t.Fatal(err)
	}
	importArchive(t, d, ns, ref, archive, wasmImportFlags(true)...)
	sum := sha256.Sum256(wasm)
	layer := "sha256:" + hex.EncodeToString(sum[:])
	blob := filepath.Join(d.Root, "io.containerd.content.v1.content", "blobs", "sha256", hex.EncodeToString(sum[:]))
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("the wasm layer in the content store: %v", err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.Chmod(blob, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blob, b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	flipped := append([]byte(nil), wasm...)
	flipped[len(flipped)/2] ^= 0x01
	for _, damage := range []struct {
		name string
		data []byte
	}{
		{"flipped byte", flipped},
		{"truncated", wasm[:len(wasm)/2]},
		{"header only", wasm[:8]},
	} {
		write(damage.data)
		id := uniqueID("corrupt")
		_, stderr, exit := runWasm(t, d, ns, nil, ref, id, "echo", "x")
		if exit == 0 {
			t.Errorf("%s: the run succeeded", damage.name)
		}
		for _, want := range []string{"wasm layer " + layer, "does not match its digest or size", "pull or import it again"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr %q does not say %q", damage.name, stderr, want)
			}
		}
		t.Logf("%s: %s", damage.name, stderr)
		assertNoLeftovers(t, id)
		d.ctr(t, ns, "containers", "rm", id)
	}
	write(wasm)
	stdout, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("restored"), "echo", "x")
	if exit != 0 || !strings.Contains(stdout, "arg: x") {
		t.Errorf("restored layer: exit %d, stdout %q, stderr %q", exit, stdout, stderr)
	}
}

// TestHostileInputTruncatedLayer imports an image whose tar layer ends
// halfway through the module, its digests those of the truncated bytes:
// containerd refuses to unpack it, so no container of it reaches the shim.
func TestHostileInputTruncatedLayer(t *testing.T) {
	wasm, err := os.ReadFile(buildGoWasm(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := tarFiles([]tarFile{{Name: "app.wasm", Mode: 0o644, Data: wasm}})
	if err != nil {
		t.Fatal(err)
	}
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := "docker.io/enarx-test/truncated-layer:latest"
		archive := filepath.Join(t.TempDir(), "truncated.tar")
		if err := writeLayerImage(archive, ref, layer[:len(layer)/2], []string{"/app.wasm"}); err != nil {
			t.Fatal(err)
		}
		_, stderr, exit := d.ctr(t, ns, "images", "import", archive)
		if exit == 0 {
			// Imported without unpacking: the run must fail instead.
			id := uniqueID("truncated")
			_, stderr, exit = runWasm(t, d, ns, nil, ref, id)
			if exit == 0 {
				t.Fatalf("a truncated layer ran")
			}
			assertNoLeftovers(t, id)
			d.ctr(t, ns, "containers", "rm", id)
		}
		if !strings.Contains(stderr, "unexpected EOF") {
			t.Errorf("stderr %q does not say the layer ends early (unexpected EOF)", stderr)
		}
		t.Logf("refused: %s", strings.TrimSpace(stderr))
		// The failed import leaves its blobs, which a namespace must
		// not hold to be removed.
		d.ctr(t, ns, "images", "rm", ref)
		if blobs := strings.Fields(d.mustCtr(t, ns, "content", "ls", "-q")); len(blobs) > 0 {
			d.mustCtr(t, ns, append([]string{"content", "rm"}, blobs...)...)
		}
	})
}
