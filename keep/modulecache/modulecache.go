// Package modulecache is the node's cache of precompiled modules: bytes
// stored under a key, in a directory that only root can write, shared by the
// Keeps of every container on the node. It knows nothing of WebAssembly: the
// engine decides what the bytes are (native code) and the key (module digest,
// engine version and settings).
//
// # Why a directory of our own, not containerd's content store
//
// runwasi keeps precompiled modules in containerd's content store, so that
// containerd's garbage collection owns them. A Keep does better with a local
// file, for reasons measured with the 8.2–8.5 MB of native code of a 2.7 MB Go
// wasip1 hello (2 cores, busy: load average about 10):
//
//   - Loading. wasmtime maps a file (NewModuleDeserializeFile, 0.3–0.5 ms),
//     and the code pages stay shared through the page cache by every Keep
//     running the module. From bytes (NewModuleDeserialize) it copies them:
//     10–13 ms with the read, and 8.5 MB more memory in every Keep. The
//     content store hands out bytes through containerd's API (a gRPC stream).
//   - Round trip. Through containerd 1.6, storing the entry took 23–200 ms
//     (`ctr content ingest`; `ctr content ls`, the cost of ctr itself, took
//     14–40 ms) and reading it back 60–240 ms (`ctr content get`); here a hit
//     — open the directory, verify the entry, map it — takes 1.3–2.4 ms, and
//     a Keep needs no containerd connection (it has none: it runs in the
//     container's cgroup with only a control socket to its shim).
//   - Lifetime. Content that nothing references is garbage-collected: some
//     blobs ingested for the measurement above were already gone when it
//     came to remove them. Keeping them takes a lease or a label, set through
//     the API. Here the lifetime is an LRU over a size budget.
//
// The price is our own bound and clean-up, which this package does: entries
// beyond a size budget are removed least recently used first, and the files
// of writers that died are removed.
//
// # Trust
//
// Loading native code runs it: an entry must never be anything but what the
// engine wrote. Open refuses a directory that anyone but the current user
// (root, for Keeps) could write or replace, so only root can tamper with an
// entry, and root can replace the Keep's binary anyway. What remains is
// accidental damage — a truncated or bit-flipped file, a writer that crashed —
// and every entry carries a checksum of its key and bytes, checked before
// every use; a damaged entry is removed and rebuilt, never returned.
//
// The checksum is xxHash64, not SHA-256: over an 8.5 MB entry it takes
// 0.86–1.6 ms against SHA-256's 7.0–7.3 ms (with the CPU's SHA extensions;
// BenchmarkChecksum), on the path of every start. It need not resist an
// adversary (the directory does that), and a 64-bit checksum misses random
// damage with probability 2^-64.
//
// # Concurrency
//
// Entries are written to a temporary file, synced and renamed into place, so
// that a reader sees a whole entry or none. The first starts of one module in
// several Keeps build it once: the builder holds an flock on the key's lock
// file, and the others wait for it and then read what it stored.
package modulecache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
)

// DefaultBudget is the total size of entries a Cache keeps, 2 GiB: about 240
// Go programs of a few MB.
const DefaultBudget int64 = 2 << 30

// File name suffixes in the cache directory.
const (
	entrySuffix = ".entry"
	lockSuffix  = ".lock"
	// tempInfix follows the key in a temporary file's name: KEY.tmp-RANDOM.
	tempInfix = ".tmp-"
)

// maxKeyLen bounds a key so that KEY.tmp-RANDOM fits in a file name.
const maxKeyLen = 128

// lockPoll is how often Fetch tries a lock another process holds, and
// lockWait how long it waits before building without the lock: a builder
// that hangs must not stop every other start of the module.
const (
	lockPoll = 5 * time.Millisecond
	lockWait = 5 * time.Minute
)

// touchAfter is how old an entry's mtime must be for a hit to update it:
// the LRU order needs no finer grain, and rapid starts then do not write
// the inode every time.
const touchAfter = time.Minute

// ErrNotFound is returned by Get when no entry is stored under the key.
var ErrNotFound = errors.New("no entry")

// Cache is a cache directory opened by Open.
type Cache struct {
	dir  string
	root *os.Root
	// Budget is the total size of entries, in bytes, beyond which storing
	// an entry removes the least recently used ones. Open sets it to
	// DefaultBudget.
	Budget int64
}

// Open opens the cache directory dir, an absolute path, creating it (mode
// 0700) if needed. It refuses a directory that is not owned by the current
// user or that its group or others may write, and one whose parent
// directories others could use to replace it (writable by a user other than
// root and the current user, unless sticky like /tmp): a Keep then compiles
// without the cache, and the error says why.
func Open(dir string) (*Cache, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("module cache %q: not an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	if err := checkParents(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	// Check the directory that root refers to, not the path: the path
	// could have been swapped since MkdirAll.
	fi, err := root.Stat(".")
	if err == nil {
		err = checkOwned(fi, "directory")
	}
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("module cache %s: %w", dir, err)
	}
	return &Cache{dir: dir, root: root, Budget: DefaultBudget}, nil
}

// checkOwned reports why fi, a cache directory or entry, is not safe to use:
// not owned by the current user, or writable by its group or others.
func checkOwned(fi fs.FileInfo, what string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner information", what)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return fmt.Errorf("%s is owned by uid %d, not by uid %d that runs the Keep: chown it or choose another module_cache", what, st.Uid, euid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %v, which lets others write it: chmod go-w it", what, fi.Mode().Perm())
	}
	return nil
}

// checkParents reports a parent directory of dir through which a user other
// than root and the current one could replace dir.
func checkParents(dir string) error {
	euid := uint32(os.Geteuid())
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// MkdirAll creates it, with mode 0700.
		case err != nil:
			return fmt.Errorf("module cache %s: %w", dir, err)
		default:
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return fmt.Errorf("module cache %s: parent %s: no owner information", dir, p)
			}
			if st.Uid != 0 && st.Uid != euid {
				return fmt.Errorf("module cache %s: parent directory %s is owned by uid %d, who could replace the cache: choose a module_cache under directories of root's", dir, p, st.Uid)
			}
			if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
				return fmt.Errorf("module cache %s: parent directory %s has mode %v, which lets others replace the cache: chmod go-w it or choose another module_cache", dir, p, fi.Mode().Perm())
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// Dir is the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Close closes the directory. Entries returned by Get and Fetch stay open.
func (c *Cache) Close() error { return c.root.Close() }

// checkKey rejects keys that are not plain file names.
func checkKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("module cache: key %q: want 1 to %d characters", key, maxKeyLen)
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("module cache: key %q: only a-z, 0-9, '-' and '_' are allowed", key)
		}
	}
	return nil
}

// Entry is a stored entry, open and verified. The file is the one that was
// verified, whatever is renamed over its name later.
type Entry struct {
	f *os.File
	// size is the length of the data, without the trailer.
	size int64
}

// Path is a path of the verified file for APIs that open files by name
// (/proc/self/fd/N): valid until Close. The file holds the data, followed by
// the cache's trailer, which a reader must ignore.
func (e *Entry) Path() string { return fmt.Sprintf("/proc/self/fd/%d", e.f.Fd()) }

// Size is the length of the data, in bytes.
func (e *Entry) Size() int64 { return e.size }

// ReadAll returns the data.
func (e *Entry) ReadAll() ([]byte, error) {
	b := make([]byte, e.size)
	if _, err := e.f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("module cache: read %s: %w", e.f.Name(), err)
	}
	return b, nil
}

// Close closes the entry's file.
func (e *Entry) Close() error { return e.f.Close() }

// CorruptError reports an entry that failed verification. Get removes it.
type CorruptError struct {
	Key    string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("module cache: entry %s is damaged (%s)", e.Key, e.Reason)
}

// Get returns the entry stored under key, verified. It returns an error
// matching ErrNotFound when there is none, and a *CorruptError when the
// stored entry is damaged; Get has then removed it.
func (c *Cache) Get(key string) (*Entry, error) { return c.get(key, true) }

// Peek is Get, except that a damaged entry is left in place: for a reader
// that only looks, and leaves whoever builds the entry (Fetch) to replace
// it and say why.
func (c *Cache) Peek(key string) (*Entry, error) { return c.get(key, false) }

func (c *Cache) get(key string, removeDamaged bool) (*Entry, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	name := key + entrySuffix
	f, err := c.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("module cache: %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("module cache: %w", err)
	}
	e, reason, err := verify(f, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	if reason != "" {
		// Remove the damaged file, unless a writer has renamed a new
		// one over it meanwhile.
		if removeDamaged {
			c.removeIfSame(name, f)
		}
		f.Close()
		return nil, &CorruptError{Key: key, Reason: reason}
	}
	c.touch(name, e)
	return e, nil
}

// verify checks that f holds an entry of key: the data, then the trailer
// with its length and checksum. reason says what is wrong with a damaged
// entry; err reports a failure to read it.
func verify(f *os.File, key string) (e *Entry, reason string, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("module cache: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "not a regular file", nil
	}
	if err := checkOwned(fi, "entry"); err != nil {
		return nil, err.Error(), nil
	}
	size := fi.Size() - trailerSize
	if size < 0 {
		return nil, fmt.Sprintf("%d bytes, shorter than a trailer", fi.Size()), nil
	}
	var t [trailerSize]byte
	if _, err := f.ReadAt(t[:], size); err != nil {
		return nil, "", fmt.Errorf("module cache: read %s: %w", f.Name(), err)
	}
	tr, ok := parseTrailer(t)
	switch {
	case !ok:
		return nil, "no trailer", nil
	case tr.length != uint64(size):
		return nil, fmt.Sprintf("trailer says %d bytes of data, file holds %d", tr.length, size), nil
	}
	sum, err := checksum(f, key, size)
	if err != nil {
		return nil, "", fmt.Errorf("module cache: read %s: %w", f.Name(), err)
	}
	if sum != tr.sum {
		return nil, fmt.Sprintf("checksum %016x, trailer says %016x", sum, tr.sum), nil
	}
	return &Entry{f: f, size: size}, "", nil
}

// checksum is the checksum of key and the first size bytes of f. It reads
// the file through a small buffer. Mapping it instead (MAP_POPULATE) is
// faster where a page table entry is cheap (1.0–1.7 ms against 2.4 for an
// 8.5 MB entry on a fast machine), but on a small virtual machine each
// page mapped, and each page of a large buffer touched, costs microseconds:
// there the same entry took 5.1–7.1 ms mapped, 6–9 ms read through 1 MiB,
// and 2.1–3.6 ms read through 64 KiB (medians of 7, 2026-12-06).
func checksum(f *os.File, key string, size int64) (uint64, error) {
	h := newDigest(key)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), make([]byte, 64<<10)); err != nil {
		return 0, err
	}
	return h.Sum64(), nil
}

// touch marks an entry as used for the LRU order (its mtime).
func (c *Cache) touch(name string, e *Entry) {
	fi, err := e.f.Stat()
	if err != nil || time.Since(fi.ModTime()) < touchAfter {
		return
	}
	now := time.Now()
	// Best effort: a failure only makes the entry look older.
	_ = c.root.Chtimes(name, now, now)
}

// removeIfSame removes name if it is still the file f is open on.
func (c *Cache) removeIfSame(name string, f *os.File) {
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if cur, err := c.root.Lstat(name); err == nil && os.SameFile(fi, cur) {
		_ = c.root.Remove(name)
	}
}

// Remove removes the entry under key, if it is still e (nil: whatever is
// stored): for an entry that verified but that its reader cannot use.
func (c *Cache) Remove(key string, e *Entry) error {
	if err := checkKey(key); err != nil {
		return err
	}
	name := key + entrySuffix
	if e != nil {
		c.removeIfSame(name, e.f)
		return nil
	}
	if err := c.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("module cache: %w", err)
	}
	return nil
}

// Put stores data under key, replacing any entry, then removes least
// recently used entries beyond the budget and files that dead writers left.
// Callers that build data should hold the key's lock (Fetch does).
func (c *Cache) Put(key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := c.write(key, data); err != nil {
		return err
	}
	c.clean(key)
	return nil
}

// write stores an entry atomically: a temporary file, synced, renamed over
// the entry's name, and the directory synced.
func (c *Cache) write(key string, data []byte) error {
	tmp := key + tempInfix + randomSuffix()
	f, err := c.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("module cache: store %s: %w", key, err)
	}
	h := newDigest(key)
	h.Write(data)
	t := trailer{length: uint64(len(data)), sum: h.Sum64()}.marshal()
	_, err = f.Write(data)
	if err == nil {
		_, err = f.Write(t[:])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = c.root.Rename(tmp, key+entrySuffix)
	}
	if err != nil {
		_ = c.root.Remove(tmp)
		return fmt.Errorf("module cache: store %s: %w", key, err)
	}
	// The rename is durable once the directory is: without this, a crash
	// could leave the name pointing nowhere, which Get reports as a miss.
	if d, err := c.root.Open("."); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// randomSuffix names a temporary file uniquely enough for O_EXCL.
func randomSuffix() string {
	return fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
}

// Fetch returns the entry stored under key or builds it. On a hit it returns
// the verified entry. On a miss it locks the key — waiting while another
// process builds it, and returning what that process stored — then calls
// build and stores what it returns; the result's Entry is then nil, and the
// error, if any, says why nothing was stored (the build's result is good
// regardless). An error from build is returned as is, unwrapped.
//
// A damaged entry is removed and rebuilt, and Result.Replaced says why.
func (c *Cache) Fetch(ctx context.Context, key string, build func() ([]byte, error)) (Result, error) {
	var res Result
	e, err := c.Get(key)
	if err == nil {
		res.Entry = e
		return res, nil
	}
	if !recordMiss(&res, err) {
		return res, err
	}
	unlock, err := c.lock(ctx, key)
	if err != nil {
		return res, err
	}
	defer unlock()
	// Someone else may have built it while this process waited.
	if e, err := c.Get(key); err == nil {
		res.Entry = e
		return res, nil
	} else if !recordMiss(&res, err) {
		return res, err
	}
	data, err := build()
	if err != nil {
		return res, err
	}
	res.Built = true
	return res, c.Put(key, data)
}

// Result is what Fetch found or did.
type Result struct {
	// Entry is the stored entry on a hit, open and verified; the caller
	// closes it. It is nil when build ran.
	Entry *Entry
	// Built reports that build ran and returned without error.
	Built bool
	// Replaced says why an entry found under the key was not used
	// (damaged) and was removed; nil if none was.
	Replaced error
}

// recordMiss reports whether err from Get is a miss (absent or damaged
// entry), recording a damaged one in res.
func recordMiss(res *Result, err error) bool {
	var corrupt *CorruptError
	switch {
	case errors.As(err, &corrupt):
		res.Replaced = corrupt
		return true
	case errors.Is(err, ErrNotFound):
		return true
	}
	return false
}

// lock takes the key's lock, an flock on KEY.lock, and returns its release.
// It gives up waiting after lockWait, returning a release that does
// nothing: building twice is only wasted work.
func (c *Cache) lock(ctx context.Context, key string) (func(), error) {
	f, err := c.root.OpenFile(key+lockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("module cache: lock %s: %w", key, err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("module cache: lock %s: %w", key, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return func() {}, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("module cache: wait for %s: %w", key, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
}

// tryLock takes the key's lock if nobody holds it.
func (c *Cache) tryLock(key string) (func(), bool) {
	f, err := c.root.OpenFile(key+lockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// clean removes the temporary files of writers that died (their key is not
// locked) and, beyond the budget, the least recently used entries other
// than keep's, with their lock files when nobody holds them.
//
// Removing a lock file races with a process that has opened it and waits:
// that process and the next one to create the file may build the same
// entry at once. Both write whole entries, so the race costs work, never
// correctness.
func (c *Cache) clean(keep string) {
	d, err := c.root.Open(".")
	if err != nil {
		return
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return
	}
	type entry struct {
		key   string
		size  int64
		mtime time.Time
	}
	var entries []entry
	var total int64
	for _, name := range names {
		if key, _, ok := strings.Cut(name, tempInfix); ok {
			if key == keep {
				continue
			}
			if unlock, ok := c.tryLock(key); ok {
				_ = c.root.Remove(name)
				unlock()
			}
			continue
		}
		key, ok := strings.CutSuffix(name, entrySuffix)
		if !ok {
			continue
		}
		fi, err := c.root.Lstat(name)
		if err != nil {
			continue
		}
		total += fi.Size()
		if key != keep {
			entries = append(entries, entry{key: key, size: fi.Size(), mtime: fi.ModTime()})
		}
	}
	if total <= c.Budget {
		return
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.mtime.Compare(b.mtime) })
	for _, e := range entries {
		if total <= c.Budget {
			break
		}
		unlock, ok := c.tryLock(e.key)
		if !ok {
			// Being rebuilt right now: not the least recently used.
			continue
		}
		if err := c.root.Remove(e.key + entrySuffix); err == nil {
			total -= e.size
		}
		_ = c.root.Remove(e.key + lockSuffix)
		unlock()
	}
}

// The trailer that follows an entry's data: a magic, the data's length and
// its checksum, all checked by Get.
const (
	trailerSize  = 24
	trailerMagic = "ENXMC\x00v1"
)

type trailer struct {
	length uint64
	sum    uint64
}

func (t trailer) marshal() [trailerSize]byte {
	var b [trailerSize]byte
	copy(b[:8], trailerMagic)
	binary.LittleEndian.PutUint64(b[8:16], t.length)
	binary.LittleEndian.PutUint64(b[16:24], t.sum)
	return b
}

func parseTrailer(b [trailerSize]byte) (trailer, bool) {
	if string(b[:8]) != trailerMagic {
		return trailer{}, false
	}
	return trailer{length: binary.LittleEndian.Uint64(b[8:16]), sum: binary.LittleEndian.Uint64(b[16:24])}, true
}

// newDigest starts the checksum of an entry of key: the key, a NUL, then
// the data, so that an entry renamed to another key does not verify.
func newDigest(key string) *xxhash.Digest {
	h := xxhash.New()
	h.WriteString(key)
	h.Write([]byte{0})
	return h
}
