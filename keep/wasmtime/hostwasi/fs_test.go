//go:build linux

package hostwasi

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
	"golang.org/x/sys/unix"
)

// probe runs test/fixtures/fsprobe with args and the preopens, and returns
// its result lines by command ("read /x" -> "ok: text" or "error: ...").
func probe(t *testing.T, preopens []engine.Preopen, args ...string) (map[string]string, string) {
	t.Helper()
	return probeWith(t, Config{Preopens: preopens}, args...)
}

// probeWith is probe with cfg's preopens and sockets.
func probeWith(t *testing.T, cfg Config, args ...string) (map[string]string, string) {
	t.Helper()
	mod := compile(t, filepath.Join("..", "..", "..", "test", "fixtures", "fsprobe"))
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := New(Config{Args: append([]string{"fsprobe"}, args...), Env: []string{"PWD=/"}, Stdout: out, Stderr: out, Preopens: cfg.Preopens, Sockets: cfg.Sockets})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := run(ctx, mod, w); err != nil {
		t.Fatalf("fsprobe: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		for _, sep := range []string{": ok", ": error"} {
			if i := strings.Index(line, sep); i >= 0 {
				res[line[:i]] = line[i+2:]
				break
			}
		}
	}
	return res, string(b)
}

func expect(t *testing.T, got map[string]string, out string, want map[string]string) {
	t.Helper()
	for cmd, w := range want {
		g, ok := got[cmd]
		switch {
		case !ok:
			t.Errorf("%s: no result", cmd)
		case w == "error" && !strings.HasPrefix(g, "error"):
			t.Errorf("%s: %q, want an error", cmd, g)
		case w != "error" && g != w:
			t.Errorf("%s: %q, want %q", cmd, g, w)
		}
	}
	if t.Failed() {
		t.Logf("fsprobe output:\n%s", out)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFilesReadWrite reads and writes in a writable and a read-only
// preopen, nested in a root preopen as the shim gives them.
func TestFilesReadWrite(t *testing.T) {
	base := t.TempDir()
	root, ro, rw := filepath.Join(base, "root"), filepath.Join(base, "ro"), filepath.Join(base, "rw")
	for _, d := range []string{root, ro, rw, filepath.Join(root, "sub")} {
		os.Mkdir(d, 0o755)
	}
	writeFile(t, filepath.Join(root, "hello.txt"), "root hello")
	writeFile(t, filepath.Join(ro, "inside.txt"), "read only")
	writeFile(t, filepath.Join(rw, "old.txt"), "old")
	preopens := []engine.Preopen{{HostPath: root, GuestPath: "/"}, {HostPath: ro, GuestPath: "/data", ReadOnly: true}, {HostPath: rw, GuestPath: "/out"}}
	got, out := probe(t, preopens,
		"read", "/hello.txt", "ls", "/", "ls", "/data", "read", "/data/inside.txt", "stat", "/data/inside.txt", "stat", "/sub",
		"write", "/data/new.txt", "x", "write", "/data/inside.txt", "x", "append", "/data/inside.txt", "x",
		"mkdir", "/data/d", "rm", "/data/inside.txt", "rename", "/data/inside.txt", "/data/moved.txt",
		"write", "/out/new.txt", "hello", "read", "/out/new.txt", "append", "/out/new.txt", "+more", "stat", "/out/new.txt",
		"mkdir", "/out/d", "rename", "/out/new.txt", "/out/d/moved.txt", "read", "/out/d/moved.txt",
		"rename", "/out/old.txt", "/moved.txt", "rm", "/out/d/moved.txt", "rmdir", "/out/d", "ls", "/out",
		"read", "/missing", "rmdir", "/out/old.txt",
	)
	expect(t, got, out, map[string]string{
		"read /hello.txt":                         "ok: root hello",
		"ls /":                                    "ok: hello.txt,sub",
		"ls /data":                                "ok: inside.txt",
		"read /data/inside.txt":                   "ok: read only",
		"stat /data/inside.txt":                   "ok: 9",
		"stat /sub":                               "ok: dir",
		"write /data/new.txt":                     "error",
		"write /data/inside.txt":                  "error",
		"append /data/inside.txt":                 "error",
		"mkdir /data/d":                           "error",
		"rm /data/inside.txt":                     "error",
		"rename /data/inside.txt /data/moved.txt": "error",
		"write /out/new.txt":                      "ok",
		"read /out/new.txt":                       "ok: hello",
		"append /out/new.txt":                     "ok",
		"stat /out/new.txt":                       "ok: 10",
		"mkdir /out/d":                            "ok",
		"rename /out/new.txt /out/d/moved.txt":    "ok",
		"read /out/d/moved.txt":                   "ok: hello+more",
		"rename /out/old.txt /moved.txt":          "error", // across preopens
		"rm /out/d/moved.txt":                     "ok",
		"rmdir /out/d":                            "ok",
		"ls /out":                                 "ok: old.txt",
		"read /missing":                           "error",
		"rmdir /out/old.txt":                      "error",
	})
	if b, err := os.ReadFile(filepath.Join(ro, "inside.txt")); err != nil || string(b) != "read only" {
		t.Errorf("the read-only file changed: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(ro); len(entries) != 1 {
		t.Errorf("the read-only preopen changed: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(base, "moved.txt")); err == nil {
		t.Error("a rename across preopens reached the host")
	}
}

// TestFilesEscapes mirrors test/files_test.go's TestFilesEscape in process:
// "..", absolute paths given to path_open, and symbolic links, absolute or
// relative, that lead out of a preopen, all fail.
func TestFilesEscapes(t *testing.T) {
	base := t.TempDir()
	root, shared := filepath.Join(base, "root"), filepath.Join(base, "shared")
	os.Mkdir(root, 0o755)
	os.Mkdir(shared, 0o755)
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	const secret = "host secret 5d41402a"
	writeFile(t, filepath.Join(base, "secret"), secret)
	writeFile(t, filepath.Join(root, "etc", "hostname"), "image hostname")
	writeFile(t, filepath.Join(shared, "a.txt"), "shared")
	up := strings.Repeat("../", 20)
	for name, target := range map[string]string{
		"abs-hostname": "/etc/hostname",
		"rel-hostname": up + "etc/hostname",
		"abs-secret":   filepath.Join(base, "secret"),
		"rel-secret":   strings.TrimSuffix(up, "/") + filepath.Join(base, "secret"),
		"etc-link":     "/etc",
		"up":           up,
		"proc-self":    "/proc/self/root",
		"inside":       "etc/hostname",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	attempts := []string{
		"read /abs-hostname", "read /rel-hostname", "read /abs-secret", "read /rel-secret",
		"ls /etc-link", "ls /up", "ls /proc-self",
		"read /" + up + filepath.Join(base, "secret"),
		"read " + up + filepath.Join(base, "secret"),
		"read /data/../secret",
		"openat 3 " + up + "etc/hostname",
		"openat 3 /etc/hostname",
		"openat 3 " + up + strings.TrimPrefix(filepath.Join(base, "secret"), "/"),
		"openat 3 abs-secret",
		"openat 4 ../secret",
		"openat 4 ..",
		"openat 3 proc-self/etc/hostname",
	}
	args := []string{"read", "/etc/hostname", "openat", "4", "a.txt", "read", "/inside"}
	for _, a := range attempts {
		args = append(args, strings.Fields(a)...)
	}
	preopens := []engine.Preopen{{HostPath: root, GuestPath: "/"}, {HostPath: shared, GuestPath: "/data", ReadOnly: true}}
	got, out := probe(t, preopens, args...)
	want := map[string]string{"read /etc/hostname": "ok: image hostname", "openat 4 a.txt": "ok: shared", "read /inside": "ok: image hostname"}
	for _, a := range attempts {
		want[a] = "error"
	}
	expect(t, got, out, want)
	if testing.Verbose() {
		t.Logf("fsprobe output:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the workload read the host's secret:\n%s", out)
	}
	if h, _ := os.ReadFile("/etc/hostname"); len(strings.TrimSpace(string(h))) > 0 && strings.Contains(out, ": ok: "+strings.TrimSpace(string(h))) {
		t.Errorf("the workload read the host's /etc/hostname:\n%s", out)
	}
}

// TestFilesSpecialFiles: a FIFO or a socket file in the workload's view is
// a channel to another process, not a file: opening one is refused with
// EACCES, for reading or writing, and without touching it (a writer
// blocked on the FIFO stays blocked).
func TestFilesSpecialFiles(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "file.txt"), "a file")
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got, out := probe(t, []engine.Preopen{{HostPath: root, GuestPath: "/"}},
		"read", "/file.txt", "read", "/fifo", "write", "/fifo", "x", "read", "/sock")
	expect(t, got, out, map[string]string{"read /file.txt": "ok: a file", "read /fifo": "error", "write /fifo": "error", "read /sock": "error"})
	for _, p := range []string{"read /fifo", "write /fifo", "read /sock"} {
		if !strings.Contains(strings.ToLower(got[p]), "permission denied") {
			t.Errorf("%s: %q, want EACCES (permission denied)", p, got[p])
		}
	}
	// No reader ever opened the FIFO: a writer that does not block finds none.
	if fd, err := unix.Open(filepath.Join(root, "fifo"), unix.O_WRONLY|unix.O_NONBLOCK, 0); err != unix.ENXIO {
		unix.Close(fd)
		t.Errorf("the FIFO has a reader: %v", err)
	}
}
