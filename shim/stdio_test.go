package shim

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOutputFIFOOpenedLate: a client whose reader opens the stdout FIFO
// only after a short-lived Keep has written and exited (containerd's client
// opens it in a goroutine, which a loaded machine runs late) still reads
// everything, then EOF once the shim lets go.
func TestOutputFIFOOpenedLate(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "stdout")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openStdio(context.Background(), "default", "late", "", fifo, "")
	if err != nil {
		t.Fatal(err)
	}
	// The Keep writes and exits: every copy of its end is closed.
	if _, err := s.keep.Stdout.Write([]byte("Hello from a Keep!\n")); err != nil {
		t.Fatal(err)
	}
	s.closeKeepSide()
	s.releaseOutputs()

	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []byte
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if string(got) != "Hello from a Keep!\n" {
		t.Errorf("read %q, want the Keep's line, then EOF", got)
	}
	if time.Now().After(deadline) {
		t.Error("no EOF after the output was read")
	}
}
