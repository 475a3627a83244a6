package nodepolicy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileInputPolicyFile: a node policy path that is a FIFO is refused
// at once (opening it for reading would wait for a writer forever, and the
// shim's Create with it), and so is one over MaxSize.
func TestHostileInputPolicyFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "policy.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(FIFO) = %v, want not a regular file, naming it", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load(FIFO) blocks")
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("backend = \"auto\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 10<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "larger than 65536 bytes") {
		t.Errorf("Load(10 MiB) = %v, want a size error naming it", err)
	}
}
