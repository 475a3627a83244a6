package proc

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSetCmdline: the kernel shows the new command line.
func TestSetCmdline(t *testing.T) {
	if err := SetCmdline([]string{"enarx-keep", "keep", "-id", "x y", "-ahead"}); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("%v", err)
		}
		t.Fatal(err)
	}
	got, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if want := "enarx-keep\x00keep\x00-id\x00x y\x00-ahead\x00"; string(got) != want {
		t.Errorf("/proc/self/cmdline %q, want %q", got, want)
	}
}
