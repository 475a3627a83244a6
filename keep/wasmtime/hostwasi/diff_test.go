//go:build linux

package hostwasi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v39"

	"github.com/enarx/containerd-shim-enarx/keep/engine"
)

// The differential suite: each case is a WAT program that calls WASI
// functions and records what they return (errno and out values) into its
// memory; it runs once on wasmtime's own WASI (wasmtime-go's WasiConfig,
// as a Keep without sockets gets it) and once on this package's, each with
// a fresh copy of the same directories, and everything observable must
// match: the records, the exit, stdout and stderr, and the directories
// afterwards.

// diffCase is one program of the differential suite.
type diffCase struct {
	name string
	// fn names the WASI function the case is about (for the suite's
	// coverage count).
	fn string
	// body is _start's body. {s:TEXT} becomes (i32.const OFF) (i32.const
	// LEN) of TEXT in memory, {p:TEXT} its (i32.const OFF) only.
	// (call $rec X) records the i32 X, (call $rec64 X) the i64 X,
	// (call $recmem P N) N bytes of memory at P.
	body string
	// stdin is what descriptor 0 reads.
	stdin string
	// args replace the default arguments (a Go program's commands).
	args []string
	// skip, when set, says why hostwasi cannot match wasmtime's WASI for
	// this case: it is run and its difference logged, not failed.
	skip string
}

// Scratch memory for cases: out values go to 0x9000 and up (O1..), big
// buffers to 0xa000.
const diffPrelude = `
  (memory (export "memory") 4)
  (global $out (mut i32) (i32.const 0x20000))
  (global (export "out_end") (mut i32) (i32.const 0x20000))
  (func $rec (param i32)
    (i32.store (global.get $out) (local.get 0))
    (global.set $out (i32.add (global.get $out) (i32.const 4)))
    (global.set 1 (global.get $out)))
  (func $rec64 (param i64)
    (i64.store (global.get $out) (local.get 0))
    (global.set $out (i32.add (global.get $out) (i32.const 8)))
    (global.set 1 (global.get $out)))
  (func $recmem (param i32 i32)
    (call $rec (local.get 1))
    (memory.copy (global.get $out) (local.get 0) (local.get 1))
    (global.set $out (i32.and (i32.add (i32.add (global.get $out) (local.get 1)) (i32.const 3)) (i32.const -4)))
    (global.set 1 (global.get $out)))
  ;; iovec at P: one buffer (B, N)
  (func $iov (param i32 i32 i32)
    (i32.store (local.get 0) (local.get 1))
    (i32.store offset=4 (local.get 0) (local.get 2)))
  ;; $open: path_open under DIR of (P, N) with LOOKUP, OFLAGS, RIGHTS (base
  ;; and inheriting) and FDFLAGS: the new descriptor, or -errno.
  (func $open (param $dir i32) (param $p i32) (param $n i32) (param $lookup i32) (param $oflags i32) (param $rights i64) (param $fdflags i32) (result i32)
    (local $e i32)
    (local.set $e (call $path_open (local.get $dir) (local.get $lookup) (local.get $p) (local.get $n)
      (local.get $oflags) (local.get $rights) (local.get $rights) (local.get $fdflags) (i32.const 0x8ff0)))
    (if (result i32) (local.get $e)
      (then (i32.sub (i32.const 0) (local.get $e)))
      (else (i32.load (i32.const 0x8ff0)))))
  ;; $write: fd_write of (P, N) to FD in one iovec: errno; the count at 0x8ff4.
  (func $write (param $fd i32) (param $p i32) (param $n i32) (result i32)
    (call $iov (i32.const 0x8fe0) (local.get $p) (local.get $n))
    (call $fd_write (local.get $fd) (i32.const 0x8fe0) (i32.const 1) (i32.const 0x8ff4)))
  ;; $read: fd_read of up to N bytes into P from FD: errno; the count at 0x8ff4.
  (func $read (param $fd i32) (param $p i32) (param $n i32) (result i32)
    (call $iov (i32.const 0x8fe0) (local.get $p) (local.get $n))
    (call $fd_read (local.get $fd) (i32.const 0x8fe0) (i32.const 1) (i32.const 0x8ff4)))
  (func $count (result i32) (i32.load (i32.const 0x8ff4)))
`

var strRef = regexp.MustCompile(`\{([sp]):([^}]*)\}`)

// diffWAT returns c's module.
func diffWAT(c diffCase) string {
	var b strings.Builder
	b.WriteString("(module\n")
	names := make([]string, 0, len(signatures))
	for n := range signatures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, `  (import "%s" "%s" (func $%s`, module, n, n)
		if sig := signatures[n]; sig != "" {
			b.WriteString(" (param")
			for _, p := range sig {
				if p == 'I' {
					b.WriteString(" i64")
				} else {
					b.WriteString(" i32")
				}
			}
			b.WriteString(")")
		}
		if n != "proc_exit" {
			b.WriteString(" (result i32)")
		}
		b.WriteString("))\n")
	}
	b.WriteString(diffPrelude)
	off := 0x100
	strs := map[string]int{}
	body := strRef.ReplaceAllStringFunc(c.body, func(m string) string {
		sub := strRef.FindStringSubmatch(m)
		s := strings.ReplaceAll(sub[2], `\n`, "\n")
		p, ok := strs[s]
		if !ok {
			p = off
			strs[s] = p
			fmt.Fprintf(&b, "  (data (i32.const %d) %q)\n", p, s)
			off += (len(s) + 8) &^ 7
		}
		if sub[1] == "p" {
			return fmt.Sprintf("(i32.const %d)", p)
		}
		return fmt.Sprintf("(i32.const %d) (i32.const %d)", p, len(s))
	})
	if off > 0x9000 {
		panic("diff case strings overflow")
	}
	fmt.Fprintf(&b, "  (func (export \"_start\") (local $fd i32) (local $fd2 i32) (local $e i32) (local $i i32)\n%s\n  )\n)\n", body)
	return b.String()
}

// diffResult is everything a case run shows.
type diffResult struct {
	records        []byte
	exit           string
	stdout, stderr string
	tree           map[string]string
}

// diffSetup makes the directories every case starts with: a writable
// preopen "/" and a read-only one "/ro", holding files, directories and
// symbolic links (relative, dangling, looping, escaping).
func diffSetup(t *testing.T) (rw, ro, outside string) {
	base := t.TempDir()
	rw, ro, outside = filepath.Join(base, "rw"), filepath.Join(base, "ro"), filepath.Join(base, "outside")
	for _, d := range []string{rw, ro, outside, rw + "/dir", rw + "/dir/sub", rw + "/empty", ro + "/dir"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		rw + "/file.txt":      "hello, world\n",
		rw + "/dir/a.txt":     "aaaa",
		rw + "/dir/sub/b.txt": "bb",
		rw + "/big.bin":       strings.Repeat("0123456789abcdef", 4096),
		ro + "/ro.txt":        "read only\n",
		ro + "/dir/c.txt":     "c",
		outside + "/secret":   "secret",
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		rw + "/link-file":  "file.txt",
		rw + "/link-dir":   "dir",
		rw + "/dangling":   "nowhere",
		rw + "/loop1":      "loop2",
		rw + "/loop2":      "loop1",
		rw + "/escape":     "../outside/secret",
		rw + "/abs":        "/etc/hostname",
		rw + "/dir/up":     "../file.txt",
		ro + "/link-ro":    "ro.txt",
		rw + "/link-slash": "dir/",
	}
	for p, target := range links {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return rw, ro, outside
}

// treeOf describes every entry under root: type, size and content of
// files, target of links, mode bits.
func treeOf(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case fi.IsDir():
			out[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			s := string(b)
			if len(s) > 64 {
				s = fmt.Sprintf("%d bytes %x", len(s), b[:16])
			}
			out[rel] = fmt.Sprintf("file %v %q", fi.Mode().Perm(), s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runDiff runs c on one WASI: ours when hostWASI, else wasmtime's.
func runDiff(t *testing.T, c diffCase, mod *wasmtime.Module, hostWASI bool) diffResult {
	rw, ro, outside := diffSetup(t)
	dir := t.TempDir()
	stdinPath, stdoutPath, stderrPath := filepath.Join(dir, "stdin"), filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	if err := os.WriteFile(stdinPath, []byte(c.stdin), 0o644); err != nil {
		t.Fatal(err)
	}
	preopens := []engine.Preopen{{HostPath: rw, GuestPath: "/"}, {HostPath: ro, GuestPath: "/ro", ReadOnly: true}}
	args := []string{"prog", "arg one", ""}
	if c.args != nil {
		args = c.args
	}
	env := []string{"A=1", "EMPTY=", "B=two words", "PWD=/"}

	store := wasmtime.NewStore(wasmEngine)
	defer store.Close()
	linker := wasmtime.NewLinker(wasmEngine)
	defer linker.Close()
	var w *WASI
	if hostWASI {
		open := func(p string, flag int) *os.File {
			f, err := os.OpenFile(p, flag, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}
		var err error
		w, err = New(Config{Args: args, Env: env, Preopens: preopens,
			Stdin:  open(stdinPath, os.O_RDONLY),
			Stdout: open(stdoutPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC),
			Stderr: open(stderrPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Define(linker); err != nil {
			t.Fatal(err)
		}
	} else {
		cfg := wasmtime.NewWasiConfig()
		for _, p := range preopens {
			dirPerms, filePerms := wasmtime.DIR_READ|wasmtime.DIR_WRITE, wasmtime.FILE_READ|wasmtime.FILE_WRITE
			if p.ReadOnly {
				dirPerms, filePerms = wasmtime.DIR_READ, wasmtime.FILE_READ
			}
			if err := cfg.PreopenDir(p.HostPath, p.GuestPath, dirPerms, filePerms); err != nil {
				t.Fatal(err)
			}
		}
		cfg.SetArgv(args)
		var keys, values []string
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			keys, values = append(keys, k), append(values, v)
		}
		cfg.SetEnv(keys, values)
		for _, err := range []error{cfg.SetStdinFile(stdinPath), cfg.SetStdoutFile(stdoutPath), cfg.SetStderrFile(stderrPath)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		store.SetWasi(cfg)
		if err := linker.DefineWasi(); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		t.Fatal(err)
	}
	var r diffResult
	_, err = inst.GetFunc(store, "_start").Call(store)
	switch {
	case hostWASI && w.exited:
		r.exit = fmt.Sprintf("exit %d", w.exitCode)
	case err == nil:
		r.exit = "returned"
	default:
		var werr *wasmtime.Error
		var trap *wasmtime.Trap
		if errors.As(err, &werr) {
			if code, ok := werr.ExitStatus(); ok {
				r.exit = fmt.Sprintf("exit %d", code)
				break
			}
		}
		if errors.As(err, &trap) {
			r.exit = "trap"
		} else {
			r.exit = "error"
		}
		t.Logf("%s WASI: %v", map[bool]string{true: "hostwasi", false: "wasmtime"}[hostWASI], err)
	}
	if ext := inst.GetExport(store, "out_end"); ext != nil {
		mem := inst.GetExport(store, "memory").Memory().UnsafeData(store)
		end := ext.Global().Get(store).I32()
		r.records = append([]byte(nil), mem[0x20000:end]...)
	}
	out, _ := os.ReadFile(stdoutPath)
	errOut, _ := os.ReadFile(stderrPath)
	r.stdout, r.stderr = string(out), string(errOut)
	r.tree = treeOf(t, filepath.Dir(rw))
	_ = ro
	_ = outside
	return r
}

func words(b []byte) string {
	var s []string
	for i := 0; i+4 <= len(b); i += 4 {
		s = append(s, fmt.Sprint(int32(binary.LittleEndian.Uint32(b[i:]))))
	}
	return strings.Join(s, " ")
}

// TestWASIDifferential runs every case of diffCases on both WASIs.
func TestWASIDifferential(t *testing.T) {
	covered := map[string]int{}
	for _, c := range diffCases() {
		covered[c.fn]++
		t.Run(c.fn+"/"+c.name, func(t *testing.T) {
			wat := diffWAT(c)
			mod, err := wasmtime.NewModule(wasmEngine, mustWat(t, wat))
			if err != nil {
				t.Fatalf("compile: %v\n%s", err, wat)
			}
			want := runDiff(t, c, mod, false)
			got := runDiff(t, c, mod, true)
			var diffs []string
			if string(got.records) != string(want.records) {
				diffs = append(diffs, fmt.Sprintf("records:\n  hostwasi %s\n  wasmtime %s", words(got.records), words(want.records)))
			}
			if got.exit != want.exit {
				diffs = append(diffs, fmt.Sprintf("end: hostwasi %s, wasmtime %s", got.exit, want.exit))
			}
			if got.stdout != want.stdout || got.stderr != want.stderr {
				diffs = append(diffs, fmt.Sprintf("output: hostwasi %q %q, wasmtime %q %q", got.stdout, got.stderr, want.stdout, want.stderr))
			}
			for k := range mergeKeys(got.tree, want.tree) {
				if got.tree[k] != want.tree[k] {
					diffs = append(diffs, fmt.Sprintf("%s: hostwasi %q, wasmtime %q", k, got.tree[k], want.tree[k]))
				}
			}
			if len(diffs) == 0 {
				return
			}
			msg := strings.Join(diffs, "\n")
			if c.skip != "" {
				t.Logf("known difference (%s):\n%s", c.skip, msg)
				return
			}
			t.Errorf("hostwasi differs from wasmtime's WASI:\n%s", msg)
		})
	}
	n := 0
	for _, k := range covered {
		n += k
	}
	t.Logf("differential suite: %d functions, %d cases", len(covered), n)
}

func mergeKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func mustWat(t *testing.T, wat string) []byte {
	t.Helper()
	b, err := wasmtime.Wat2Wasm(wat)
	if err != nil {
		t.Fatalf("wat: %v\n%s", err, wat)
	}
	return b
}

// TestWASIDifferentialGo runs a Go wasip1 program (test/fixtures/fsprobe:
// Go's os and syscall packages over WASI, as most Go workloads use files)
// on both WASIs with the same commands, and compares what it prints, its
// exit and the directories.
func TestWASIDifferentialGo(t *testing.T) {
	mod := compile(t, filepath.Join("..", "..", "..", "test", "fixtures", "fsprobe"))
	scripts := map[string][]string{
		"read":    {"read", "/file.txt", "read", "/dir/a.txt", "read", "/missing", "read", "/dir", "read", "/link-file", "read", "/escape", "read", "/abs", "read", "/ro/ro.txt", "read", "/dir/up", "read", "/loop1", "read", "/../outside/secret"},
		"write":   {"write", "/new.txt", "text", "read", "/new.txt", "write", "/file.txt", "short", "read", "/file.txt", "write", "/ro/x", "no", "write", "/dir", "no", "write", "/nodir/x", "no", "write", "/dangling", "made"},
		"append":  {"append", "/file.txt", "more", "read", "/file.txt", "append", "/missing", "x", "append", "/ro/ro.txt", "x"},
		"ls":      {"ls", "/", "ls", "/dir", "ls", "/ro", "ls", "/empty", "ls", "/file.txt", "ls", "/missing", "ls", "/link-dir", "ls", "/.."},
		"dirs":    {"mkdir", "/d1", "mkdir", "/d1", "mkdir", "/ro/d", "mkdir", "/nodir/x", "rmdir", "/d1", "rmdir", "/dir", "rmdir", "/file.txt", "rmdir", "/empty", "rmdir", "/missing"},
		"rename":  {"rename", "/file.txt", "/f2", "rename", "/dir", "/empty", "rename", "/missing", "/x", "rename", "/f2", "/ro/f", "rename", "/dir/a.txt", "/a.txt", "rename", "/empty", "/a.txt"},
		"remove":  {"rm", "/file.txt", "rm", "/dir", "rm", "/missing", "rm", "/link-dir", "rm", "/ro/ro.txt", "rm", "/dangling"},
		"stat":    {"stat", "/file.txt", "stat", "/dir", "stat", "/link-file", "stat", "/dangling", "stat", "/missing", "stat", "/ro", "stat", "/big.bin"},
		"links":   {"symlink", "file.txt", "/s1", "read", "/s1", "symlink", "/etc/passwd", "/s2", "symlink", "x", "/file.txt", "link", "/file.txt", "/h1", "read", "/h1", "link", "/dir", "/h2", "link", "/missing", "/h3"},
		"openat":  {"openat", "3", "file.txt", "openat", "3", "../outside/secret", "openat", "4", "ro.txt", "openat", "3", "/file.txt", "openat", "5", "x", "openat", "3", "dir/../file.txt"},
		"process": {"pwd", "args", "env", "A", "env", "EMPTY", "env", "NONE", "stdout", "to out", "stderr", "to err"},
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			c := diffCase{name: name, args: append([]string{"fsprobe"}, script...)}
			want := runDiff(t, c, mod, false)
			got := runDiff(t, c, mod, true)
			if got.stdout != want.stdout || got.stderr != want.stderr || got.exit != want.exit {
				t.Errorf("hostwasi differs from wasmtime's WASI:\n--- hostwasi (%s):\n%s%s--- wasmtime (%s):\n%s%s", got.exit, got.stdout, got.stderr, want.exit, want.stdout, want.stderr)
			}
			for k := range mergeKeys(got.tree, want.tree) {
				if got.tree[k] != want.tree[k] {
					t.Errorf("%s: hostwasi %q, wasmtime %q", k, got.tree[k], want.tree[k])
				}
			}
		})
	}
}
