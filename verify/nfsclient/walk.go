package nfsclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/willscott/go-nfs-client/nfs"

	"nroot/format/report"
	"nroot/internal/fsroot"
	"nroot/internal/parallel"
)

// Node is what is compared of one path, and why it could not be read.
type Node struct {
	report.File
	Err string `json:"error,omitempty"`
	fh  []byte
	// noUnixMeta: read on a system that keeps no Unix modes or owners
	// (Windows), which Compare then leaves out.
	noUnixMeta bool
}

// Tree maps a path ("" for the root, else "etc/passwd") to its node.
type Tree map[string]*Node

func nfsType(t uint32) string {
	return map[uint32]string{nfs.NF3Reg: "file", nfs.NF3Dir: "dir", nfs.NF3Blk: "block", nfs.NF3Chr: "char", nfs.NF3Lnk: "symlink", nfs.NF3Sock: "socket", nfs.NF3FIFO: "fifo"}[t]
}

// Stats are the walk's figures.
type Stats struct {
	Entries    int64 `json:"entries"`
	Requests   int64 `json:"requests"`
	BytesRead  int64 `json:"bytes_read"`
	Unreadable int64 `json:"unreadable"`
}

// WalkOptions control WalkRemote.
type WalkOptions struct {
	Parallel int  // requests in flight at once
	Deep     bool // read every file and hash it
	// MaxDepth and MaxEntries bound the walk of a server that could
	// present an endless tree; 0 means DefaultMaxDepth and
	// DefaultMaxEntries.
	MaxDepth   int
	MaxEntries int64
}

// The default bounds of a walk: far beyond any root filesystem (a
// Debian image has some 70,000 entries, nested a few dozen deep).
const (
	DefaultMaxDepth   = 256
	DefaultMaxEntries = 5_000_000
)

// ErrWalkLimit says the export went past a bound of the walk: deeper or
// larger than any root filesystem, or a directory met twice (a loop).
var ErrWalkLimit = errors.New("the export exceeds the walk's bounds")

// dirID identifies a directory on the server, as a visited set needs.
type dirID struct{ fsid, fileid uint64 }

// walkJob is one request of the walk.
type walkJob struct {
	kind  int // listJob, linkJob, hashJob
	path  string
	depth int
	fh    []byte
	node  *Node
}

const (
	listJob = iota
	linkJob
	hashJob
)

// WalkRemote lists the whole export with a fixed number of workers
// taking requests from one queue, so that READDIRPLUS, READLINK and READ
// requests are pipelined on the connections whatever the tree's shape.
// The server is not trusted: a directory met twice, a tree deeper than
// MaxDepth or larger than MaxEntries stops the walk with ErrWalkLimit.
func WalkRemote(ctx context.Context, c *Conn, o WalkOptions, st *Stats) (Tree, error) {
	if o.Parallel <= 0 {
		o.Parallel = 32
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	attr, err := c.Getattr(ctx, c.Root)
	if err != nil {
		return nil, &StepError{Step: "nfs", Err: err, Hint: "GETATTR of the export's root failed"}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &walker{c: c, o: o, st: st, cancel: cancel,
		tree:    Tree{"": {File: report.File{Type: "dir", Mode: report.Mode(attr.FileMode & 0o7777), UID: int(attr.UID), GID: int(attr.GID)}, fh: c.Root}},
		visited: map[dirID]string{{attr.FSID, attr.Fileid}: "/"},
		queue:   []walkJob{{kind: listJob, path: "", fh: c.Root}},
		// The server's preferred read size, at most 1 MiB: ganesha
		// offers 64 MiB, which would only cost memory.
		rsize: 1 << 20,
	}
	if c.Info != nil && c.Info.RTPref > 0 && c.Info.RTPref < w.rsize {
		w.rsize = c.Info.RTPref
	}
	w.cond = sync.NewCond(&w.mu)
	var wg sync.WaitGroup
	for range o.Parallel {
		wg.Go(func() { w.work(ctx) })
	}
	// A cancelled context wakes the workers waiting for work.
	stop := context.AfterFunc(ctx, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer stop()
	wg.Wait()
	if w.firstErr != nil {
		return w.tree, w.firstErr
	}
	if err := ctx.Err(); err != nil {
		return w.tree, &StepError{Step: "nfs", Err: err, Hint: "the walk did not finish in time; the server is slow or stopped answering"}
	}
	return w.tree, nil
}

// walker is one WalkRemote: a queue of requests that Parallel workers
// take from, and the tree their answers build. mu guards everything but
// the fields set before the workers start.
type walker struct {
	c      *Conn
	o      WalkOptions
	st     *Stats
	rsize  uint32
	cancel context.CancelFunc

	mu       sync.Mutex
	cond     *sync.Cond
	tree     Tree
	visited  map[dirID]string
	queue    []walkJob
	busy     int
	firstErr error
}

// work takes jobs until the queue is empty and no job is running (none
// can add more), or the walk failed.
func (w *walker) work(ctx context.Context) {
	w.mu.Lock()
	for {
		for len(w.queue) == 0 && w.busy > 0 && w.firstErr == nil {
			w.cond.Wait()
		}
		if w.firstErr != nil || len(w.queue) == 0 {
			w.cond.Broadcast()
			w.mu.Unlock()
			return
		}
		// Depth first keeps the queue short.
		j := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.busy++
		w.mu.Unlock()
		w.run(ctx, j)
		w.mu.Lock()
		w.busy--
		w.cond.Broadcast()
	}
}

// fail records the walk's first error and stops the rest; mu is held.
func (w *walker) fail(err error) {
	if w.firstErr == nil {
		w.firstErr = err
		w.cancel()
	}
}

// run sends one job's request and records its answer.
func (w *walker) run(ctx context.Context, j walkJob) {
	atomic.AddInt64(&w.st.Requests, 1)
	switch j.kind {
	case listJob:
		ents, err := w.c.ReadDirPlus(ctx, j.fh, int(w.o.MaxEntries))
		if err != nil {
			w.mu.Lock()
			defer w.mu.Unlock()
			if IsAccess(err) {
				w.st.Unreadable++
				w.tree[j.path].Err = "permission denied"
				return
			}
			w.fail(fmt.Errorf("listing %s: %w", "/"+j.path, err))
			return
		}
		w.add(j, ents)
	case linkJob:
		l, err := w.c.Readlink(ctx, j.fh)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.fail(fmt.Errorf("readlink %s: %w", "/"+j.path, err))
			return
		}
		j.node.Linkname = l
	case hashJob:
		sum, read, err := hashRemote(ctx, w.c, j.fh, j.node.Size, w.rsize, &w.st.Requests)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.st.BytesRead += read
		switch {
		case IsAccess(err):
			j.node.Err = "permission denied"
			w.st.Unreadable++
		case err != nil:
			j.node.Err = err.Error()
		default:
			j.node.SHA256 = sum
		}
	}
}

// add records a directory's entries and queues their requests, refusing
// a name given twice or malformed, a directory met again (a loop), and a
// tree over the walk's bounds.
func (w *walker) add(j walkJob, ents []Entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.cond.Broadcast()
	for _, e := range ents {
		if w.firstErr != nil {
			return
		}
		child := path.Join(j.path, e.Name)
		if _, dup := w.tree[child]; dup || e.Name == "" || strings.ContainsRune(e.Name, '/') {
			w.fail(fmt.Errorf("listing %s: the server returned the name %q twice or malformed: %w", "/"+j.path, e.Name, ErrWalkLimit))
			return
		}
		n := &Node{File: report.File{Type: nfsType(e.Attr.Type), Mode: report.Mode(e.Attr.FileMode & 0o7777), UID: int(e.Attr.UID), GID: int(e.Attr.GID)}, fh: e.FH}
		if n.Type == "file" {
			n.Size = int64(e.Attr.Filesize)
		}
		w.tree[child] = n
		if w.st.Entries++; w.st.Entries > w.o.MaxEntries {
			w.fail(fmt.Errorf("more than %d entries (--max-entries): %w", w.o.MaxEntries, ErrWalkLimit))
			return
		}
		switch n.Type {
		case "dir":
			id := dirID{e.Attr.FSID, e.Attr.Fileid}
			if prev, seen := w.visited[id]; seen {
				w.fail(fmt.Errorf("/%s is the directory %s again (fsid %d, fileid %d): a loop: %w", child, prev, id.fsid, id.fileid, ErrWalkLimit))
				return
			}
			w.visited[id] = "/" + child
			if j.depth+1 > w.o.MaxDepth {
				w.fail(fmt.Errorf("/%s is deeper than %d directories (--max-depth): %w", child, w.o.MaxDepth, ErrWalkLimit))
				return
			}
			w.queue = append(w.queue, walkJob{kind: listJob, path: child, depth: j.depth + 1, fh: e.FH, node: n})
		case "symlink":
			w.queue = append(w.queue, walkJob{kind: linkJob, path: child, fh: e.FH, node: n})
		case "file":
			if w.o.Deep {
				w.queue = append(w.queue, walkJob{kind: hashJob, path: child, fh: e.FH, node: n})
			}
		}
	}
}

// IsAccess reports whether the server refused an operation for lack of
// permission.
func IsAccess(err error) bool {
	var ne *nfs.Error
	return errors.Is(err, os.ErrPermission) || (errors.As(err, &ne) && ne.ErrorNum == nfs.NFS3ErrAcces)
}

// bufs recycles read buffers: allocating (and clearing) a fresh 1 MiB
// per READ was most of the CPU a deep check spent.
var bufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// hashRemote reads a file of the given size with up to four READs in
// flight, and hashes it.
func hashRemote(ctx context.Context, c *Conn, fh []byte, size int64, rsize uint32, reqs *int64) (string, int64, error) {
	h := sha256.New()
	var off uint64
	const depth = 4
	type chunk struct {
		buf *[]byte
		n   int
		eof bool
		err error
	}
	for {
		// Ask for what the size says is left (at least one READ, which
		// also finds a file that grew).
		n := depth
		if left := size - int64(off); left <= int64(rsize)*int64(depth) {
			n = int((left + int64(rsize) - 1) / int64(rsize))
			if n < 1 {
				n = 1
			}
		}
		results := make([]chan chunk, n)
		for i := range results {
			results[i] = make(chan chunk, 1)
			o := off + uint64(i)*uint64(rsize)
			go func(ch chan chunk, o uint64) {
				atomic.AddInt64(reqs, 1)
				buf := bufs.Get().(*[]byte)
				k, eof, err := c.Read(ctx, fh, o, rsize, (*buf)[:rsize])
				ch <- chunk{buf, k, eof, err}
			}(results[i], o)
		}
		done := false
		var total int64
		var firstErr error
		for i := range results {
			r := <-results[i]
			if !done && firstErr == nil {
				if r.err != nil {
					firstErr = r.err
				} else {
					h.Write((*r.buf)[:r.n])
					total += int64(r.n)
					if r.eof || r.n < int(rsize) {
						done = true
					}
				}
			}
			bufs.Put(r.buf)
		}
		if firstErr != nil {
			return "", int64(off) + total, firstErr
		}
		off += uint64(total)
		if done {
			return hex.EncodeToString(h.Sum(nil)), int64(off), nil
		}
		if int64(off) > size+int64(rsize)*depth {
			// A file that grows while it is read, or a server that
			// never says EOF: stop, a bounded read past the size.
			return "", int64(off), fmt.Errorf("the server returned more than the file's %d bytes without end", size)
		}
	}
}

// WalkLocal reads a root filesystem the same way.
func WalkLocal(dir string, deep bool) (Tree, error) {
	tree := Tree{}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel) // the tree's and the root's paths, on Windows too
		if rel == "." {
			rel = ""
		}
		s, err := fsroot.HostLstat(p)
		if err != nil {
			return err
		}
		n := &Node{File: report.File{Mode: report.Mode(s.Mode & 0o7777), UID: s.UID, GID: s.GID}, noUnixMeta: !fsroot.HostUnixMeta}
		switch s.Mode & fsroot.ModeType {
		case fsroot.ModeDir:
			n.Type = "dir"
		case fsroot.ModeReg:
			n.Type, n.Size = "file", s.Size
			files = append(files, rel)
		case fsroot.ModeLink:
			n.Type = "symlink"
			n.Linkname, err = os.Readlink(p)
		case fsroot.ModeChar:
			n.Type = "char"
		case fsroot.ModeBlock:
			n.Type = "block"
		case fsroot.ModeFIFO:
			n.Type = "fifo"
		case fsroot.ModeSocket:
			n.Type = "socket"
		}
		tree[rel] = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	if deep {
		// The tree is an image: its files are opened inside it, and
		// only if they are still regular files.
		root, err := fsroot.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		defer root.Close()
		parallel.Each(context.Background(), len(files), 8, func(_ context.Context, i int) error {
			f := files[i]
			sum, err := hashFile(root, f)
			if err != nil {
				tree[f].Err = err.Error() // reported as a difference, not a failure
				return nil
			}
			tree[f].SHA256 = sum
			return nil
		})
	}
	return tree, nil
}

func hashFile(root *fsroot.Root, rel string) (string, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Difference is one path that differs between the root filesystem (Old)
// and the export (New): missing, extra or changed.
type Difference = report.Difference

// Compare lists what differs: paths missing from the export, extra in
// it, and changed (type, mode, owner, size, symlink target, and with deep
// the content). Paths below a directory the export would not list are
// not reported as missing.
func Compare(local, remote Tree) []Difference {
	var out []Difference
	unreadable := func(p string) bool {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if d == "." {
				d = ""
			}
			if n := remote[d]; n != nil && n.Err != "" {
				return true
			}
			if d == "" {
				return false
			}
		}
	}
	for p, l := range local {
		r, ok := remote[p]
		if !ok {
			if !unreadable(p) {
				out = append(out, Difference{Path: "/" + p, Kind: "missing", Old: &l.File})
			}
			continue
		}
		if f := changed(l, r); f != "" {
			out = append(out, Difference{Path: "/" + p, Kind: "changed", Fields: f, Old: &l.File, New: &r.File})
		}
	}
	for p, r := range remote {
		if _, ok := local[p]; !ok {
			out = append(out, Difference{Path: "/" + p, Kind: "extra", New: &r.File})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func changed(l, r *Node) string {
	var f []string
	if l.Type != r.Type {
		return "type"
	}
	if l.Mode != r.Mode && !l.noUnixMeta {
		f = append(f, "mode")
	}
	if (l.UID != r.UID || l.GID != r.GID) && !l.noUnixMeta {
		f = append(f, "owner")
	}
	if l.Type == "file" && l.Size != r.Size {
		f = append(f, "size")
	}
	if l.Linkname != r.Linkname {
		f = append(f, "target")
	}
	if l.SHA256 != "" && r.SHA256 != "" && l.SHA256 != r.SHA256 {
		f = append(f, "content")
	}
	return strings.Join(f, ",")
}
