package confine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ctrdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/moby/sys/mountinfo"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/enarx/containerd-shim-enarx/keep/confine/seccomp"
)

// childEnv makes the test binary a Keep stand-in: it enters the Spec in
// the file the variable names and reports what it then sees (probe).
const childEnv = "ENARX_CONFINE_TEST_SPEC"

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		os.Exit(child(p))
	}
	os.Exit(m.Run())
}

// childInput is what the test gives the child.
type childInput struct {
	Spec     Spec
	StateDir string
	LockDown bool
	// NetNS, when not "", is the path of the network namespace the child
	// enters.
	NetNS  string
	Probes []string
}

// child enters the confinement and prints one line per probe:
// "PROBE: ok[: detail]" or "PROBE: error: ERRNO-NAME".
func child(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Println("input:", err)
		return 2
	}
	var in childInput
	if err := json.Unmarshal(b, &in); err != nil {
		fmt.Println("input:", err)
		return 2
	}
	var netns *os.File
	if in.NetNS != "" {
		if netns, err = os.Open(in.NetNS); err != nil {
			fmt.Println("input:", err)
			return 2
		}
	}
	began := time.Now()
	if _, err := Enter(&in.Spec, in.StateDir, Network{Join: netns}, seccomp.Load); err != nil {
		fmt.Println("enter:", err)
		return 3
	}
	fmt.Printf("took: %v\n", time.Since(began))
	if in.LockDown {
		f, err := seccomp.AssembleLockDown()
		if err == nil {
			err = f.LockDown()
		}
		if err != nil {
			fmt.Println("lockdown:", err)
			return 3
		}
	}
	for _, p := range in.Probes {
		fmt.Printf("%s: %s\n", p, probe(p))
	}
	return 0
}

// probe runs one check: "read PATH", "write PATH", "stat PATH", "uid",
// "owner PATH", "hostname", "pid".
func probe(p string) string {
	verb, arg, _ := strings.Cut(p, " ")
	result := func(detail string, err error) string {
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				return "error: " + unix.ErrnoName(errno)
			}
			return "error: " + err.Error()
		}
		if detail == "" {
			return "ok"
		}
		return "ok: " + detail
	}
	switch verb {
	case "read":
		b, err := os.ReadFile(arg)
		return result(strings.TrimSpace(string(b)), err)
	case "write":
		return result("", os.WriteFile(arg, []byte("x"), 0o644))
	case "stat":
		st, err := os.Lstat(arg)
		if err != nil {
			return result("", err)
		}
		return result(st.Mode().Type().String(), nil)
	case "owner":
		var st unix.Stat_t
		err := unix.Stat(arg, &st)
		return result(fmt.Sprintf("%d:%d", st.Uid, st.Gid), err)
	case "uid":
		return result(fmt.Sprintf("%d:%d %v", os.Getuid(), os.Getgid(), must(os.Getgroups())), nil)
	case "hostname":
		h, err := os.Hostname()
		return result(h, err)
	case "pid":
		return result(fmt.Sprint(os.Getpid()), nil)
	case "uname":
		var u unix.Utsname
		return result("", unix.Uname(&u))
	case "unshare":
		runtime.LockOSThread() // the thread may be in a namespace of its own now: it dies with the probe
		return result("", unix.Unshare(unix.CLONE_NEWUTS))
	case "limit":
		// A line of /proc/self/limits: soft and hard.
		b, err := os.ReadFile("/proc/self/limits")
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, arg+" ") {
				f := strings.Fields(strings.TrimPrefix(line, arg))
				return result(f[0]+" "+f[1], err)
			}
		}
		return result("", err)
	case "ns":
		// The namespace of type arg of every thread, each once.
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return result("", err)
		}
		var values []string
		for _, task := range tasks {
			v, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/" + arg)
			if err != nil {
				return result("", err)
			}
			if !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
		return result(strings.Join(values, ","), nil)
	case "propagation":
		// The propagation of the mount at arg, the top one where mounts
		// are stacked: shared, slave or private.
		mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) { return m.Mountpoint != arg, false })
		if err == nil && len(mounts) == 0 {
			err = fmt.Errorf("no mount at %s", arg)
		}
		if err != nil {
			return result("", err)
		}
		found := "private"
		for _, opt := range strings.Fields(mounts[len(mounts)-1].Optional) {
			switch tag, _, _ := strings.Cut(opt, ":"); {
			case tag == "shared":
				found = "shared"
			case tag == "master" && found == "private":
				found = "slave"
			}
		}
		return result(found, nil)
	case "status":
		// The field of every thread's status, each value once.
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return result("", err)
		}
		seen := map[string]bool{}
		var values []string
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
			if err != nil {
				return result("", err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, arg+":"); ok && !seen[strings.TrimSpace(v)] {
					seen[strings.TrimSpace(v)] = true
					values = append(values, strings.TrimSpace(v))
				}
			}
		}
		return result(strings.Join(values, ","), nil)
	}
	return "error: unknown probe"
}

func must[T any](v T, _ error) T { return v }

// execChild confines a child process as in says and returns its output.
func execChild(t *testing.T, in childInput) ([]byte, error) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(input, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := in.Spec.Start(cmd, nil); err != nil {
		return nil, err
	}
	err = cmd.Wait()
	return out.Bytes(), err
}

// runChild confines a child process as in says and returns its probes'
// results.
func runChild(t *testing.T, in childInput) map[string]string {
	t.Helper()
	out, err := execChild(t, in)
	if err != nil {
		t.Fatalf("confined child: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			got[k] = v
		}
	}
	return got
}

// expectProbes checks the probes' results against want.
func expectProbes(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

// requireRoot skips a test that confines a process: it needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("confining a process needs root")
	}
}

// newRootfs is an empty root filesystem that any user may enter.
func newRootfs(t *testing.T) string {
	t.Helper()
	rootfs := t.TempDir()
	if err := os.Chmod(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// mountTmpfs mounts a tmpfs with data at dir, made if need be, until the
// test ends.
func mountTmpfs(t *testing.T, dir, data string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestEnter confines a process as a container's spec asks, with the
// mounts containerd's default spec and the CRI plugin give, and checks what
// it sees: its root is the container's, single files are bound, tmpfs and
// /dev are there, read-only and masked paths hold, the host is out of
// sight, and it runs as the spec's user.
func TestEnter(t *testing.T) {
	requireRoot(t)
	rootfs, host, state := newRootfs(t), t.TempDir(), t.TempDir()
	write(t, filepath.Join(rootfs, "image.txt"), "in the image", 0o644)
	write(t, filepath.Join(rootfs, "secret.txt"), "root only", 0o600)
	write(t, filepath.Join(rootfs, "masked.txt"), "masked file", 0o644)
	write(t, filepath.Join(rootfs, "maskeddir", "f.txt"), "in a masked directory", 0o644)
	// A device node in the image: /dev/null's numbers, which the spec's
	// own /dev/null has too.
	if err := unix.Mknod(filepath.Join(rootfs, "image-null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(host, "hosts"), "127.0.0.1 localhost pod", 0o644)
	write(t, filepath.Join(host, "config", "app.conf"), "from a ConfigMap", 0o644)
	write(t, filepath.Join(host, "data", "a.txt"), "read-only data", 0o644)
	write(t, filepath.Join(state, "certificate.pem"), "the Keep's certificate", 0o644)
	mountTmpfs(t, filepath.Join(host, "data", "sub"), "size=1m")
	write(t, filepath.Join(host, "rro", "f.txt"), "recursively read-only", 0o644)
	mountTmpfs(t, filepath.Join(host, "rro", "sub"), "size=1m,mode=777")
	write(t, filepath.Join(host, "outside.txt"), "host only", 0o644)

	umask := uint32(0o022)
	netBind := []string{"CAP_NET_BIND_SERVICE"}
	spec := &specs.Spec{
		Hostname: "keep-host",
		Root:     &specs.Root{Path: rootfs},
		Process: &specs.Process{User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{2000}, Umask: &umask},
			Capabilities:    &specs.LinuxCapabilities{Bounding: netBind, Effective: netBind, Permitted: netBind, Inheritable: netBind, Ambient: netBind},
			NoNewPrivileges: true,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 1024}, {Type: "RLIMIT_CORE", Hard: 0, Soft: 0}},
			OOMScoreAdj:     ptr(500)},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(host, "hosts"), Options: []string{"rbind", "rprivate", "ro"}},
			{Destination: "/etc/app/app.conf", Type: "bind", Source: filepath.Join(host, "config", "app.conf"), Options: []string{"rbind", "ro"}},
			{Destination: "/data", Type: "bind", Source: filepath.Join(host, "data"), Options: []string{"rbind", "ro"}},
			{Destination: "/rro", Type: "bind", Source: filepath.Join(host, "rro"), Options: []string{"rbind", "rro"}},
		},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/proc/kcore", "/proc/acpi", "/etc/hidden", "/masked.txt", "/maskeddir"},
			ReadonlyPaths: []string{"/proc/sys"},
			Namespaces:    []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}},
		},
	}
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), StateDir: state, Probes: []string{
		"read /image.txt", "read /secret.txt", "write /new.txt", "write /tmp/mine.txt", "owner /tmp/mine.txt",
		"read /etc/hosts", "write /etc/hosts", "read /etc/app/app.conf",
		"read /data/a.txt", "write /data/b.txt", "write /data/sub/c.txt",
		"read /rro/f.txt", "write /rro/sub/d.txt",
		"read /masked.txt", "read /maskeddir/f.txt", "write /proc/sys/kernel/hostname", "stat /dev/null", "stat /dev/fd", "write /image-null", "write /dev/null",
		"read " + filepath.Join(host, "outside.txt"), "read /run/enarx/certificate.pem", "write /run/enarx/x",
		"uid", "hostname", "pid", "status CapBnd", "status CapEff", "status CapPrm", "status CapAmb", "status NoNewPrivs", "read /proc/self/oom_score_adj", "limit Max open files", "limit Max core file size",
	}})
	want := map[string]string{
		"read /image.txt":                 "ok: in the image",
		"read /secret.txt":                "error: EACCES",
		"write /new.txt":                  "error: EACCES",
		"write /tmp/mine.txt":             "ok",
		"owner /tmp/mine.txt":             "ok: 1000:1000",
		"read /etc/hosts":                 "ok: 127.0.0.1 localhost pod",
		"write /etc/hosts":                "error: EROFS",
		"read /etc/app/app.conf":          "ok: from a ConfigMap",
		"read /data/a.txt":                "ok: read-only data",
		"write /data/b.txt":               "error: EROFS",
		"read /rro/f.txt":                 "ok: recursively read-only",
		"write /rro/sub/d.txt":            "error: EROFS",
		"read /masked.txt":                "ok",
		"read /maskeddir/f.txt":           "error: ENOENT",
		"stat /dev/null":                  "ok: Dc---------",
		"write /image-null":               "error: EACCES",
		"write /dev/null":                 "ok",
		"stat /dev/fd":                    "ok: L---------",
		"read /run/enarx/certificate.pem": "ok: the Keep's certificate",
		"write /run/enarx/x":              "error: EROFS",
		"uid":                             "ok: 1000:1000 [2000]",
		"hostname":                        "ok: keep-host",
		"pid":                             "ok: 1",
		// Every thread: only CAP_NET_BIND_SERVICE (bit 10), no_new_privs.
		"status CapBnd":                 "ok: 0000000000000400",
		"status CapEff":                 "ok: 0000000000000400",
		"status CapPrm":                 "ok: 0000000000000400",
		"status CapAmb":                 "ok: 0000000000000400",
		"status NoNewPrivs":             "ok: 1",
		"read /proc/self/oom_score_adj": "ok: 500",
		"limit Max open files":          "ok: 1024 4096",
		"limit Max core file size":      "ok: 0 0",
	}
	t.Logf("Enter took %s (%d mounts)", got["took"], len(spec.Mounts))
	expectProbes(t, got, want)
	// Writing below a read-only (not recursively read-only) bind reaches
	// the writable tmpfs mounted there, as with runc.
	if got["write /data/sub/c.txt"] != "ok" {
		t.Errorf("write /data/sub/c.txt: %q, want ok (ro is not recursive)", got["write /data/sub/c.txt"])
	}
	if r := got["write /proc/sys/kernel/hostname"]; !strings.HasPrefix(r, "error") {
		t.Errorf("/proc/sys is read-only: write gave %q", r)
	}
	if r := got["read "+filepath.Join(host, "outside.txt")]; !strings.HasPrefix(r, "error: ENOENT") {
		t.Errorf("a host file outside the container: %q, want ENOENT", r)
	}
	expectNothingMountedOnHost(t, rootfs)
}

// TestEnterSharedPropagation: linux.rootfsPropagation rshared (Kubernetes'
// Bidirectional mounts) with the root filesystem below a shared mount, as
// runc: pivot_root is not refused, the Keep's root is shared, and nothing
// of the container's view appears on the host, during or after.
func TestEnterSharedPropagation(t *testing.T) {
	requireRoot(t)
	parent := t.TempDir()
	mountTmpfs(t, parent, "size=1m,mode=755")
	if err := unix.Mount("", parent, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	// Not a mount point itself: the mount it is on is the one made private.
	rootfs := filepath.Join(parent, "rootfs")
	write(t, filepath.Join(rootfs, "image.txt"), "in the image", 0o644)
	spec := &specs.Spec{
		Root: &specs.Root{Path: rootfs},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			RootfsPropagation: "rshared",
			Namespaces:        []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
		},
	}
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), Probes: []string{"read /image.txt", "propagation /", "propagation /tmp", "pid"}})
	expectProbes(t, got, map[string]string{
		"read /image.txt":  "ok: in the image",
		"propagation /":    "ok: shared",
		"propagation /tmp": "ok: shared",
		"pid":              "ok: 1",
	})
	expectNothingMountedOnHost(t, rootfs)
}

// expectNothingMountedOnHost checks that nothing of the container's view,
// made below rootfs, is left mounted in the test's (the host's) namespace.
func expectNothingMountedOnHost(t *testing.T, rootfs string) {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), rootfs) {
		t.Errorf("the container's view leaked into the host's mounts:\n%s", mounts)
	}
}

// TestEnterRefusesAMissingBindSource: as runc, a bind mount of nothing
// fails, naming the mount.
func TestEnterRefusesAMissingBindSource(t *testing.T) {
	requireRoot(t)
	rootfs := newRootfs(t)
	spec := &specs.Spec{Root: &specs.Root{Path: rootfs}, Mounts: []specs.Mount{{Destination: "/data", Type: "bind", Source: "/nonexistent/enarx", Options: []string{"rbind"}}}}
	out, err := execChild(t, childInput{Spec: *FromOCI(spec, rootfs)})
	if err == nil || !strings.Contains(string(out), "mounts[0] (bind at /data)") || !strings.Contains(string(out), "/nonexistent/enarx") {
		t.Errorf("missing bind source: %v\n%s", err, out)
	}
}

// TestEnterRootWithoutDACOverride: uid 0 whose capabilities the spec drops
// (docker --cap-drop ALL, drop: [ALL]) cannot read another user's private
// file: CAP_DAC_OVERRIDE is gone, on every thread.
func TestEnterRootWithoutDACOverride(t *testing.T) {
	requireRoot(t)
	rootfs := newRootfs(t)
	private := filepath.Join(rootfs, "private.txt")
	write(t, private, "uid 1000's", 0o600)
	if err := os.Chown(private, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), Probes: []string{"uid", "read /private.txt", "status CapEff", "status CapBnd"}})
	expectProbes(t, got, map[string]string{"uid": "ok: 0:0 []", "read /private.txt": "error: EACCES", "status CapEff": "ok: 0000000000000000", "status CapBnd": "ok: 0000000000000000"})
}

// TestEnterSeccomp confines with containerd's default seccomp profile (what
// ctr run --seccomp and Kubernetes' RuntimeDefault give) and a rule of the
// test's own: every thread is filtered, what the profile allows works, what
// it refuses fails with its errno.
func TestEnterSeccomp(t *testing.T) {
	requireRoot(t)
	rootfs := newRootfs(t)
	write(t, filepath.Join(rootfs, "f.txt"), "readable", 0o644)
	spec := &specs.Spec{
		Root: &specs.Root{Path: rootfs},
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"}, Effective: []string{"CAP_CHOWN"}, Permitted: []string{"CAP_CHOWN"},
		}},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux:  &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	spec.Linux.Seccomp = ctrdseccomp.DefaultProfile(spec)
	eacces := uint(unix.EACCES)
	spec.Linux.Seccomp.Syscalls = append([]specs.LinuxSyscall{{Names: []string{"uname"}, Action: specs.ActErrno, ErrnoRet: &eacces}}, spec.Linux.Seccomp.Syscalls...)
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), Probes: []string{"read /f.txt", "uname", "unshare", "status Seccomp", "status NoNewPrivs"}})
	expectProbes(t, got, map[string]string{
		"read /f.txt":       "ok: readable",
		"uname":             "error: EACCES",
		"unshare":           "error: EPERM",
		"status Seccomp":    "ok: 2",
		"status NoNewPrivs": "ok: 0",
	})
}

// TestLockDown: the Keep's own filter lets it read and write its files and
// refuses what a Keep never does once its workload runs, on every thread,
// whatever the spec says (here: no profile, uid 0 with every capability).
func TestLockDown(t *testing.T) {
	requireRoot(t)
	rootfs := newRootfs(t)
	write(t, filepath.Join(rootfs, "f.txt"), "readable", 0o644)
	spec := &specs.Spec{
		Root:   &specs.Root{Path: rootfs},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"}},
		Linux:  &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), LockDown: true,
		Probes: []string{"read /f.txt", "write /tmp/x", "uname", "unshare", "status Seccomp", "status NoNewPrivs"}})
	expectProbes(t, got, map[string]string{
		"read /f.txt":       "ok: readable",
		"write /tmp/x":      "ok",
		"uname":             "ok",
		"unshare":           "error: EPERM",
		"status Seccomp":    "ok: 2",
		"status NoNewPrivs": "ok: 1",
	})
}

// TestEnterJoinsNamespaces: a Keep in a pod joins the pod's namespaces by
// path (IPC, UTS and PID when it is made, network and cgroup with every
// thread once confined), and makes a new cgroup namespace rooted at its
// cgroup when the spec asks for one.
func TestEnterJoinsNamespaces(t *testing.T) {
	requireRoot(t)
	// The pod: a process in namespaces of its own, as a sandbox's pause.
	pod := exec.Command("sleep", "60")
	pod.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	podNS := []specs.LinuxNamespace{{Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.PIDNamespace}}
	if err := Start(pod, podNS, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pod.Process.Kill(); _ = pod.Wait() })
	nsOf := func(pid int, name string) string {
		v, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	path := func(name string) string { return fmt.Sprintf("/proc/%d/ns/%s", pod.Process.Pid, name) }

	rootfs := newRootfs(t)
	spec := &specs.Spec{
		Hostname: "in-the-pod",
		Root:     &specs.Root{Path: rootfs},
		Mounts:   []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace},
			{Type: specs.IPCNamespace, Path: path("ipc")}, {Type: specs.UTSNamespace, Path: path("uts")}, {Type: specs.PIDNamespace, Path: path("pid")},
			{Type: specs.CgroupNamespace}},
			// Docker's, and one of the IPC namespace's.
			Sysctl:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "1000"},
			Personality: &specs.LinuxPersonality{Domain: specs.PerLinux32}},
	}
	hostPorts, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	got := runChild(t, childInput{Spec: *FromOCI(spec, rootfs), NetNS: path("net"),
		Probes: []string{"ns net", "ns ipc", "ns uts", "ns pid", "ns cgroup", "hostname",
			"read /proc/sys/net/ipv4/ip_unprivileged_port_start", "read /proc/sys/kernel/shmmni", "read /proc/self/personality"}})
	if after, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err != nil || string(after) != string(hostPorts) {
		t.Errorf("the host's ip_unprivileged_port_start: %q, was %q (%v)", after, hostPorts, err)
	}
	expectProbes(t, got, map[string]string{
		"read /proc/sys/net/ipv4/ip_unprivileged_port_start": "ok: 0",
		"read /proc/sys/kernel/shmmni":                       "ok: 1000",
		"read /proc/self/personality":                        "ok: 00000008",
		"ns net":                                             "ok: " + nsOf(pod.Process.Pid, "net"),
		"ns ipc":                                             "ok: " + nsOf(pod.Process.Pid, "ipc"),
		"ns uts":                                             "ok: " + nsOf(pod.Process.Pid, "uts"),
		"ns pid":                                             "ok: " + nsOf(pod.Process.Pid, "pid"),
		"hostname":                                           "ok: in-the-pod",
	})
	if c := got["ns cgroup"]; c == "ok: "+nsOf(os.Getpid(), "cgroup") || strings.Contains(c, ",") || !strings.HasPrefix(c, "ok: cgroup:") {
		t.Errorf("ns cgroup: %q, want one new namespace on every thread", c)
	}
}

// TestStartRefuses: namespaces a process cannot be started in are refused
// by name.
func TestStartRefuses(t *testing.T) {
	for _, c := range []struct {
		ns   specs.LinuxNamespace
		want string
	}{
		{specs.LinuxNamespace{Type: specs.MountNamespace, Path: "/proc/1/ns/mnt"}, "new mount namespace only"},
		{specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/1/ns/user"}, "new user namespace only"},
		{specs.LinuxNamespace{Type: specs.TimeNamespace, Path: "/proc/1/ns/time"}, "new time namespace only"},
		{specs.LinuxNamespace{Type: "nonsense"}, `"nonsense" namespace`},
	} {
		if err := Start(exec.Command("true"), []specs.LinuxNamespace{c.ns}, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.ns, err, c.want)
		}
	}
}

// TestStartTimeNamespace: a process is started in a new time namespace
// when the spec lists one without a path, as runc starts it (Docker's
// specs list one).
func TestStartTimeNamespace(t *testing.T) {
	requireRoot(t)
	host, err := os.Readlink("/proc/self/ns/time")
	if err != nil {
		t.Skipf("no time namespaces here: %v", err)
	}
	var out strings.Builder
	cmd := exec.Command("readlink", "/proc/self/ns/time")
	cmd.Stdout = &out
	if err := Start(cmd, []specs.LinuxNamespace{{Type: specs.TimeNamespace}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, "time:[") || got == host {
		t.Errorf("the process's time namespace is %q, want a new one (the test's is %q)", got, host)
	}
}

// TestEnterRefusesHostSysctls: a kernel parameter of a namespace the Keep
// shares with the host is refused, as runc refuses it.
func TestEnterRefusesHostSysctls(t *testing.T) {
	requireRoot(t)
	rootfs := newRootfs(t)
	spec := &specs.Spec{
		Root:   &specs.Root{Path: rootfs},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux:  &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_forward": "1"}, Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}},
	}
	out, err := execChild(t, childInput{Spec: *FromOCI(spec, rootfs)})
	if err == nil || !strings.Contains(string(out), "not allowed in the host's network namespace") {
		t.Errorf("net.* without a network namespace: %v\n%s", err, out)
	}
}

// TestBecomeProcessRefusesAProfileWithoutALoader: a spec's seccomp profile
// is never silently dropped: without a loader to load it with, the Keep
// fails before it changes anything of itself.
func TestBecomeProcessRefusesAProfileWithoutALoader(t *testing.T) {
	s := &Spec{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}}
	if err := becomeProcess(s, nil); err == nil || !strings.Contains(err.Error(), "linux.seccomp") {
		t.Fatalf("becomeProcess without a loader: %v, want an error naming linux.seccomp", err)
	}
}
