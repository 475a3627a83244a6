//go:build linux && cgo

package startbound

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/keep/confine"
)

// childEnv marks the test binary started by TestStartBounding.
const childEnv = "ENARX_STARTBOUND_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// Every thread's bounding set, as the kernel shows it.
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			b, _ := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
					fmt.Println(strings.TrimSpace(v))
				}
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStartBounding: a Keep given its bounding set has it on every thread
// from its start; a value that is not a mask changes nothing.
func TestStartBounding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping from the bounding set needs CAP_SETPCAP: run as root")
	}
	full := threadBounding(t, "")
	keep := uint64(1<<0 | 1<<5 | 1<<21) // chown, kill, sys_admin
	got := threadBounding(t, fmt.Sprintf("%#x", keep))
	for _, b := range got {
		if b != keep {
			t.Errorf("a thread has the bounding set %#x, want %#x", b, keep)
		}
	}
	for _, bad := range []string{"17", "0x", "0xzz", "0x1 "} {
		for _, b := range threadBounding(t, bad) {
			if b != full[0] {
				t.Errorf("%s=%q: a thread has the bounding set %#x, want the full %#x", confine.BoundingEnv, bad, b, full[0])
			}
		}
	}
}

// threadBounding starts this test binary with the bounding set value
// (none when empty) and returns each of its threads' bounding sets.
func threadBounding(t *testing.T, value string) []uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if value != "" {
		cmd.Env = append(cmd.Env, confine.BoundingEnv+"="+value)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var sets []uint64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseUint(f, 16, 64)
		if err != nil {
			t.Fatalf("CapBnd %q: %v", f, err)
		}
		sets = append(sets, v)
	}
	if len(sets) < 2 {
		t.Fatalf("the child showed %d threads, want the Go runtime's several", len(sets))
	}
	return sets
}
