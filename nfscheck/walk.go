package nfscheck

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
	"golang.org/x/sys/unix"
)

// Node is what is compared of one path.
type Node struct {
	Type   string `json:"type"`
	Mode   uint32 `json:"mode"` // permission bits with setuid, setgid, sticky
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   int64  `json:"size"`
	Link   string `json:"link,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Err    string `json:"error,omitempty"` // why it could not be read
	fh     []byte
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
}

// WalkRemote lists the whole export, many directories at once so that
// READDIRPLUS and READLINK requests are pipelined on the connection.
func WalkRemote(ctx context.Context, c *Conn, o WalkOptions, st *Stats) (Tree, error) {
	if o.Parallel <= 0 {
		o.Parallel = 32
	}
	attr, err := c.Getattr(ctx, c.Root)
	if err != nil {
		return nil, &StepError{"nfs", err, "GETATTR of the export's root failed"}
	}
	tree := Tree{"": {Type: "dir", Mode: attr.FileMode & 0o7777, UID: attr.UID, GID: attr.GID, fh: c.Root}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Parallel)
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// The server's preferred read size, at most 1 MiB: ganesha offers
	// 64 MiB, which would only cost memory.
	rsize := uint32(1 << 20)
	if c.Info != nil && c.Info.RTPref > 0 && c.Info.RTPref < rsize {
		rsize = c.Info.RTPref
	}
	var spawn func(fn func())
	spawn = func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			fn()
		}()
	}
	var listDir func(p string, fh []byte)
	listDir = func(p string, fh []byte) {
		atomic.AddInt64(&st.Requests, 1)
		ents, err := c.ReadDirPlus(ctx, fh)
		if err != nil {
			if isAccess(err) {
				atomic.AddInt64(&st.Unreadable, 1)
				mu.Lock()
				tree[p].Err = "permission denied"
				mu.Unlock()
				return
			}
			fail(fmt.Errorf("listing %s: %w", "/"+p, err))
			return
		}
		for _, e := range ents {
			child := path.Join(p, e.Name)
			n := &Node{Type: nfsType(e.Attr.Type), Mode: e.Attr.FileMode & 0o7777, UID: e.Attr.UID, GID: e.Attr.GID, fh: e.FH}
			if n.Type == "file" {
				n.Size = int64(e.Attr.Filesize)
			}
			mu.Lock()
			tree[child] = n
			mu.Unlock()
			atomic.AddInt64(&st.Entries, 1)
			switch n.Type {
			case "dir":
				spawn(func() { listDir(child, e.FH) })
			case "symlink":
				spawn(func() {
					atomic.AddInt64(&st.Requests, 1)
					l, err := c.Readlink(ctx, e.FH)
					if err != nil {
						fail(fmt.Errorf("readlink %s: %w", "/"+child, err))
						return
					}
					mu.Lock()
					n.Link = l
					mu.Unlock()
				})
			case "file":
				if o.Deep {
					spawn(func() {
						sum, read, err := hashRemote(ctx, c, e.FH, n.Size, rsize, &st.Requests)
						atomic.AddInt64(&st.BytesRead, read)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case isAccess(err):
							n.Err = "permission denied"
							atomic.AddInt64(&st.Unreadable, 1)
						case err != nil:
							n.Err = err.Error()
						default:
							n.SHA256 = sum
						}
					})
				}
			}
		}
	}
	spawn(func() { listDir("", c.Root) })
	wg.Wait()
	if firstErr != nil {
		return tree, firstErr
	}
	if err := ctx.Err(); err != nil {
		return tree, &StepError{"nfs", err, "the walk did not finish in time; the server is slow or stopped answering"}
	}
	return tree, nil
}

func isAccess(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "NFS3ERR_ACCES") || strings.Contains(err.Error(), "NFS3ERR_PERM") || strings.Contains(err.Error(), "permission"))
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
		if rel == "." {
			rel = ""
		}
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err != nil {
			return err
		}
		n := &Node{Mode: s.Mode & 0o7777, UID: s.Uid, GID: s.Gid}
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFREG:
			n.Type, n.Size = "file", s.Size
			files = append(files, rel)
		case unix.S_IFLNK:
			n.Type = "symlink"
			n.Link, err = os.Readlink(p)
		case unix.S_IFCHR:
			n.Type = "char"
		case unix.S_IFBLK:
			n.Type = "block"
		case unix.S_IFIFO:
			n.Type = "fifo"
		case unix.S_IFSOCK:
			n.Type = "socket"
		}
		tree[filepath.ToSlash(rel)] = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	if deep {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, f := range files {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				sum, err := hashFile(filepath.Join(dir, f))
				if err != nil {
					tree[f].Err = err.Error()
					return
				}
				tree[f].SHA256 = sum
			}()
		}
		wg.Wait()
	}
	return tree, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
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

// Difference is one path that differs between the root filesystem and
// the export.
type Difference struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"` // missing, extra, changed
	Fields string `json:"fields,omitempty"`
	Local  *Node  `json:"local,omitempty"`
	Remote *Node  `json:"remote,omitempty"`
}

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
				out = append(out, Difference{Path: "/" + p, Kind: "missing", Local: l})
			}
			continue
		}
		if f := changed(l, r); f != "" {
			out = append(out, Difference{Path: "/" + p, Kind: "changed", Fields: f, Local: l, Remote: r})
		}
	}
	for p, r := range remote {
		if _, ok := local[p]; !ok {
			out = append(out, Difference{Path: "/" + p, Kind: "extra", Remote: r})
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
	if l.Mode != r.Mode {
		f = append(f, "mode")
	}
	if l.UID != r.UID || l.GID != r.GID {
		f = append(f, "owner")
	}
	if l.Type == "file" && l.Size != r.Size {
		f = append(f, "size")
	}
	if l.Link != r.Link {
		f = append(f, "target")
	}
	if l.SHA256 != "" && r.SHA256 != "" && l.SHA256 != r.SHA256 {
		f = append(f, "content")
	}
	return strings.Join(f, ",")
}

var errNotFound = errors.New("not found")
