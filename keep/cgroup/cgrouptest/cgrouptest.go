// Package cgrouptest holds what tests that create real cgroups share: the
// check that they can, a cgroup path of the test's own that is removed at
// its end, and where the memory controller shows a cgroup.
package cgrouptest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/cgroups/v3"
)

// Available reports whether this process can create cgroups: it needs
// root and a cgroup file system.
func Available() bool {
	return os.Geteuid() == 0 && cgroups.Mode() != cgroups.Unavailable
}

// Require skips a test that needs to create cgroups (see Available).
func Require(t testing.TB) {
	t.Helper()
	if !Available() {
		t.Skip("creating cgroups needs root and a cgroup file system")
	}
}

// Parent returns an absolute cgroup path of the test's own, under which it
// makes its cgroups (like ctr's "/<namespace>"). The parent, made along
// with the first cgroup below it, is removed from every hierarchy at the
// end of the test, with the cgroups a failed test left below it (those
// without processes).
func Parent(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	parent := "/enarx-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		for _, d := range append(dirs, filepath.Join("/sys/fs/cgroup", parent)) {
			removeTree(d)
		}
	})
	return parent
}

// removeTree removes the cgroup directory dir, its children first.
func removeTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	_ = os.Remove(dir)
}

// Path returns the cgroup path Parent(t)/name.
func Path(t testing.TB, name string) string {
	return Parent(t) + "/" + name
}

// MemoryDir is the directory where the memory controller shows the cgroup
// at path, and MemoryLimitFile the name of its limit file there.
func MemoryDir(path string) string {
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", path)
	}
	return filepath.Join("/sys/fs/cgroup/memory", path)
}

// MemoryLimitFile is the memory limit's file in MemoryDir: memory.max on
// cgroup v2, memory.limit_in_bytes on v1.
func MemoryLimitFile() string {
	if cgroups.Mode() == cgroups.Unified {
		return "memory.max"
	}
	return "memory.limit_in_bytes"
}
