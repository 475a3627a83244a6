package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/enarx/containerd-shim-enarx/internal/registrytest"
	"github.com/enarx/containerd-shim-enarx/oci"
	"github.com/enarx/containerd-shim-enarx/oci/archive"
)

// pushModule is a valid, empty WebAssembly core module.
var pushModule = []byte("\x00asm\x01\x00\x00\x00")

// enarx runs the CLI in-process and returns its exit status and output.
func enarx(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), stdio{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// pushFixture writes the test module to dir/hello.wasm.
func pushFixture(t *testing.T) (dir, wasm string) {
	t.Helper()
	dir = t.TempDir()
	wasm = filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(wasm, pushModule, 0o644); err != nil {
		t.Fatal(err)
	}
	// Never the credentials of whoever runs the tests.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	return dir, wasm
}

// wantPackage is the manifest `enarx package` makes of pushModule as ref.
func wantPackage(t *testing.T, ref string, artifact bool) ocispec.Descriptor {
	t.Helper()
	desc, err := archive.WritePackage(context.Background(), &bytes.Buffer{}, archive.PackageOptions{Module: pushModule, Name: ref, Artifact: artifact})
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// pullBack pulls ref from the registry with oras and returns its manifest
// descriptor and manifest.
func pullBack(t *testing.T, ref string) (ocispec.Descriptor, ocispec.Manifest) {
	t.Helper()
	ctx := context.Background()
	repo, err := remote.NewRepository(ref)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	dst := memory.New()
	desc, err := oras.Copy(ctx, repo, repo.Reference.Reference, dst, "", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("pulling %s back: %v", ref, err)
	}
	b, err := content.FetchAll(ctx, dst, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if ok, err := dst.Exists(ctx, l); err != nil || !ok {
			t.Errorf("blob %s of %s not pulled: %v", l.Digest, ref, err)
		}
	}
	return desc, m
}

func TestPush(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	dir, wasm := pushFixture(t)
	for _, tc := range []struct {
		name     string
		artifact bool
		archive  bool // push the archive of `enarx package`, not the .wasm
	}{
		{"archive", false, true},
		{"archive-artifact", true, true},
		{"wasm", false, false},
		{"wasm-artifact", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := reg.Host + "/enarx/" + tc.name + ":1"
			input := wasm
			var flags []string
			if tc.artifact {
				flags = append(flags, "--artifact")
			}
			if tc.archive {
				input = filepath.Join(dir, tc.name+".tar")
				pkg := append(append([]string{"package"}, flags...), "--name", ref, "-o", input, wasm)
				if code, _, stderr := enarx(t, "", pkg...); code != 0 {
					t.Fatalf("enarx %q: exit %d: %s", pkg, code, stderr)
				}
				flags = nil
			}
			args := append(append([]string{"push", "--plain-http"}, flags...), input, ref)
			code, stdout, stderr := enarx(t, "", args...)
			if code != 0 {
				t.Fatalf("enarx %q: exit %d\n%s", args, code, stderr)
			}
			want := wantPackage(t, ref, tc.artifact)
			if got := strings.TrimSpace(stdout); got != ref+" "+want.Digest.String() {
				t.Errorf("stdout %q, want %q", got, ref+" "+want.Digest.String())
			}
			// Not a terminal: a line per blob (config, layer, manifest).
			if n := strings.Count(stderr, "pushed sha256:"); n != 3 {
				t.Errorf("stderr has %d \"pushed\" lines, want 3:\n%s", n, stderr)
			}
			desc, m := pullBack(t, ref)
			if desc.Digest != want.Digest {
				t.Errorf("pulled manifest %s, pushed %s", desc.Digest, want.Digest)
			}
			wantLayer := ocispec.MediaTypeImageLayerGzip
			if tc.artifact {
				wantLayer = oci.MediaTypeWasm
			}
			if len(m.Layers) != 1 || m.Layers[0].MediaType != wantLayer {
				t.Errorf("pulled layers %+v, want one %s", m.Layers, wantLayer)
			}

			// Again: every blob is there already.
			code, stdout2, stderr := enarx(t, "", args...)
			if code != 0 || stdout2 != stdout {
				t.Fatalf("second push: exit %d, stdout %q (first %q)\n%s", code, stdout2, stdout, stderr)
			}
			if !strings.Contains(stderr, "exists sha256:") {
				t.Errorf("second push: no \"exists\" line:\n%s", stderr)
			}
		})
	}
}

func TestPushAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Username: "alice", Password: "s3cret"})
	_, wasm := pushFixture(t)
	ref := reg.Host + "/enarx/hello:1"

	code, _, stderr := enarx(t, "", "push", "--plain-http", wasm, ref)
	if code != 1 || !strings.Contains(stderr, "authentication to "+reg.Host+" failed") || !strings.Contains(stderr, "--password-stdin") {
		t.Errorf("no credentials: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = enarx(t, "wrong\n", "push", "--plain-http", "--username", "alice", "--password-stdin", wasm, ref)
	if code != 1 || !strings.Contains(stderr, "authentication to "+reg.Host+" failed") {
		t.Errorf("wrong password: exit %d, stderr:\n%s", code, stderr)
	}
	code, stdout, stderr := enarx(t, "s3cret\n", "push", "--plain-http", "--username", "alice", "--password-stdin", wasm, ref)
	if code != 0 || !strings.HasPrefix(stdout, ref+" sha256:") {
		t.Fatalf("right password: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}

	// The credentials of `docker login`, from the docker config file.
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	login := `{"auths":{"` + reg.Host + `":{"auth":"YWxpY2U6czNjcmV0"}}}` // alice:s3cret
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(login), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := enarx(t, "", "push", "--plain-http", wasm, ref); code != 0 {
		t.Fatalf("docker config credentials: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestPushErrors(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	dir, wasm := pushFixture(t)
	notArchive := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notArchive, []byte("not a tar at all, just some text that is long enough to fill a tar header block"), 0o644); err != nil {
		t.Fatal(err)
	}
	notModule := filepath.Join(dir, "bad.wasm")
	if err := os.WriteFile(notModule, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr []string
	}{
		{"no-args", "", []string{"push"}, 2, []string{"want ARCHIVE|MODULE.wasm and REF"}},
		{"bad-ref", "", []string{"push", "--plain-http", wasm, "Bad Ref!"}, 2, []string{"REF", `"Bad Ref!"`}},
		{"digest-ref", "", []string{"push", wasm, reg.Host + "/x@sha256:" + strings.Repeat("a", 64)}, 2, []string{"give a tag instead"}},
		{"username-without-stdin", "", []string{"push", "--username", "u", wasm, reg.Host + "/x:1"}, 2, []string{"--password-stdin"}},
		{"media-type-without-artifact", "", []string{"push", "--media-type", oci.MediaTypeWasm, wasm, reg.Host + "/x:1"}, 2, []string{"--artifact only"}},
		{"missing-input", "", []string{"push", filepath.Join(dir, "nope.tar"), reg.Host + "/x:1"}, 1, []string{"nope.tar", "no such file"}},
		{"not-an-archive", "", []string{"push", "--plain-http", notArchive, reg.Host + "/x:1"}, 1, []string{"notes.txt: not an image archive", "enarx package"}},
		{"not-a-module", "", []string{"push", "--plain-http", notModule, reg.Host + "/x:1"}, 1, []string{"bad.wasm: not a WebAssembly module"}},
		{"artifact-with-archive", "", []string{"push", "--artifact", notArchive, reg.Host + "/x:1"}, 2, []string{"apply to a .wasm input"}},
		{"unreachable", "", []string{"push", "--plain-http", wasm, closed + "/x:1"}, 1, []string{"registry " + closed + " unreachable", "connection refused"}},
		{"https-to-http", "", []string{"push", wasm, reg.Host + "/x:1"}, 1, []string{"add --plain-http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := enarx(t, tc.stdin, tc.args...)
			t.Logf("stderr: %s", stderr)
			if code != tc.code {
				t.Fatalf("enarx %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 2_800_000: "2.8 MB", 3_100_000_000: "3.1 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestProgressBar draws the terminal form: one line redrawn with "\r",
// full at the end of a push that succeeded.
func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 3_000_000)
	if p.tty {
		t.Fatal("a buffer taken for a terminal")
	}
	p.tty = true
	d := ocispec.Descriptor{Digest: digest.FromString("layer"), Size: 1_000_000}
	p.start(d)
	p.add(500_000)
	p.done(d, "pushed")
	p.finish(true)
	out := buf.String()
	if strings.Contains(out, "\n") && !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("want one line ending the bar, got %q", out)
	}
	last := out[strings.LastIndex(out, "\r")+1:]
	if want := "pushing [" + strings.Repeat("=", 30) + "] 3.0 MB / 3.0 MB, 1 blobs done"; !strings.HasPrefix(last, want) {
		t.Errorf("last drawing %q, want %q", last, want)
	}
	if !strings.Contains(out, "1.0 MB / 3.0 MB") {
		t.Errorf("no drawing after the first blob: %q", out)
	}
}
