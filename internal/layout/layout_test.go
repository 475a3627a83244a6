package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/enarx/containerd-shim-enarx"

// maxTracked is the largest file the repository may track.
const maxTracked = 2 << 20

// moduleRoot is the directory of go.mod, found by walking up from the
// test's working directory (the package's directory under go test).
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TestNoLargeTrackedFiles fails on every tracked file over 2 MB: a build
// output committed by mistake (a 27.8 MB enarx binary once was) weighs on
// every clone forever.
func TestNoLargeTrackedFiles(t *testing.T) {
	gitTool, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git tool")
	}
	root := moduleRoot(t)
	inside := exec.Command(gitTool, "rev-parse", "--is-inside-work-tree")
	inside.Dir = root
	if out, err := inside.Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Skipf("%s is not a git checkout", root)
	}
	ls := exec.Command(gitTool, "ls-files", "-z")
	ls.Dir = root
	var stderr bytes.Buffer
	ls.Stderr = &stderr
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v\n%s", err, stderr.Bytes())
	}
	var large []string
	for _, name := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		fi, err := os.Lstat(filepath.Join(root, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		} else if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() && fi.Size() > maxTracked {
			large = append(large, fmt.Sprintf("%s (%.1f MB)", name, float64(fi.Size())/(1<<20)))
		}
	}
	if len(large) > 0 {
		t.Errorf("tracked files over %d MB (build outputs belong in bin/, see .gitignore; git rm --cached them):\n\t%s",
			maxTracked>>20, strings.Join(large, "\n\t"))
	}
}

// A rule forbids pkg (a directory relative to the module root) to link any
// package matched by one of forbid: an import path, or a path followed by
// /... for the path and every package under it. A package never matches
// its own rule, so module+"/..." says it links nothing else of the module.
// name names the rule in the subtest's name.
type rule struct {
	pkg    string
	name   string
	forbid []string
	why    string
}

var (
	teeLibs = []string{"github.com/google/go-sev-guest/...", "github.com/google/go-tdx-guest/..."}
	leaf    = []string{module + "/..."}
)

var rules = []rule{
	{"keep/engine", "leaf", leaf, "the engine seam is a leaf: engines and their users import it, it imports none of them"},
	{"enarxdev", "leaf", leaf, "the enarx.dev/* keys are a leaf: the shim, the CLI and the Keep all import them"},
	{"internal/wasmfixture", "leaf", leaf, "the tests' builder of Go fixtures runs the go command on the module's packages, it links none of them"},
	{"keep/engine", "no-TEE-libs", teeLibs, "running a module needs no TEE: attestation is the Keep's, not the engine's"},
	{"keep/wasmtime", "no-TEE-libs", teeLibs, "running a module needs no TEE: attestation is the Keep's, not the engine's"},
	{"keep/workload", "leaves-only", append([]string{module + "/keep", module + "/keep/sockets", module + "/attestation/...", module + "/tlssock/...", module + "/oci/...", module + "/shim/..."}, teeLibs...),
		"a workload's description names only the leaves below it (keep/engine, socketspec)"},
	{"keep/confine", "leaf", leaf, "the Keep's confinement reads an OCI spec and makes mounts: it needs nothing of the Keep, the engine or a TEE"},
	{"keep/sockets/socketspec", "leaf", leaf, "a socket's declaration is checked without the network or TLS, so that oci and the CLI read it without linking them"},
	{"keep/wasmtime", "no-keep", []string{module + "/keep", module + "/attestation/..."}, "an engine implements the engine seam; the Keep, its attestation and its backends are not the engine's"},
	{"oci", "no-TEE-libs", teeLibs, "turning a bundle or an image into a workload needs no TEE"},
	{"oci", "no-keep", []string{module + "/keep", module + "/keep/sockets", module + "/attestation/..."}, "oci describes a workload; the Keep that runs it is the shim's business"},
	{"cmd/enarx", "no-mount-no-shim", []string{"github.com/containerd/containerd/v2/core/mount", module + "/shim"},
		"the CLI runs Keeps without containerd: it mounts no rootfs and embeds no shim"},
	{"cmd/containerd-shim-enarx-v1", "lean", []string{"github.com/bytecodealliance/wasmtime-go/...", module + "/keep/...", module + "/shim",
		module + "/attestation/...", module + "/oci", "github.com/containerd/ttrpc", "google.golang.org/grpc/...", "github.com/containerd/cgroups/...",
		"github.com/containerd/containerd/api/...", "google.golang.org/protobuf/proto", "google.golang.org/protobuf/types/...",
		"google.golang.org/protobuf/runtime/...", "github.com/opencontainers/go-digest", "github.com/pelletier/go-toml/..."},
		"containerd executes the shim's launcher twice per container (start, delete) and waits for it, and Go initialises all a binary links before main: " +
			"it links no engine, Keep, TEE, ttrpc, gRPC, cgroup or TOML code, and no generated protobuf package (whose descriptors register at every start: " +
			"it encodes its few messages with protowire); the server (cmd/enarx-shim, package shim) does"},
	{"cmd/enarx-shim", "no-engine", []string{"github.com/bytecodealliance/wasmtime-go/...", module + "/keep/wasmtime/..."},
		"the shim server runs for every pod or container: it links no engine, which is the Keep binary's (cmd/enarx-keep), and make build links it without cgo"},
	{"keep", "protocol-only", []string{module + "/keep/host", module + "/keep/guest", "github.com/containerd/cgroups/...", "github.com/elastic/go-seccomp-bpf/...", "github.com/pion/dtls/...", module + "/tlssock/..."},
		"package keep is what the shim's end and the Keep's end share: linking it costs neither process the other's libraries"},
	{"keep/confine", "no-seccomp-assembler", []string{"github.com/elastic/go-seccomp-bpf/..."},
		"the shim links confine to start Keeps; go-seccomp-bpf builds its tables of every architecture at each process's start (~1 ms): the Keep gives Enter confine/seccomp's loader"},
	{"cmd/enarx-shim", "no-Keep's-end", []string{module + "/keep/guest", module + "/keep/confine/seccomp", "github.com/elastic/go-seccomp-bpf/...", "github.com/pion/dtls/...",
		module + "/tlssock/...", module + "/attestation/stewardclient", "github.com/go-jose/...", module + "/keep/modulecache"},
		"the server is on the critical path of every container's start, before the Keep it starts: it links none of what only runs in a Keep (DTLS, the Steward client, seccomp filters, the module cache)"},
	{"cmd/enarx-keep", "no-shim's-end", []string{module + "/keep/host", module + "/keep/cgroup/...", "github.com/containerd/cgroups/...", "github.com/cilium/ebpf/...", module + "/shim/..."},
		"a Keep is placed in its cgroup by the shim before its first instruction: it links no cgroups library (eBPF, D-Bus, go/format), which every Keep's start would pay for"},
	{"shim", "no-engine", []string{"github.com/bytecodealliance/wasmtime-go/...", module + "/keep/wasmtime/..."},
		"the shim manages Keeps; the engine runs in them"},
}

// A graph is what go list -deps -json says of a package: every package it
// links, with the packages each imports.
type graph struct {
	root    string              // the import path of the package itself
	imports map[string][]string // import path -> its imports, for every dependency
	order   []string            // the dependencies as go list lists them
}

// deps runs go list once per package, however many rules name it.
var deps = struct {
	sync.Mutex
	m map[string]func() (*graph, error)
}{m: map[string]func() (*graph, error){}}

func loadDeps(goTool, root, pkg string) (*graph, error) {
	deps.Lock()
	load, ok := deps.m[pkg]
	if !ok {
		load = sync.OnceValues(func() (*graph, error) {
			cmd := exec.Command(goTool, "list", "-deps", "-json=ImportPath,Imports", "./"+pkg)
			cmd.Dir = root
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("go list -deps ./%s: %v: %s", pkg, err, bytes.TrimSpace(stderr.Bytes()))
			}
			g := &graph{imports: map[string][]string{}}
			for dec := json.NewDecoder(bytes.NewReader(out)); ; {
				var p struct {
					ImportPath string
					Imports    []string
				}
				if err := dec.Decode(&p); err == io.EOF {
					break
				} else if err != nil {
					return nil, fmt.Errorf("go list -deps ./%s: %v", pkg, err)
				}
				g.imports[p.ImportPath] = p.Imports
				g.order = append(g.order, p.ImportPath)
			}
			if len(g.order) == 0 {
				return nil, fmt.Errorf("go list -deps ./%s listed nothing", pkg)
			}
			g.root = g.order[len(g.order)-1] // -deps lists a package after its dependencies
			return g, nil
		})
		deps.m[pkg] = load
	}
	deps.Unlock()
	return load()
}

func matches(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == pattern
}

// violations returns, for each forbidden package pkg links first-hand (not
// only through another forbidden one), one shortest import chain to it,
// the module's packages in it named relative to the module.
func (g *graph) violations(forbid []string) []string {
	forbidden := func(p string) bool {
		if p == g.root {
			return false
		}
		for _, f := range forbid {
			if matches(f, p) {
				return true
			}
		}
		return false
	}
	parent := map[string]string{g.root: ""}
	var found []string
	for queue := []string{g.root}; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		if forbidden(p) {
			chain := []string{p}
			for q := parent[p]; q != ""; q = parent[q] {
				chain = append([]string{q}, chain...)
			}
			found = append(found, strings.ReplaceAll(strings.Join(chain, " -> "), module+"/", ""))
			continue // what it brings in is reported through it
		}
		for _, q := range g.imports[p] {
			if _, seen := parent[q]; !seen {
				parent[q] = p
				queue = append(queue, q)
			}
		}
	}
	sort.Strings(found)
	return found
}

// TestDependencies checks rules: which package may link what.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go tool on PATH: the dependency rules cannot be checked")
	}
	root := moduleRoot(t)
	for _, r := range rules {
		t.Run(r.pkg+"/"+r.name, func(t *testing.T) {
			t.Parallel()
			g, err := loadDeps(goTool, root, r.pkg)
			if err != nil {
				t.Fatalf("%s: %v (a package the layout rules name must exist)", r.pkg, err)
			}
			if v := g.violations(r.forbid); len(v) > 0 {
				t.Errorf("%s links what it must not (%s): %s:\n\t%s",
					r.pkg, strings.Join(r.forbid, ", "), r.why, strings.Join(v, "\n\t"))
			}
		})
	}
}
