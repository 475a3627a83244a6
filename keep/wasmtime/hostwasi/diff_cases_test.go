//go:build linux

package hostwasi

import (
	"fmt"
	"strings"
)

// Helpers that write WAT for diffCase bodies.

// rec records the i32 expressions xs.
func rec(xs ...string) string {
	var b strings.Builder
	for _, x := range xs {
		b.WriteString("(call $rec " + x + ")\n")
	}
	return b.String()
}

func i32(v int) string { return fmt.Sprintf("(i32.const %d)", v) }

const (
	allRights = "0x1fffffff"
	readRight = "0x2"  // fd_read
	writeRt   = "0x40" // fd_write
	follow    = 1
	oCreat    = 1
	oDir      = 2
	oExcl     = 4
	oTrunc    = 8
	fAppend   = 1
	fNonblock = 4
)

// open is $open under preopen dir (3 "/", 4 "/ro", or a local) of path.
func open(dir, path string, lookup, oflags int, rights string, fdflags int) string {
	return fmt.Sprintf("(call $open %s {s:%s} %s %s (i64.const %s) %s)", dir, path, i32(lookup), i32(oflags), rights, i32(fdflags))
}

// openRW opens path under "/" for reading and writing, following links.
func openRW(path string) string { return open(i32(3), path, follow, 0, allRights, 0) }

// setFD opens into $fd and records the descriptor (or -errno).
func setFD(x string) string { return "(local.set $fd " + x + ")\n" + rec("(local.get $fd)") }

// fdstat records fd_fdstat_get of fd: errno, filetype, flags, rights.
func fdstat(fd string) string {
	return rec(fmt.Sprintf("(call $fd_fdstat_get %s (i32.const 0x9000))", fd)) +
		rec("(i32.load8_u (i32.const 0x9000))", "(i32.load16_u (i32.const 0x9002))") +
		"(call $rec64 (i64.load (i32.const 0x9008)))\n(call $rec64 (i64.load (i32.const 0x9010)))\n"
}

// filestat records fd_filestat_get of fd: errno, filetype, nlink, size.
func filestat(fd string) string {
	return rec(fmt.Sprintf("(call $fd_filestat_get %s (i32.const 0x9000))", fd),
		"(i32.load8_u (i32.const 0x9010))") +
		"(call $rec64 (i64.load (i32.const 0x9018)))\n(call $rec64 (i64.load (i32.const 0x9020)))\n"
}

// pathstat records path_filestat_get: errno, filetype, size.
func pathstat(dir string, lookup int, path string) string {
	return rec(fmt.Sprintf("(call $path_filestat_get %s %s {s:%s} (i32.const 0x9000))", dir, i32(lookup), path),
		"(i32.load8_u (i32.const 0x9010))") +
		"(call $rec64 (i64.load (i32.const 0x9020)))\n"
}

// readAll reads up to n bytes of fd at 0xa000 and records errno and them.
func readAll(fd string, n int) string {
	return rec(fmt.Sprintf("(call $read %s (i32.const 0xa000) %s)", fd, i32(n))) +
		"(call $recmem (i32.const 0xa000) (call $count))\n"
}

// pathCall records a call on (dir, path): fn's other arguments in extra.
func pathCall(fn, dir, path string, extra ...string) string {
	return rec(fmt.Sprintf("(call $%s %s {s:%s} %s)", fn, dir, path, strings.Join(extra, " ")))
}

// statAfter records path_filestat_get (no follow) of each path.
func statAfter(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		b.WriteString(pathstat(i32(3), 0, p))
	}
	return b.String()
}

func diffCases() []diffCase {
	var cs []diffCase
	add := func(fn, name, body string) { cs = append(cs, diffCase{fn: fn, name: name, body: body}) }

	// args and environment
	add("args_get", "sizes and strings", rec("(call $args_sizes_get (i32.const 0x9000) (i32.const 0x9004))",
		"(i32.load (i32.const 0x9000))", "(i32.load (i32.const 0x9004))",
		"(call $args_get (i32.const 0x9100) (i32.const 0xa000))")+
		"(call $recmem (i32.const 0xa000) (i32.load (i32.const 0x9004)))\n"+
		rec("(i32.sub (i32.load (i32.const 0x9104)) (i32.load (i32.const 0x9100)))"))
	add("environ_get", "sizes and strings", rec("(call $environ_sizes_get (i32.const 0x9000) (i32.const 0x9004))",
		"(i32.load (i32.const 0x9000))", "(i32.load (i32.const 0x9004))",
		"(call $environ_get (i32.const 0x9100) (i32.const 0xa000))")+
		"(call $recmem (i32.const 0xa000) (i32.load (i32.const 0x9004)))\n")
	add("args_get", "pointer out of memory", rec("(call $args_sizes_get (i32.const 0x3fffe) (i32.const 0x9004))"))

	// clocks, random, scheduling, process
	for id := 0; id <= 4; id++ {
		add("clock_res_get", fmt.Sprintf("clock %d", id), rec(fmt.Sprintf("(call $clock_res_get %s (i32.const 0x9000))", i32(id)),
			"(i64.ne (i64.load (i32.const 0x9000)) (i64.const 0))"))
		add("clock_time_get", fmt.Sprintf("clock %d", id), rec(fmt.Sprintf("(call $clock_time_get %s (i64.const 1) (i32.const 0x9000))", i32(id)),
			"(i64.ne (i64.load (i32.const 0x9000)) (i64.const 0))"))
	}
	add("clock_time_get", "monotonic does not go back", rec(
		"(call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0x9000))",
		"(call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0x9008))",
		"(i64.ge_u (i64.load (i32.const 0x9008)) (i64.load (i32.const 0x9000)))"))
	add("random_get", "fills", rec("(call $random_get (i32.const 0x9000) (i32.const 64))",
		"(call $random_get (i32.const 0x9000) (i32.const 0))",
		"(call $random_get (i32.const 0x3fff0) (i32.const 64))"))
	add("sched_yield", "yields", rec("(call $sched_yield)"))
	add("proc_raise", "SIGTERM", rec("(call $proc_raise (i32.const 15))"))
	add("proc_exit", "status 7", "(call $proc_exit (i32.const 7))")
	add("proc_exit", "status 0", "(call $proc_exit (i32.const 0))")
	add("proc_exit", "status 125", "(call $proc_exit (i32.const 125))")

	// stdio
	add("fd_write", "stdout and stderr", rec("(call $write (i32.const 1) {s:out\\n})", "(call $count)",
		"(call $write (i32.const 2) {s:err\\n})", "(call $count)"))
	add("fd_write", "two iovecs and an empty one", "(call $iov (i32.const 0x9000) {s:ab}) (call $iov (i32.const 0x9008) {p:x} (i32.const 0)) (call $iov (i32.const 0x9010) {s:cd})\n"+
		rec("(call $fd_write (i32.const 1) (i32.const 0x9000) (i32.const 3) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))"))
	add("fd_write", "no iovecs", rec("(call $fd_write (i32.const 1) (i32.const 0x9000) (i32.const 0) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))"))
	add("fd_write", "to stdin", rec("(call $write (i32.const 0) {s:x})"))
	add("fd_write", "bad descriptor", rec("(call $write (i32.const 99) {s:x})", "(call $write (i32.const -1) {s:x})"))
	add("fd_write", "iovec out of memory", "(call $iov (i32.const 0x9000) (i32.const 0x3fff0) (i32.const 64))\n"+
		rec("(call $fd_write (i32.const 1) (i32.const 0x9000) (i32.const 1) (i32.const 0x9100))"))
	cs = append(cs, diffCase{fn: "fd_read", name: "stdin", stdin: "line one\nline two\n", body: readAll(i32(0), 5) + readAll(i32(0), 100) + readAll(i32(0), 100)})
	add("fd_read", "from stdout", rec("(call $read (i32.const 1) (i32.const 0xa000) (i32.const 4))"))
	for fd := 0; fd <= 2; fd++ {
		add("fd_fdstat_get", fmt.Sprintf("stdio %d", fd), fdstat(i32(fd)))
		add("fd_filestat_get", fmt.Sprintf("stdio %d", fd), rec(fmt.Sprintf("(call $fd_filestat_get %s (i32.const 0x9000))", i32(fd)), "(i32.load8_u (i32.const 0x9010))"))
	}
	add("fd_seek", "stdout", rec("(call $fd_seek (i32.const 1) (i64.const 0) (i32.const 1) (i32.const 0x9000))"))
	add("fd_tell", "stdout", rec("(call $fd_tell (i32.const 1) (i32.const 0x9000))"))
	add("fd_close", "stdout then write", rec("(call $fd_close (i32.const 1))", "(call $write (i32.const 1) {s:x})", "(call $fd_close (i32.const 1))"))

	// preopens
	for fd := 0; fd <= 5; fd++ {
		add("fd_prestat_get", fmt.Sprintf("fd %d", fd), rec(fmt.Sprintf("(call $fd_prestat_get %s (i32.const 0x9000))", i32(fd)),
			"(i32.load (i32.const 0x9000))", "(i32.load (i32.const 0x9004))"))
	}
	add("fd_prestat_dir_name", "names", rec("(call $fd_prestat_dir_name (i32.const 3) (i32.const 0xa000) (i32.const 1))")+
		"(call $recmem (i32.const 0xa000) (i32.const 1))\n"+
		rec("(call $fd_prestat_dir_name (i32.const 4) (i32.const 0xa000) (i32.const 3))")+
		"(call $recmem (i32.const 0xa000) (i32.const 3))\n")
	add("fd_prestat_dir_name", "short buffer", rec("(call $fd_prestat_dir_name (i32.const 4) (i32.const 0xa000) (i32.const 2))"))
	add("fd_prestat_dir_name", "long buffer", rec("(call $fd_prestat_dir_name (i32.const 4) (i32.const 0xa000) (i32.const 10))"))
	add("fd_prestat_dir_name", "not a preopen", rec("(call $fd_prestat_dir_name (i32.const 1) (i32.const 0xa000) (i32.const 10))"))
	add("fd_fdstat_get", "preopens", fdstat(i32(3))+fdstat(i32(4)))
	add("fd_filestat_get", "preopen", rec("(call $fd_filestat_get (i32.const 3) (i32.const 0x9000))", "(i32.load8_u (i32.const 0x9010))"))
	add("fd_close", "preopen", rec("(call $fd_close (i32.const 3))", "(call $fd_prestat_get (i32.const 3) (i32.const 0x9000))")+setFD(openRW("file.txt")))
	add("fd_read", "preopen", rec("(call $read (i32.const 3) (i32.const 0xa000) (i32.const 4))"))
	add("fd_write", "preopen", rec("(call $write (i32.const 3) {s:x})"))
	add("fd_seek", "preopen", rec("(call $fd_seek (i32.const 3) (i64.const 0) (i32.const 0) (i32.const 0x9000))"))

	// path_open
	add("path_open", "file read", setFD(openRW("file.txt"))+readAll("(local.get $fd)", 100)+readAll("(local.get $fd)", 100))
	add("path_open", "descriptors lowest free", setFD(openRW("file.txt"))+setFD(openRW("dir/a.txt"))+
		rec("(call $fd_close (i32.const 5))")+setFD(openRW("big.bin"))+setFD(openRW("file.txt")))
	add("path_open", "dot", setFD(open(i32(3), ".", 0, 0, allRights, 0))+fdstat("(local.get $fd)"))
	add("path_open", "dot directory", setFD(open(i32(3), ".", 0, oDir, allRights, 0))+fdstat("(local.get $fd)"))
	add("path_open", "dot directory read rights", setFD(open(i32(3), ".", 0, oDir, readRight, 0))+fdstat("(local.get $fd)"))
	add("path_open", "dir directory", setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+fdstat("(local.get $fd)")+
		setFD(open("(local.get $fd)", "a.txt", 0, 0, allRights, 0))+readAll("(local.get $fd)", 10))
	add("path_open", "dir without O_DIRECTORY", setFD(open(i32(3), "dir", 0, 0, readRight, 0))+fdstat("(local.get $fd)"))
	add("path_open", "file with O_DIRECTORY", setFD(open(i32(3), "file.txt", 0, oDir, readRight, 0)))
	add("path_open", "file trailing slash", setFD(open(i32(3), "file.txt/", 0, 0, readRight, 0)))
	add("path_open", "dir trailing slash", setFD(open(i32(3), "dir/", 0, 0, readRight, 0)))
	add("path_open", "missing", setFD(open(i32(3), "missing", follow, 0, readRight, 0)))
	add("path_open", "empty path", setFD(open(i32(3), "", follow, 0, readRight, 0)))
	add("path_open", "create", setFD(open(i32(3), "new.txt", 0, oCreat, allRights, 0))+
		rec("(call $write (local.get $fd) {s:created})")+filestat("(local.get $fd)"))
	add("path_open", "create exclusive existing", setFD(open(i32(3), "file.txt", 0, oCreat|oExcl, allRights, 0)))
	add("path_open", "create exclusive new", setFD(open(i32(3), "x.txt", 0, oCreat|oExcl, allRights, 0)))
	add("path_open", "create in missing dir", setFD(open(i32(3), "nodir/x.txt", 0, oCreat, allRights, 0)))
	add("path_open", "create trailing slash", setFD(open(i32(3), "newdir/", 0, oCreat, allRights, 0)))
	add("path_open", "create directory flag", setFD(open(i32(3), "newdir", 0, oCreat|oDir, allRights, 0)))
	add("path_open", "truncate", setFD(open(i32(3), "file.txt", 0, oTrunc, allRights, 0))+filestat("(local.get $fd)"))
	add("path_open", "truncate read-only rights", setFD(open(i32(3), "file.txt", 0, oTrunc, readRight, 0)))
	add("path_open", "dotdot inside", setFD(openRW("dir/../file.txt"))+readAll("(local.get $fd)", 5))
	add("path_open", "dotdot escape", setFD(openRW("../outside/secret")))
	add("path_open", "dir dotdot escape", setFD(openRW("dir/../../outside/secret")))
	add("path_open", "absolute", setFD(openRW("/file.txt")))
	add("path_open", "symlink followed", setFD(openRW("link-file"))+readAll("(local.get $fd)", 5))
	add("path_open", "symlink not followed", setFD(open(i32(3), "link-file", 0, 0, readRight, 0)))
	add("path_open", "symlink dir followed", setFD(open(i32(3), "link-dir", follow, oDir, readRight, 0))+fdstat("(local.get $fd)"))
	add("path_open", "symlink up inside", setFD(openRW("dir/up"))+readAll("(local.get $fd)", 5))
	add("path_open", "symlink escape", setFD(openRW("escape")))
	add("path_open", "symlink absolute", setFD(openRW("abs")))
	add("path_open", "dangling followed", setFD(openRW("dangling")))
	add("path_open", "dangling create", setFD(open(i32(3), "dangling", follow, oCreat, allRights, 0)))
	add("path_open", "loop followed", setFD(openRW("loop1")))
	add("path_open", "loop not followed", setFD(open(i32(3), "loop1", 0, 0, readRight, 0)))
	add("path_open", "through symlink dir", setFD(openRW("link-dir/a.txt"))+readAll("(local.get $fd)", 4))
	add("path_open", "through symlink trailing slash", setFD(open(i32(3), "link-slash", follow, oDir, readRight, 0)))
	add("path_open", "read-only preopen read", setFD(open(i32(4), "ro.txt", 0, 0, readRight, 0))+readAll("(local.get $fd)", 100)+fdstat("(local.get $fd)"))
	add("path_open", "read-only preopen write", setFD(open(i32(4), "ro.txt", 0, 0, allRights, 0)))
	add("path_open", "read-only preopen write right", setFD(open(i32(4), "ro.txt", 0, 0, writeRt, 0)))
	add("path_open", "read-only preopen create", setFD(open(i32(4), "new", 0, oCreat, readRight, 0)))
	add("path_open", "read-only preopen truncate", setFD(open(i32(4), "ro.txt", 0, oTrunc, readRight, 0)))
	add("path_open", "read-only preopen append", setFD(open(i32(4), "ro.txt", 0, 0, readRight, fAppend)))
	add("path_open", "read-only subdir", setFD(open(i32(4), "dir", 0, oDir, allRights, 0))+fdstat("(local.get $fd)")+
		setFD(open("(local.get $fd)", "c.txt", 0, 0, allRights, 0)))
	add("path_open", "not a directory fd", setFD(openRW("file.txt"))+setFD(open("(local.get $fd)", "x", 0, 0, readRight, 0)))
	add("path_open", "bad fd", setFD(open(i32(42), "x", 0, 0, readRight, 0)))
	add("path_open", "write right only", setFD(open(i32(3), "file.txt", 0, 0, writeRt, 0))+
		rec("(call $read (local.get $fd) (i32.const 0xa000) (i32.const 4))", "(call $write (local.get $fd) {s:HE})")+fdstat("(local.get $fd)"))
	add("path_open", "read right only", setFD(open(i32(3), "file.txt", 0, 0, readRight, 0))+
		rec("(call $write (local.get $fd) {s:x})")+fdstat("(local.get $fd)"))
	add("path_open", "no rights", setFD(open(i32(3), "file.txt", 0, 0, "0", 0))+
		rec("(call $read (local.get $fd) (i32.const 0xa000) (i32.const 4))", "(call $write (local.get $fd) {s:x})")+fdstat("(local.get $fd)"))
	add("path_open", "append", setFD(open(i32(3), "file.txt", 0, 0, allRights, fAppend))+
		rec("(call $write (local.get $fd) {s:more})")+fdstat("(local.get $fd)"))
	add("path_open", "directory with write right", setFD(open(i32(3), "dir", 0, oDir, writeRt, 0))+fdstat("(local.get $fd)"))
	add("path_open", "name too long", setFD(openRW(strings.Repeat("n", 300))))
	add("path_open", "dot slash", setFD(openRW("./file.txt"))+setFD(openRW("dir/./a.txt"))+setFD(openRW(".//dir//a.txt")))

	// fd_read, fd_write, fd_pread, fd_pwrite, fd_seek, fd_tell on files
	add("fd_read", "iovecs", setFD(openRW("file.txt"))+
		"(call $iov (i32.const 0x9000) (i32.const 0xa000) (i32.const 3)) (call $iov (i32.const 0x9008) (i32.const 0xa010) (i32.const 0)) (call $iov (i32.const 0x9010) (i32.const 0xa020) (i32.const 4))\n"+
		rec("(call $fd_read (local.get $fd) (i32.const 0x9000) (i32.const 3) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))")+
		"(call $recmem (i32.const 0xa000) (i32.const 0x30))\n")
	add("fd_read", "many iovecs", setFD(openRW("big.bin"))+
		"(local.set $i (i32.const 0)) (block (loop (call $iov (i32.add (i32.const 0xb000) (i32.shl (local.get $i) (i32.const 3))) (i32.add (i32.const 0x10000) (local.get $i)) (i32.const 1)) (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if 0 (i32.lt_u (local.get $i) (i32.const 1100)))))\n"+
		rec("(call $fd_read (local.get $fd) (i32.const 0xb000) (i32.const 1024) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))",
			"(call $fd_read (local.get $fd) (i32.const 0xb000) (i32.const 1025) (i32.const 0x9100))"))
	add("fd_read", "directory", setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+rec("(call $read (local.get $fd) (i32.const 0xa000) (i32.const 4))"))
	add("fd_read", "at end", setFD(openRW("file.txt"))+rec("(call $fd_seek (local.get $fd) (i64.const 0) (i32.const 2) (i32.const 0x9000))")+readAll("(local.get $fd)", 10))
	add("fd_write", "file", setFD(openRW("file.txt"))+rec("(call $write (local.get $fd) {s:HELLO})", "(call $count)")+filestat("(local.get $fd)"))
	add("fd_write", "directory", setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+rec("(call $write (local.get $fd) {s:x})"))
	add("fd_write", "after closing", setFD(openRW("file.txt"))+rec("(call $fd_close (local.get $fd))", "(call $write (local.get $fd) {s:x})"))
	add("fd_pread", "offsets", setFD(openRW("file.txt"))+
		"(call $iov (i32.const 0x9000) (i32.const 0xa000) (i32.const 5))\n"+
		rec("(call $fd_pread (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const 7) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))")+
		"(call $recmem (i32.const 0xa000) (i32.const 5))\n"+
		rec("(call $fd_pread (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const 1000) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))",
			"(call $fd_pread (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const -1) (i32.const 0x9100))",
			"(call $fd_tell (local.get $fd) (i32.const 0x9200))", "(i32.load (i32.const 0x9200))"))
	add("fd_pread", "stdin and directory", rec("(call $fd_pread (i32.const 0) (i32.const 0x9000) (i32.const 0) (i64.const 0) (i32.const 0x9100))")+
		setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+rec("(call $fd_pread (local.get $fd) (i32.const 0x9000) (i32.const 0) (i64.const 0) (i32.const 0x9100))"))
	add("fd_pwrite", "past the end", setFD(openRW("file.txt"))+
		"(call $iov (i32.const 0x9000) {s:XY})\n"+
		rec("(call $fd_pwrite (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const 20) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))",
			"(call $fd_tell (local.get $fd) (i32.const 0x9200))", "(i32.load (i32.const 0x9200))")+filestat("(local.get $fd)"))
	add("fd_pwrite", "append file", setFD(open(i32(3), "file.txt", 0, 0, allRights, fAppend))+
		"(call $iov (i32.const 0x9000) {s:XY})\n"+
		rec("(call $fd_pwrite (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const 0) (i32.const 0x9100))", "(i32.load (i32.const 0x9100))"))
	add("fd_pwrite", "read-only file", setFD(open(i32(3), "file.txt", 0, 0, readRight, 0))+
		"(call $iov (i32.const 0x9000) {s:XY})\n"+
		rec("(call $fd_pwrite (local.get $fd) (i32.const 0x9000) (i32.const 1) (i64.const 0) (i32.const 0x9100))"))
	for _, w := range []struct {
		name   string
		off    int
		whence int
	}{{"set 5", 5, 0}, {"cur 3", 3, 1}, {"end -2", -2, 2}, {"end +10", 10, 2}, {"set -1", -1, 0}, {"whence 3", 0, 3}, {"cur -100", -100, 1}} {
		add("fd_seek", w.name, setFD(openRW("file.txt"))+rec(fmt.Sprintf("(call $fd_seek (local.get $fd) (i64.const %d) (i32.const %d) (i32.const 0x9000))", w.off, w.whence))+
			"(call $rec64 (i64.load (i32.const 0x9000)))\n"+rec("(call $fd_tell (local.get $fd) (i32.const 0x9100))")+"(call $rec64 (i64.load (i32.const 0x9100)))\n"+readAll("(local.get $fd)", 4))
	}
	add("fd_seek", "directory", setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+rec("(call $fd_seek (local.get $fd) (i64.const 0) (i32.const 0) (i32.const 0x9000))"))
	add("fd_seek", "bad fd", rec("(call $fd_seek (i32.const 77) (i64.const 0) (i32.const 0) (i32.const 0x9000))"))
	add("fd_tell", "directory", setFD(open(i32(3), "dir", 0, oDir, allRights, 0))+rec("(call $fd_tell (local.get $fd) (i32.const 0x9000))"))

	// descriptors
	add("fd_close", "twice", setFD(openRW("file.txt"))+rec("(call $fd_close (local.get $fd))", "(call $fd_close (local.get $fd))"))
	add("fd_close", "bad", rec("(call $fd_close (i32.const 100))", "(call $fd_close (i32.const -1))"))
	add("fd_renumber", "file over file", setFD(openRW("file.txt"))+"(local.set $fd2 "+openRW("dir/a.txt")+")\n"+
		rec("(call $fd_renumber (local.get $fd) (local.get $fd2))")+readAll("(local.get $fd2)", 20)+rec("(call $fd_close (local.get $fd))"))
	add("fd_renumber", "to unopened", setFD(openRW("file.txt"))+rec("(call $fd_renumber (local.get $fd) (i32.const 20))")+readAll(i32(20), 5))
	add("fd_renumber", "from unopened", rec("(call $fd_renumber (i32.const 20) (i32.const 1))"))
	add("fd_renumber", "to itself", setFD(openRW("file.txt"))+rec("(call $fd_renumber (local.get $fd) (local.get $fd))")+readAll("(local.get $fd)", 5))
	add("fd_renumber", "preopen", rec("(call $fd_renumber (i32.const 4) (i32.const 3))", "(call $fd_prestat_get (i32.const 3) (i32.const 0x9000))", "(i32.load (i32.const 0x9004))",
		"(call $fd_prestat_get (i32.const 4) (i32.const 0x9000))"))
	add("fd_renumber", "over stdout", setFD(openRW("file.txt"))+rec("(call $fd_renumber (local.get $fd) (i32.const 1))", "(call $write (i32.const 1) {s:into file})"))
	add("fd_fdstat_get", "file", setFD(openRW("file.txt"))+fdstat("(local.get $fd)"))
	add("fd_fdstat_get", "bad", fdstat(i32(50)))
	add("fd_fdstat_set_flags", "append", setFD(openRW("file.txt"))+rec("(call $fd_fdstat_set_flags (local.get $fd) (i32.const 1))", "(call $write (local.get $fd) {s:END})")+fdstat("(local.get $fd)"))
	add("fd_fdstat_set_flags", "nonblock", setFD(openRW("file.txt"))+rec("(call $fd_fdstat_set_flags (local.get $fd) (i32.const 4))")+fdstat("(local.get $fd)"))
	add("fd_fdstat_set_flags", "sync", setFD(openRW("file.txt"))+rec("(call $fd_fdstat_set_flags (local.get $fd) (i32.const 16))"))
	add("fd_fdstat_set_flags", "directory", rec("(call $fd_fdstat_set_flags (i32.const 3) (i32.const 0))"))
	add("fd_fdstat_set_flags", "stdout", rec("(call $fd_fdstat_set_flags (i32.const 1) (i32.const 1))"))
	add("fd_fdstat_set_rights", "shrink", setFD(openRW("file.txt"))+rec("(call $fd_fdstat_set_rights (local.get $fd) (i64.const 2) (i64.const 0))", "(call $write (local.get $fd) {s:x})")+fdstat("(local.get $fd)"))
	add("fd_fdstat_set_rights", "grow", setFD(open(i32(3), "file.txt", 0, 0, readRight, 0))+rec("(call $fd_fdstat_set_rights (local.get $fd) (i64.const 0x1fffffff) (i64.const 0x1fffffff))"))
	add("fd_advise", "file", setFD(openRW("file.txt"))+rec("(call $fd_advise (local.get $fd) (i64.const 0) (i64.const 10) (i32.const 1))",
		"(call $fd_advise (local.get $fd) (i64.const 0) (i64.const 10) (i32.const 9))"))
	add("fd_advise", "directory and stdout", rec("(call $fd_advise (i32.const 3) (i64.const 0) (i64.const 10) (i32.const 0))", "(call $fd_advise (i32.const 1) (i64.const 0) (i64.const 10) (i32.const 0))"))
	add("fd_allocate", "file", setFD(openRW("file.txt"))+rec("(call $fd_allocate (local.get $fd) (i64.const 0) (i64.const 100))")+filestat("(local.get $fd)"))
	add("fd_allocate", "directory", rec("(call $fd_allocate (i32.const 3) (i64.const 0) (i64.const 100))"))
	add("fd_datasync", "file and directory", setFD(openRW("file.txt"))+rec("(call $fd_datasync (local.get $fd))", "(call $fd_datasync (i32.const 3))", "(call $fd_datasync (i32.const 1))"))
	add("fd_sync", "file and directory", setFD(openRW("file.txt"))+rec("(call $fd_sync (local.get $fd))", "(call $fd_sync (i32.const 3))", "(call $fd_sync (i32.const 1))"))
	add("fd_sync", "read-only file", setFD(open(i32(3), "file.txt", 0, 0, readRight, 0))+rec("(call $fd_sync (local.get $fd))"))

	// file status
	add("fd_filestat_get", "file and directory", setFD(openRW("file.txt"))+filestat("(local.get $fd)")+
		setFD(open(i32(3), "dir", 0, oDir, readRight, 0))+rec("(call $fd_filestat_get (local.get $fd) (i32.const 0x9000))", "(i32.load8_u (i32.const 0x9010))"))
	add("fd_filestat_set_size", "grow and shrink", setFD(openRW("file.txt"))+rec("(call $fd_filestat_set_size (local.get $fd) (i64.const 100))")+filestat("(local.get $fd)")+
		rec("(call $fd_filestat_set_size (local.get $fd) (i64.const 3))")+filestat("(local.get $fd)"))
	add("fd_filestat_set_size", "read-only", setFD(open(i32(3), "file.txt", 0, 0, readRight, 0))+rec("(call $fd_filestat_set_size (local.get $fd) (i64.const 1))"))
	add("fd_filestat_set_size", "directory and stdout", rec("(call $fd_filestat_set_size (i32.const 3) (i64.const 1))", "(call $fd_filestat_set_size (i32.const 1) (i64.const 1))"))
	for _, ts := range []struct {
		name  string
		flags int
	}{{"mtim", 4}, {"atim", 1}, {"both", 5}, {"now", 10}, {"none", 0}, {"atim and now", 3}, {"mtim and now", 12}, {"unknown flag", 16}} {
		add("fd_filestat_set_times", ts.name, setFD(openRW("file.txt"))+
			rec(fmt.Sprintf("(call $fd_filestat_set_times (local.get $fd) (i64.const 1000000000000) (i64.const 2000000000000) (i32.const %d))", ts.flags))+
			rec("(call $fd_filestat_get (local.get $fd) (i32.const 0x9000))")+
			rec("(i64.eq (i64.load (i32.const 0x9028)) (i64.const 1000000000000))", "(i64.eq (i64.load (i32.const 0x9030)) (i64.const 2000000000000))"))
		add("path_filestat_set_times", ts.name, rec(fmt.Sprintf("(call $path_filestat_set_times (i32.const 3) (i32.const 1) {s:link-file} (i64.const 1000000000000) (i64.const 2000000000000) (i32.const %d))", ts.flags))+
			rec("(call $path_filestat_get (i32.const 3) (i32.const 0) {s:file.txt} (i32.const 0x9000))")+
			rec("(i64.eq (i64.load (i32.const 0x9028)) (i64.const 1000000000000))", "(i64.eq (i64.load (i32.const 0x9030)) (i64.const 2000000000000))"))
	}
	add("path_filestat_set_times", "symlink itself", rec("(call $path_filestat_set_times (i32.const 3) (i32.const 0) {s:link-file} (i64.const 1000000000000) (i64.const 2000000000000) (i32.const 5))")+
		rec("(call $path_filestat_get (i32.const 3) (i32.const 0) {s:link-file} (i32.const 0x9000))", "(i64.eq (i64.load (i32.const 0x9030)) (i64.const 2000000000000))"))
	add("path_filestat_set_times", "read-only preopen", rec("(call $path_filestat_set_times (i32.const 4) (i32.const 0) {s:ro.txt} (i64.const 1) (i64.const 1) (i32.const 5))"))
	for _, p := range []string{"..", "dir/..", "file.txt/", "link-dir/", "escape"} {
		add("path_filestat_set_times", p+" nofollow", rec(fmt.Sprintf("(call $path_filestat_set_times (i32.const 3) (i32.const 0) {s:%s} (i64.const 1) (i64.const 1) (i32.const 5))", p)))
		add("path_filestat_set_times", p+" follow", rec(fmt.Sprintf("(call $path_filestat_set_times (i32.const 3) (i32.const 1) {s:%s} (i64.const 1) (i64.const 1) (i32.const 5))", p)))
	}
	add("path_filestat_set_times", "missing", rec("(call $path_filestat_set_times (i32.const 3) (i32.const 0) {s:missing} (i64.const 1) (i64.const 1) (i32.const 5))"))
	for _, p := range []string{"file.txt", "dir", "link-file", "link-dir", "dangling", "loop1", "escape", "abs", "file.txt/", "dir/", "missing", "dir/../file.txt", "../outside", "/etc", ".", "", "link-slash"} {
		add("path_filestat_get", p+" nofollow", pathstat(i32(3), 0, p))
		add("path_filestat_get", p+" follow", pathstat(i32(3), follow, p))
	}
	add("path_filestat_get", "read-only preopen", pathstat(i32(4), 0, "ro.txt")+pathstat(i32(4), follow, "link-ro"))
	add("path_filestat_get", "nlink", rec("(call $path_filestat_get (i32.const 3) (i32.const 0) {s:dir} (i32.const 0x9000))")+"(call $rec64 (i64.load (i32.const 0x9018)))\n")

	// directories
	for _, p := range []string{"newdir", "newdir/", "dir", "file.txt", "nodir/x", "../x", "/x", ".", "dir/sub/deeper", "dangling", "link-dir/x", "..", "dir/..", "dir/sub/.."} {
		add("path_create_directory", p, pathCall("path_create_directory", i32(3), p)+statAfter(strings.TrimSuffix(p, "/")))
	}
	add("path_create_directory", "read-only preopen", pathCall("path_create_directory", i32(4), "x"))
	for _, p := range []string{"empty", "empty/", "dir", "file.txt", "missing", ".", "link-dir", "dir/sub/..", "../outside", "..", "dir/sub/", "dir/.", "link-slash/"} {
		add("path_remove_directory", p, pathCall("path_remove_directory", i32(3), p)+statAfter(strings.TrimSuffix(p, "/")))
	}
	add("path_remove_directory", "read-only preopen", pathCall("path_remove_directory", i32(4), "dir"))
	for _, p := range []string{"file.txt", "file.txt/", "dir", "link-file", "link-dir", "link-slash", "dangling", "missing", "../outside/secret", "dir/up", "..", ".", "dir/..", "link-dir/", "dangling/"} {
		add("path_unlink_file", p, pathCall("path_unlink_file", i32(3), p)+statAfter(strings.TrimSuffix(p, "/")))
	}
	add("path_unlink_file", "read-only preopen", pathCall("path_unlink_file", i32(4), "ro.txt"))

	// fd_readdir: names, types and cookies (inodes vary between runs)
	readdir := func(dir string, cookie, size int) string {
		return rec(fmt.Sprintf("(call $fd_readdir %s (i32.const 0xa000) %s (i64.const %d) (i32.const 0x9000))", dir, i32(size), cookie), "(i32.load (i32.const 0x9000))") +
			// each entry: d_next, d_namlen, d_type, name; d_ino left out
			"(local.set $i (i32.const 0xa000))\n(block (loop (br_if 1 (i32.gt_u (i32.add (local.get $i) (i32.const 24)) (i32.add (i32.const 0xa000) (i32.load (i32.const 0x9000)))))\n" +
			"  (call $rec64 (i64.load (local.get $i))) (call $rec (i32.load offset=16 (local.get $i))) (call $rec (i32.load8_u offset=20 (local.get $i)))\n" +
			"  (call $recmem (i32.add (local.get $i) (i32.const 24)) (i32.load offset=16 (local.get $i)))\n" +
			"  (local.set $i (i32.add (local.get $i) (i32.add (i32.const 24) (i32.load offset=16 (local.get $i))))) (br 0)))\n"
	}
	add("fd_readdir", "preopen", readdir(i32(3), 0, 4096))
	add("fd_readdir", "subdir", setFD(open(i32(3), "dir", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 0, 4096))
	add("fd_readdir", "from cookie 2", setFD(open(i32(3), "dir", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 2, 4096))
	add("fd_readdir", "cookie past the end", setFD(open(i32(3), "dir", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 50, 4096))
	add("fd_readdir", "small buffer", setFD(open(i32(3), "dir", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 0, 30)+readdir("(local.get $fd)", 1, 30))
	add("fd_readdir", "empty dir", setFD(open(i32(3), "empty", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 0, 4096))
	add("fd_readdir", "file", setFD(openRW("file.txt"))+rec("(call $fd_readdir (local.get $fd) (i32.const 0xa000) (i32.const 100) (i64.const 0) (i32.const 0x9000))"))
	add("fd_readdir", "sees new entries", setFD(open(i32(3), "empty", 0, oDir, readRight, 0))+readdir("(local.get $fd)", 0, 4096)+
		pathCall("path_create_directory", i32(3), "empty/new")+readdir("(local.get $fd)", 0, 4096))
	add("fd_readdir", "read-only preopen", readdir(i32(4), 0, 4096))

	// links and renames
	for _, l := range []struct{ name, from, to string }{
		{"file", "file.txt", "hard"}, {"over existing", "file.txt", "dir/a.txt"}, {"directory", "dir", "dir2"},
		{"missing", "missing", "x"}, {"symlink", "link-file", "hardlink"}, {"dangling", "dangling", "x"},
		{"escape target", "file.txt", "../outside/x"}, {"trailing slash", "file.txt/", "x"}, {"to trailing slash", "file.txt", "x/"},
	} {
		add("path_link", l.name, pathCall("path_link", i32(3), "", "")[0:0]+
			rec(fmt.Sprintf("(call $path_link (i32.const 3) (i32.const 0) {s:%s} (i32.const 3) {s:%s})", l.from, l.to))+statAfter(strings.TrimSuffix(l.to, "/")))
	}
	add("path_link", "to dotdot", rec("(call $path_link (i32.const 3) (i32.const 0) {s:file.txt} (i32.const 3) {s:dir/..})"))
	add("path_link", "follow symlink", rec("(call $path_link (i32.const 3) (i32.const 1) {s:link-file} (i32.const 3) {s:hard})")+statAfter("hard"))
	add("path_link", "across preopens", rec("(call $path_link (i32.const 4) (i32.const 0) {s:ro.txt} (i32.const 3) {s:x})"))
	add("path_link", "into read-only", rec("(call $path_link (i32.const 3) (i32.const 0) {s:file.txt} (i32.const 4) {s:x})"))
	for _, s := range []struct{ name, target, link string }{
		{"relative", "file.txt", "sym"}, {"dangling", "nowhere", "sym"}, {"absolute target", "/etc/passwd", "sym"},
		{"escaping target", "../outside/secret", "sym"}, {"existing", "file.txt", "dir"}, {"trailing slash", "file.txt", "sym/"},
		{"in missing dir", "file.txt", "nodir/sym"}, {"empty target", "", "sym"}, {"dir target", "dir", "dir/sub/sym"},
		{"at dotdot", "file.txt", "dir/.."}, {"at dot", "file.txt", "."}, {"dotdot target", "..", "sym"}, {"target with dotdot inside", "dir/../file.txt", "sym"},
	} {
		add("path_symlink", s.name, rec(fmt.Sprintf("(call $path_symlink {s:%s} (i32.const 3) {s:%s})", s.target, s.link))+
			statAfter(strings.TrimSuffix(s.link, "/")))
	}
	add("path_symlink", "read-only preopen", rec("(call $path_symlink {s:ro.txt} (i32.const 4) {s:x})"))
	for _, p := range []string{"link-file", "dangling", "escape", "abs", "file.txt", "missing", "dir/up", "link-slash", "link-file/", "..", "dir/.."} {
		add("path_readlink", p, rec(fmt.Sprintf("(call $path_readlink (i32.const 3) {s:%s} (i32.const 0xa000) (i32.const 100) (i32.const 0x9000))", p),
			"(i32.load (i32.const 0x9000))")+"(call $recmem (i32.const 0xa000) (i32.load (i32.const 0x9000)))\n")
	}
	add("path_readlink", "short buffer", rec("(call $path_readlink (i32.const 3) {s:escape} (i32.const 0xa000) (i32.const 4) (i32.const 0x9000))", "(i32.load (i32.const 0x9000))")+
		"(call $recmem (i32.const 0xa000) (i32.const 4))\n")
	add("path_readlink", "zero buffer", rec("(call $path_readlink (i32.const 3) {s:escape} (i32.const 0xa000) (i32.const 0) (i32.const 0x9000))", "(i32.load (i32.const 0x9000))"))
	for _, r := range []struct{ name, from, to string }{
		{"file to new", "file.txt", "renamed"}, {"file over file", "file.txt", "dir/a.txt"}, {"file over dir", "file.txt", "empty"},
		{"dir to new", "dir", "dir2"}, {"dir over empty dir", "dir", "empty"}, {"dir over file", "empty", "file.txt"},
		{"dir into itself", "dir", "dir/sub/x"}, {"missing", "missing", "x"}, {"to missing dir", "file.txt", "nodir/x"},
		{"escape", "file.txt", "../outside/x"}, {"from escape", "../outside/secret", "x"}, {"trailing slash file", "file.txt/", "x"},
		{"trailing slash dir", "dir/", "dir2/"}, {"onto itself", "file.txt", "file.txt"}, {"symlink", "link-dir", "l2"},
		{"dot", ".", "x"}, {"onto dot", "file.txt", "."}, {"dotdot", "dir/sub/..", "x"}, {"onto dotdot", "file.txt", "dir/.."},
		{"root dotdot", "..", "x"}, {"symlink trailing slash", "link-dir/", "x"}, {"to link over dir", "empty", "link-dir"},
	} {
		add("path_rename", r.name, rec(fmt.Sprintf("(call $path_rename (i32.const 3) {s:%s} (i32.const 3) {s:%s})", r.from, r.to))+
			statAfter(strings.TrimSuffix(r.from, "/"), strings.TrimSuffix(r.to, "/")))
	}
	add("path_rename", "across preopens", rec("(call $path_rename (i32.const 3) {s:file.txt} (i32.const 4) {s:x})"))
	add("path_rename", "between descriptors of one preopen", "(local.set $fd "+open(i32(3), "dir", 0, oDir, allRights, 0)+")\n"+
		rec("(call $path_rename (i32.const 3) {s:file.txt} (local.get $fd) {s:moved})")+statAfter("dir/moved"))

	// poll_oneoff
	sub := func(at int, userdata int, tag int, rest string) string {
		return fmt.Sprintf("(i64.store (i32.const %d) (i64.const %d)) (i32.store8 (i32.const %d) (i32.const %d)) %s\n", at, userdata, at+8, tag, rest)
	}
	clock := func(at, id int, timeout int64, flags int) string {
		return fmt.Sprintf("(i32.store (i32.const %d) (i32.const %d)) (i64.store (i32.const %d) (i64.const %d)) (i64.store (i32.const %d) (i64.const 0)) (i32.store16 (i32.const %d) (i32.const %d))",
			at+16, id, at+24, timeout, at+32, at+40, flags)
	}
	fdsub := func(at int, fd string) string { return fmt.Sprintf("(i32.store (i32.const %d) %s)", at+16, fd) }
	events := func(n int) string {
		return rec(fmt.Sprintf("(call $poll_oneoff (i32.const 0xb000) (i32.const 0xc000) (i32.const %d) (i32.const 0x9000))", n), "(i32.load (i32.const 0x9000))") +
			// each event: userdata, error, type, nbytes (not for clocks), flags
			"(local.set $i (i32.const 0))\n(block (loop (br_if 1 (i32.ge_u (local.get $i) (i32.load (i32.const 0x9000))))\n" +
			"  (call $rec64 (i64.load (i32.add (i32.const 0xc000) (i32.mul (local.get $i) (i32.const 32)))))\n" +
			"  (call $rec (i32.load16_u offset=8 (i32.add (i32.const 0xc000) (i32.mul (local.get $i) (i32.const 32)))))\n" +
			"  (call $rec (i32.load8_u offset=10 (i32.add (i32.const 0xc000) (i32.mul (local.get $i) (i32.const 32)))))\n" +
			"  (call $rec (i32.load16_u offset=24 (i32.add (i32.const 0xc000) (i32.mul (local.get $i) (i32.const 32)))))\n" +
			"  (local.set $i (i32.add (local.get $i) (i32.const 1))) (br 0)))\n"
	}
	add("poll_oneoff", "relative clock", sub(0xb000, 7, 0, clock(0xb000, 1, 1000000, 0))+events(1))
	add("poll_oneoff", "absolute clock in the past", sub(0xb000, 7, 0, clock(0xb000, 1, 1, 1))+events(1))
	add("poll_oneoff", "realtime clock", sub(0xb000, 7, 0, clock(0xb000, 0, 1000, 0))+events(1))
	add("poll_oneoff", "bad clock", sub(0xb000, 7, 0, clock(0xb000, 9, 1000, 0))+events(1))
	add("poll_oneoff", "no subscriptions", events(0))
	cs = append(cs, diffCase{fn: "poll_oneoff", name: "file read and write", body: setFD(openRW("file.txt")) + sub(0xb000, 1, 1, fdsub(0xb000, "(local.get $fd)")) + sub(0xb030, 2, 2, fdsub(0xb030, "(local.get $fd)")) + events(2),
		skip: "wasmtime's WASI reads a file in the background for a read subscription and reports only the write ready when both are asked at once; hostwasi reports a file ready both ways at once, as poll(2) does"})
	add("poll_oneoff", "file read with clock", setFD(openRW("file.txt"))+sub(0xb000, 1, 1, fdsub(0xb000, "(local.get $fd)"))+sub(0xb030, 2, 0, clock(0xb030, 1, 1000000000, 0))+events(2))
	add("poll_oneoff", "bad descriptor", sub(0xb000, 1, 1, fdsub(0xb000, "(i32.const 99)"))+sub(0xb030, 2, 0, clock(0xb030, 1, 1000000, 0))+events(2))
	add("poll_oneoff", "directory", sub(0xb000, 1, 1, fdsub(0xb000, "(i32.const 3)"))+sub(0xb030, 2, 0, clock(0xb030, 1, 1000000, 0))+events(2))
	add("poll_oneoff", "bad tag", sub(0xb000, 1, 5, "")+events(1))
	cs = append(cs, diffCase{fn: "poll_oneoff", name: "stdin file", stdin: "data", body: sub(0xb000, 1, 1, fdsub(0xb000, "(i32.const 0)")) + events(1)})
	add("poll_oneoff", "stdout", sub(0xb000, 1, 2, fdsub(0xb000, "(i32.const 1)"))+events(1))

	// sockets, on descriptors that are not
	add("sock_accept", "file and preopen", setFD(openRW("file.txt"))+rec("(call $sock_accept (local.get $fd) (i32.const 0) (i32.const 0x9000))", "(call $sock_accept (i32.const 3) (i32.const 0) (i32.const 0x9000))", "(call $sock_accept (i32.const 99) (i32.const 0) (i32.const 0x9000))"))
	add("sock_recv", "file", setFD(openRW("file.txt"))+"(call $iov (i32.const 0x9000) (i32.const 0xa000) (i32.const 4))\n"+
		rec("(call $sock_recv (local.get $fd) (i32.const 0x9000) (i32.const 1) (i32.const 0) (i32.const 0x9100) (i32.const 0x9104))", "(call $sock_recv (i32.const 99) (i32.const 0x9000) (i32.const 1) (i32.const 0) (i32.const 0x9100) (i32.const 0x9104))"))
	add("sock_send", "file", setFD(openRW("file.txt"))+"(call $iov (i32.const 0x9000) {s:x})\n"+
		rec("(call $sock_send (local.get $fd) (i32.const 0x9000) (i32.const 1) (i32.const 0) (i32.const 0x9100))", "(call $sock_send (i32.const 1) (i32.const 0x9000) (i32.const 1) (i32.const 0) (i32.const 0x9100))"))
	add("sock_shutdown", "file", setFD(openRW("file.txt"))+rec("(call $sock_shutdown (local.get $fd) (i32.const 2))", "(call $sock_shutdown (i32.const 99) (i32.const 2))"))

	return cs
}
