package guest

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// TestNullStdio runs nullStdio in a child process: the workload's fds 1 and
// 2 go to /dev/null, and os.Stderr, the Keep's messages, still reaches the
// original stderr.
func TestNullStdio(t *testing.T) {
	if os.Getenv("ENARX_TEST_NULL_STDIO") == "1" {
		if err := nullStdio([]string{"stdout", "stderr"}); err != nil {
			os.Exit(7)
		}
		syscall.Write(1, []byte("workload stdout\n"))
		syscall.Write(2, []byte("workload stderr\n"))
		os.Stderr.WriteString("keep message\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNullStdio$")
	cmd.Env = append(os.Environ(), "ENARX_TEST_NULL_STDIO=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	if stdout.Len() != 0 || stderr.String() != "keep message\n" {
		t.Errorf("stdout %q, stderr %q; want nothing and only the Keep's message", stdout.String(), stderr.String())
	}
}
