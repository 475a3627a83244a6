package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx/containerd-shim-enarx/internal/registrytest"
)

// pushedImage is an image `enarx push` put in the test registry.
type pushedImage struct {
	ref      string // 127.0.0.1:PORT/enarx/NAME:1
	digest   string // of its manifest, as enarx push printed it
	artifact bool
}

// enarxPush runs `enarx push --plain-http [flags] input ref` and returns the
// digest it printed.
func enarxPush(t *testing.T, input, ref string, flags ...string) string {
	t.Helper()
	bin := requireBinaries(t)
	args := append(append([]string{"push", "--plain-http"}, flags...), input, ref)
	cmd := exec.Command(filepath.Join(bin, enarxBinary), args...)
	// Not the credentials of whoever runs the tests.
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("enarx %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != ref || !strings.HasPrefix(f[1], "sha256:") {
		t.Fatalf("enarx %s: stdout %q, want %q", strings.Join(args, " "), out, ref+" sha256:...")
	}
	if !strings.Contains(stderr.String(), "pushed "+f[1]) {
		t.Errorf("enarx %s: no \"pushed %s\" line on stderr:\n%s", strings.Join(args, " "), f[1], stderr.String())
	}
	return f[1]
}

// TestRegistry publishes a module with `enarx push` to a registry on
// loopback, in both forms, and has containerd pull it from there and run it:
// the default form from an archive of `enarx package`, the artifact form
// straight from the .wasm. containerd 1.6 cannot unpack the artifact form, so
// it pulls only the default one.
func TestRegistry(t *testing.T) {
	requireBinaries(t)
	reg := registrytest.Start(t, registrytest.Options{})
	wasm := buildGoWasm(t, "hello")

	archive := filepath.Join(t.TempDir(), "hello.tar")
	tarRef := reg.Host + "/enarx/hello:1"
	pkg := exec.Command(filepath.Join(harness.binDir, enarxBinary), "package", "--name", tarRef, "-o", archive, wasm)
	if out, err := pkg.CombinedOutput(); err != nil {
		t.Fatalf("enarx package: %v\n%s", err, out)
	}
	images := []pushedImage{
		{ref: tarRef, digest: enarxPush(t, archive, tarRef)},
	}
	artifactRef := reg.Host + "/enarx/hello-artifact:1"
	images = append(images, pushedImage{ref: artifactRef, digest: enarxPush(t, wasm, artifactRef, "--artifact"), artifact: true})

	forEachDaemon(t, func(t *testing.T, d *Daemon) {
		for _, img := range images {
			name := "default"
			if img.artifact {
				name = "artifact"
			}
			t.Run(name, func(t *testing.T) {
				if img.artifact && d.Kind == containerd16 {
					t.Skip("containerd 1.6 cannot unpack the artifact form")
				}
				ns := newNamespace(t, d)
				pull := []string{"images", "pull", "--plain-http"}
				if img.artifact {
					// The transfer service of 2.4 unpacks only the platforms of its
					// configuration (linux): pull in ctr, as `ctr images import` does.
					pull = append(pull, "--local", "--platform", "wasip1/wasm")
				}
				d.mustCtr(t, ns, append(pull, img.ref)...)
				if got := imageDigest(t, d, ns, img.ref); got != img.digest {
					t.Errorf("pulled %s as %s, enarx push printed %s", img.ref, got, img.digest)
				}
				id := uniqueID("registry")
				stdout, stderr, exit := runWasm(t, d, ns, nil, img.ref, id)
				if exit != 0 {
					t.Fatalf("exit %d, want 0; stderr: %s\n%s", exit, stderr, d.LogTail(30))
				}
				if !strings.Contains(stdout, "Hello from a Keep!") {
					t.Errorf("stdout %q does not greet", stdout)
				}
				assertNoTaskState(t, d, ns, id)
			})
		}
	})
}

// imageDigest is the DIGEST column of `ctr images ls` for ref.
func imageDigest(t *testing.T, d *Daemon, ns, ref string) string {
	t.Helper()
	out := d.mustCtr(t, ns, "images", "ls")
	for _, line := range readLines(out) {
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	t.Fatalf("%s not among the images of %s:\n%s", ref, ns, out)
	return ""
}
