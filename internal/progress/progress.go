// Package progress reports long work: a redrawn status line on a
// terminal, plain lines otherwise, so logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Bar tracks bytes and items done against totals.
type Bar struct {
	// Unit names the items ("packages"); empty shows the counts alone.
	Unit        string
	mu          sync.Mutex
	w           io.Writer
	tty         bool
	label       string
	totalBytes  int64
	totalItems  int
	bytes       int64
	items       int
	cached      int   // items that needed no work (already in a cache)
	cachedBytes int64 // and their bytes, which count toward the total, not the rate
	start, last time.Time
	lastPct     int
}

// IsTerminal reports whether f is a terminal (terminal_*.go).
func IsTerminal(f *os.File) bool { return isTerminal(f.Fd()) }

// New starts a bar writing to w (a terminal gets a redrawn line).
func New(w io.Writer, label string, totalBytes int64, totalItems int) *Bar {
	tty := false
	// An *os.File, or a writer passing on to one that says its Fd.
	if f, ok := w.(interface{ Fd() uintptr }); ok {
		tty = isTerminal(f.Fd())
	}
	now := time.Now()
	return &Bar{w: w, tty: tty, label: label, totalBytes: totalBytes, totalItems: totalItems, start: now, last: now, lastPct: -1}
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	b.bytes += n
	b.maybeDraw(false)
	b.mu.Unlock()
}

// Item records one more item done.
func (b *Bar) Item() {
	b.mu.Lock()
	b.items++
	b.maybeDraw(false)
	b.mu.Unlock()
}

// Cached records one item, of n bytes, found in a cache: done, but not
// part of the transfer rate.
func (b *Bar) Cached(n int64) {
	b.mu.Lock()
	b.cached++
	b.cachedBytes += n
	b.items++
	b.maybeDraw(false)
	b.mu.Unlock()
}

// Finish draws the final state.
func (b *Bar) Finish() {
	b.mu.Lock()
	b.maybeDraw(true)
	if b.tty {
		fmt.Fprintln(b.w)
	}
	b.mu.Unlock()
}

func (b *Bar) maybeDraw(final bool) {
	if b.w == nil {
		return
	}
	now := time.Now()
	pct := 0
	done := b.bytes + b.cachedBytes
	if b.totalBytes > 0 {
		pct = int(done * 100 / b.totalBytes)
	} else if b.totalItems > 0 {
		pct = b.items * 100 / b.totalItems
	}
	if b.tty {
		if !final && now.Sub(b.last) < 100*time.Millisecond {
			return
		}
	} else if !final && (pct/10 == b.lastPct/10 || now.Sub(b.last) < time.Second) && now.Sub(b.last) < 10*time.Second {
		return
	}
	b.last, b.lastPct = now, pct
	// What is true: items, bytes where there are any, the rate of what
	// was transferred, and what came from a cache.
	line := fmt.Sprintf("[%s] %3d%% %d/%d", b.label, pct, b.items, b.totalItems)
	if b.Unit != "" {
		line += " " + b.Unit
	}
	if b.totalBytes > 0 {
		line += fmt.Sprintf(", %s/%s", Bytes(done), Bytes(b.totalBytes))
	}
	if b.bytes > 0 {
		el := now.Sub(b.start).Seconds()
		if el > 0 {
			rate := float64(b.bytes) / el
			line += fmt.Sprintf(", %s/s", Bytes(int64(rate)))
			if !final && rate > 0 && b.totalBytes > done {
				line += ", ETA " + (time.Duration(float64(b.totalBytes-done)/rate) * time.Second / time.Second).Round(time.Second).String()
			}
		}
	}
	if b.cached > 0 {
		line += fmt.Sprintf(" (%d cached)", b.cached)
	}
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}

// Bytes formats a byte count in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
