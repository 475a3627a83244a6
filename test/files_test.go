package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/enarx/containerd-shim-enarx/oci"
)

// What a workload sees of files: the root filesystem and bind mounts as WASI
// preopens, the working directory, confinement, and Enarx.toml. The
// workload is test/fixtures/fsprobe, which prints one line per command.

// importFsprobeImage imports an image holding fsprobe as /app.wasm (the
// entrypoint) and the extra files.
func importFsprobeImage(t *testing.T, d *Daemon, ns, ref string, extra ...tarFile) string {
	t.Helper()
	return importFixtureImage(t, d, ns, ref, "fsprobe", extra...)
}

// importFixtureImage imports an image whose root filesystem holds the Go
// fixture built for wasip1 as /app.wasm, plus extra files, with
// entrypoint /app.wasm.
func importFixtureImage(t *testing.T, d *Daemon, ns, ref, fixture string, extra ...tarFile) string {
	t.Helper()
	wasm, err := os.ReadFile(buildGoWasm(t, fixture))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]tarFile{{Name: "app.wasm", Mode: 0o644, Data: wasm}}, extra...)
	archive := filepath.Join(t.TempDir(), fixture+".tar")
	if err := writeRootfsImage(archive, ref, files, []string{"/app.wasm"}); err != nil {
		t.Fatal(err)
	}
	importArchive(t, d, ns, ref, archive)
	return ref
}

// probeResults maps each command of fsprobe's output ("read /x") to its
// result ("ok: ...", "error: ...").
func probeResults(stdout string) map[string]string {
	results := map[string]string{}
	for _, line := range readLines(stdout) {
		for _, sep := range []string{": ok", ": error"} {
			if i := strings.Index(line, sep); i >= 0 {
				results[line[:i]] = line[i+2:]
				break
			}
		}
	}
	return results
}

// expectProbe checks that each command's result starts with want[command].
func expectProbe(t *testing.T, stdout, stderr string, want map[string]string) {
	t.Helper()
	got := probeResults(stdout)
	for cmd, w := range want {
		r, ok := got[cmd]
		switch {
		case !ok:
			t.Errorf("no result for %q in the output:\n%s\nstderr: %s", cmd, stdout, stderr)
		case !strings.HasPrefix(r, w):
			t.Errorf("%s: %q, want %q", cmd, r, w)
		}
	}
}

func writeHostFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFilesMounts(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		roDir, rwDir := t.TempDir(), t.TempDir()
		writeHostFile(t, filepath.Join(roDir, "a.txt"), "from the host")
		ref := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe:latest",
			tarFile{Name: "image.txt", Mode: 0o644, Data: []byte("in the image")},
			tarFile{Name: "data/inside.txt", Mode: 0o644, Data: []byte("hidden by the mount")})
		mounts := []string{
			"--mount", "type=bind,src=" + roDir + ",dst=/data,options=rbind:ro",
			"--mount", "type=bind,src=" + rwDir + ",dst=/out,options=rbind:rw",
		}

		stdout, stderr, exit := runWasm(t, d, ns, mounts, ref, uniqueID("mounts"), "/app.wasm",
			"read", "/data/a.txt", "read", "/image.txt", "read", "/data/inside.txt", "ls", "/data",
			"write", "/data/new.txt", "x", "write", "/out/w.txt", "from the keep", "write", "/scratch.txt", "y", "pwd")
		if exit != 3 {
			t.Errorf("exit %d, want 3 (a write was refused); stderr: %s", exit, stderr)
		}
		expectProbe(t, stdout, stderr, map[string]string{
			// /data is the more specific preopen: it wins over "/".
			"read /data/a.txt":      "ok: from the host",
			"read /data/inside.txt": "error",
			"ls /data":              "ok: a.txt",
			"read /image.txt":       "ok: in the image",
			"write /data/new.txt":   "error",
			"write /out/w.txt":      "ok",
			"write /scratch.txt":    "ok",
			"pwd":                   "ok: /",
		})
		if b, err := os.ReadFile(filepath.Join(rwDir, "w.txt")); err != nil || string(b) != "from the keep" {
			t.Errorf("the write to the rw mount is not on the host: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(roDir, "new.txt")); !os.IsNotExist(err) {
			t.Errorf("the write to the ro mount reached the host: %v", err)
		}

		// ctr run --read-only: the root filesystem is preopened read-only.
		stdout, stderr, _ = runWasm(t, d, ns, []string{"--read-only"}, ref, uniqueID("readonly"), "/app.wasm",
			"read", "/image.txt", "write", "/scratch.txt", "y")
		expectProbe(t, stdout, stderr, map[string]string{
			"read /image.txt":    "ok: in the image",
			"write /scratch.txt": "error",
		})

		// ctr run --cwd: PWD is the working directory of a Go workload.
		stdout, stderr, exit = runWasm(t, d, ns, append(mounts, "--cwd", "/data"), ref, uniqueID("cwd"), "/app.wasm",
			"pwd", "env", "PWD", "read", "a.txt", "write", "../out/rel.txt", "relative")
		if exit != 0 {
			t.Errorf("--cwd /data: exit %d; stderr: %s\n%s", exit, stderr, stdout)
		}
		expectProbe(t, stdout, stderr, map[string]string{
			"pwd":                  "ok: /data",
			"env PWD":              "ok: /data",
			"read a.txt":           "ok: from the host",
			"write ../out/rel.txt": "ok",
		})
		if b, err := os.ReadFile(filepath.Join(rwDir, "rel.txt")); err != nil || string(b) != "relative" {
			t.Errorf("relative write: %q, %v", b, err)
		}

		// A PWD of the spec's is kept.
		stdout, stderr, _ = runWasm(t, d, ns, []string{"--cwd", "/data", "--env", "PWD=/elsewhere"}, ref, uniqueID("pwd"), "/app.wasm", "env", "PWD")
		expectProbe(t, stdout, stderr, map[string]string{"env PWD": "ok: /elsewhere"})
	})
}

// TestFilesEscape tries to reach host files that are not preopened: "..",
// absolute paths and symbolic links in the image, absolute and relative.
// Every attempt must fail.
func TestFilesEscape(t *testing.T) {
	base := t.TempDir()
	secret := "host secret " + randomHex(8)
	writeHostFile(t, filepath.Join(base, "secret"), secret)
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	writeHostFile(t, filepath.Join(shared, "a.txt"), "shared")
	up := strings.Repeat("../", 20)
	hostname, _ := os.ReadFile("/etc/hostname")
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-escape:latest",
			tarFile{Name: "etc/hostname", Mode: 0o644, Data: []byte("image hostname")},
			tarFile{Name: "abs-hostname", Link: "/etc/hostname"},
			tarFile{Name: "rel-hostname", Link: up + "etc/hostname"},
			tarFile{Name: "abs-secret", Link: filepath.Join(base, "secret")},
			tarFile{Name: "rel-secret", Link: strings.TrimSuffix(up, "/") + filepath.Join(base, "secret")},
			tarFile{Name: "etc-link", Link: "/etc"},
			tarFile{Name: "up", Link: up},
		)
		// fd 3 is the root of the container's view, where /data is mounted.
		mount := []string{"--mount", "type=bind,src=" + shared + ",dst=/data,options=rbind:ro"}
		attempts := []string{
			"read /abs-hostname", "read /rel-hostname", "read /abs-secret", "read /rel-secret",
			"ls /etc-link", "ls /up",
			"read /" + up + filepath.Join(base, "secret"),
			"read " + up + filepath.Join(base, "secret"),
			"read /data/../secret",
			"openat 3 " + up + "etc/hostname",
			"openat 3 /etc/hostname",
			"openat 3 " + up + strings.TrimPrefix(filepath.Join(base, "secret"), "/"),
			"openat 3 abs-secret",
			"openat 3 data/../../secret",
			"openat 3 ..",
		}
		args := []string{"/app.wasm", "read", "/etc/hostname", "openat", "3", "data/a.txt"}
		for _, a := range attempts {
			args = append(args, strings.Fields(a)...)
		}
		stdout, stderr, exit := runWasm(t, d, ns, mount, ref, uniqueID("escape"), args...)
		if exit != 3 {
			t.Errorf("exit %d, want 3; stderr: %s", exit, stderr)
		}
		want := map[string]string{"read /etc/hostname": "ok: image hostname", "openat 3 data/a.txt": "ok: shared"}
		for _, a := range attempts {
			want[a] = "error"
		}
		expectProbe(t, stdout, stderr, want)
		if strings.Contains(stdout, secret) {
			t.Errorf("the workload read the host's secret:\n%s", stdout)
		}
		if h := strings.TrimSpace(string(hostname)); h != "" && strings.Contains(stdout, ": ok: "+h) {
			t.Errorf("the workload read the host's /etc/hostname:\n%s", stdout)
		}
	})
}

func TestFilesEnarxTOML(t *testing.T) {
	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		ns := newNamespace(t, d)
		ref := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-toml:latest",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte(`args = ["env", "GREETING", "env", "PATH", "env", "FD_NAMES", "args"]

[env]
GREETING = "from Enarx.toml"
PATH = "/from/enarx/toml"
`)})
		stdout, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("toml"))
		if exit != 0 {
			t.Fatalf("exit %d; stderr: %s", exit, stderr)
		}
		expectProbe(t, stdout, stderr, map[string]string{
			"env GREETING": "ok: from Enarx.toml",
			// The image config's PATH is the spec's: it wins.
			"env PATH":     "ok: /usr/local/sbin:",
			"env FD_NAMES": "ok: unset",
			"args":         "ok: env,GREETING,env,PATH,env,FD_NAMES,args",
		})

		// The spec's env wins; so do its args when it has some.
		stdout, stderr, _ = runWasm(t, d, ns, []string{"--env", "GREETING=from the spec"}, ref, uniqueID("toml"))
		expectProbe(t, stdout, stderr, map[string]string{"env GREETING": "ok: from the spec"})
		stdout, stderr, _ = runWasm(t, d, ns, nil, ref, uniqueID("toml"), "/app.wasm", "args", "env", "GREETING")
		expectProbe(t, stdout, stderr, map[string]string{"args": "ok: args,env,GREETING", "env GREETING": "ok: from Enarx.toml"})
		if strings.Contains(stdout, "env PATH") {
			t.Errorf("Enarx.toml's args were used with the spec's:\n%s", stdout)
		}

		// files: stdout to /dev/null, stderr connected.
		nullRef := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-null:latest",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte(`[[files]]
kind = "stdin"

[[files]]
kind = "null"
name = "stdout"

[[files]]
kind = "stderr"
`)})
		stdout, stderr, exit = runWasm(t, d, ns, nil, nullRef, uniqueID("null"), "/app.wasm", "stdout", "hidden", "stderr", "shown", "env", "FD_NAMES")
		// (ctr 2.4 may add a warning of its own on stderr.)
		if exit != 0 || stdout != "" || !contains(readLines(stderr), "shown") || strings.Contains(stderr, "hidden") {
			t.Errorf("stdout null: exit %d, stdout %q, stderr %q; want 0, nothing, %q", exit, stdout, stderr, "shown")
		}

		// An invalid Enarx.toml fails the container, naming the file and line.
		badRef := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-bad-toml:latest",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte("args = [\"a\"]\n\nenv = [\"X=1\"]\n")})
		id := uniqueID("badtoml")
		_, stderr, exit = runWasm(t, d, ns, nil, badRef, id)
		if exit == 0 || !strings.Contains(stderr, "Enarx.toml: line 3") {
			t.Errorf("invalid Enarx.toml: exit %d, stderr %q; want a failure naming Enarx.toml and line 3", exit, stderr)
		}
		assertNoLeftovers(t, id)
		d.ctr(t, ns, "containers", "rm", id)

		// A socket in place of a standard stream is refused.
		sockRef := importFsprobeImage(t, d, ns, "docker.io/enarx-test/fsprobe-socket:latest",
			tarFile{Name: "Enarx.toml", Mode: 0o644, Data: []byte("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"listen\"\nname = \"LISTEN\"\nport = 8443\n")})
		id = uniqueID("socket")
		_, stderr, exit = runWasm(t, d, ns, nil, sockRef, id)
		if exit == 0 || !strings.Contains(stderr, "files[1]") || !strings.Contains(stderr, "before the sockets") {
			t.Errorf("listen socket at descriptor 1: exit %d, stderr %q", exit, stderr)
		}
		assertNoLeftovers(t, id)
		d.ctr(t, ns, "containers", "rm", id)
	})
}

// TestFilesEnarxTOMLArtifact runs a wasm artifact image whose Enarx.toml is
// a layer of its own (containerd 2.x: 1.6 cannot import artifact images).
func TestFilesEnarxTOMLArtifact(t *testing.T) {
	d := sharedDaemon(t, containerd24)
	ns := newNamespace(t, d)
	wasm, err := os.ReadFile(buildGoWasm(t, "fsprobe"))
	if err != nil {
		t.Fatal(err)
	}
	ref := "docker.io/enarx-test/fsprobe-artifact:latest"
	archive := filepath.Join(t.TempDir(), "artifact.tar")
	toml := []byte("args = [\"env\", \"GREETING\", \"ls\", \"/\"]\nenv = { GREETING = \"from the layer\" }\n")
	if err := writeArtifactImage(archive, ref, wasm, toml); err != nil {
		t.Fatal(err)
	}
	importArchive(t, d, ns, ref, archive, wasmImportFlags(true)...)
	stdout, stderr, exit := runWasm(t, d, ns, nil, ref, uniqueID("artifact-toml"))
	if exit != 0 {
		t.Fatalf("exit %d; stderr: %s\n%s", exit, stderr, stdout)
	}
	expectProbe(t, stdout, stderr, map[string]string{"env GREETING": "ok: from the layer"})
}

// writeArtifactImage writes an OCI image layout tar of a wasm artifact image
// (config wasip1/wasm, no tar layer) with the module and an Enarx.toml layer.
func writeArtifactImage(path, ref string, wasm, toml []byte) error {
	platform := ocispec.Platform{OS: oci.WasmOS, Architecture: oci.WasmArchitecture}
	created := time.Unix(0, 0).UTC()
	config, err := json.Marshal(ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config:   ocispec.ImageConfig{Entrypoint: []string{"app.wasm"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	})
	if err != nil {
		return err
	}
	return writeImageLayout(path, ref, platform, config, layerBlob{oci.MediaTypeWasm, wasm}, layerBlob{oci.MediaTypeTOML, toml})
}
