package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/term"
	"oras.land/oras-go/v2"
)

// progress reports a push on w: on a terminal, one line redrawn in place
// ("\r") with a bar; otherwise a line per blob when it is done.
type progress struct {
	w     io.Writer
	tty   bool
	total int64
	sent  atomic.Int64 // bytes read from the source so far

	mu      sync.Mutex
	blobs   int // blobs done (pushed or already there)
	doneB   int64
	drawn   time.Time
	lastLen int
}

func newProgress(w io.Writer, total int64) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// count is the number of blobs done.
func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blobs
}

func (p *progress) start(ocispec.Descriptor) { p.redraw(false) }

// done records a blob that was pushed or skipped (verb "pushed", "exists").
func (p *progress) done(d ocispec.Descriptor, verb string) {
	p.mu.Lock()
	p.blobs++
	p.doneB += d.Size
	p.mu.Unlock()
	if !p.tty {
		fmt.Fprintf(p.w, "%s %s %s\n", verb, d.Digest, humanBytes(d.Size))
		return
	}
	p.redraw(true)
}

// add counts n bytes read from the source.
func (p *progress) add(n int) {
	p.sent.Add(int64(n))
	p.redraw(false)
}

// redraw draws the bar, at most every 100 ms unless force.
func (p *progress) redraw(force bool) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !force && time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	p.drawLocked(max(p.sent.Load(), p.doneB))
}

func (p *progress) drawLocked(sent int64) {
	const width = 30
	sent = min(sent, p.total)
	filled := width
	if p.total > 0 {
		filled = int(sent * width / p.total)
	}
	line := fmt.Sprintf("pushing [%s%s] %s / %s, %d blobs done",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), humanBytes(sent), humanBytes(p.total), p.blobs)
	pad := max(p.lastLen-len(line), 0)
	p.lastLen = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// finish ends the bar's line: full when the push succeeded.
func (p *progress) finish(ok bool) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := max(p.sent.Load(), p.doneB)
	if ok {
		sent = p.total
	}
	p.drawLocked(sent)
	fmt.Fprintln(p.w)
}

// humanBytes formats n like "2.8 MB" (decimal units, as registries show).
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// countingTarget is a source whose blob reads count towards a progress.
type countingTarget struct {
	oras.ReadOnlyTarget
	p *progress
}

func (t countingTarget) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := t.ReadOnlyTarget.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	return countingReader{rc, t.p}, nil
}

type countingReader struct {
	io.ReadCloser
	p *progress
}

func (r countingReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	r.p.add(n)
	return n, err
}
