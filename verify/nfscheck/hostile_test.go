package nfscheck_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
)

// fakeNFS is a hostile NFS server in the test: one listener answers
// MOUNT and NFSv3 calls, and reply decides what each NFS call gets.
type fakeNFS struct {
	ln    net.Listener
	reply func(proc uint32, args []byte) []byte // NFS results after the status word, or nil for NFS3ERR_IO
	wg    sync.WaitGroup
}

func startFake(t *testing.T, reply func(proc uint32, args []byte) []byte) *fakeNFS {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNFS{ln: ln, reply: reply}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() { defer f.wg.Done(); f.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeNFS) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

type xdrBuf struct{ bytes.Buffer }

func (b *xdrBuf) u32(v uint32) *xdrBuf { binary.Write(b, binary.BigEndian, v); return b }
func (b *xdrBuf) u64(v uint64) *xdrBuf { binary.Write(b, binary.BigEndian, v); return b }
func (b *xdrBuf) opaque(p []byte) *xdrBuf {
	b.u32(uint32(len(p)))
	b.Write(p)
	b.Write(make([]byte, (4-len(p)%4)%4))
	return b
}

// fattr writes an NFSv3 fattr3.
func (b *xdrBuf) fattr(typ, mode uint32, size, fileid uint64) *xdrBuf {
	b.u32(typ).u32(mode).u32(1).u32(0).u32(0).u64(size).u64(size).u32(0).u32(0).u64(1).u64(fileid)
	for range 6 {
		b.u32(0)
	}
	return b
}

func (f *fakeNFS) serve(c net.Conn) {
	defer c.Close()
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:]) & 0x7fffffff
		if n > 1<<20 {
			return
		}
		call := make([]byte, n)
		if _, err := io.ReadFull(c, call); err != nil {
			return
		}
		r := bytes.NewReader(call)
		var h struct{ XID, Type, RPCVers, Prog, Vers, Proc uint32 }
		binary.Read(r, binary.BigEndian, &h)
		for range 2 { // credential, verifier
			var flavor, length uint32
			binary.Read(r, binary.BigEndian, &flavor)
			binary.Read(r, binary.BigEndian, &length)
			r.Seek(int64(length+(4-length%4)%4), io.SeekCurrent)
		}
		args, _ := io.ReadAll(r)
		var out xdrBuf
		out.u32(h.XID).u32(1).u32(0).u32(0).u32(0).u32(0) // reply, accepted, null verifier, success
		switch {
		case h.Prog == 100005 && h.Proc == 1: // MNT
			out.u32(0).opaque([]byte("rootfh00")).u32(1).u32(1)
		case h.Prog == 100005: // EXPORT and others: an empty list
			out.u32(0)
		case h.Proc == 19: // FSINFO
			out.u32(0).u32(0)
			for range 7 {
				out.u32(65536)
			}
			out.u64(1 << 40).u32(0).u32(1).u32(0x1b)
		case h.Proc == 1: // GETATTR of the root
			out.u32(0).fattr(2, 0o755, 4096, 1)
		default:
			res := f.reply(h.Proc, args)
			if res == nil {
				out.u32(5) // NFS3ERR_IO
			} else {
				out.u32(0).Write(res)
			}
		}
		var rec bytes.Buffer
		binary.Write(&rec, binary.BigEndian, uint32(out.Len())|0x80000000)
		rec.Write(out.Bytes())
		if _, err := c.Write(rec.Bytes()); err != nil {
			return
		}
	}
}

// dirEntries is a READDIRPLUS reply listing the given directories, each
// with the same handle, and fileids from next.
func dirEntries(names []string, next func() uint64) []byte {
	var b xdrBuf
	b.u32(0).u64(0) // no dir attributes, cookie verifier
	for i, name := range names {
		id := next()
		b.u32(1).u64(id).opaque([]byte(name)).u64(uint64(i + 1))
		b.u32(1).fattr(2, 0o755, 4096, id)
		b.u32(1).opaque([]byte("rootfh00"))
	}
	b.u32(0).u32(1) // no more entries, EOF
	return b.Bytes()
}

// TestHostileServer points nroot check at servers that present loops,
// endless depth, paging without end and absurd lengths. Each must end
// with an error, in bounded time and memory, and leave no goroutines.
func TestHostileServer(t *testing.T) {
	var counter uint64
	var cmu sync.Mutex
	next := func() uint64 { cmu.Lock(); defer cmu.Unlock(); counter++; return counter + 1 }
	tests := []struct {
		name  string
		reply func(proc uint32, args []byte) []byte
	}{
		// Every subdirectory is the root again (same handle, same fileid).
		{"loop", func(proc uint32, _ []byte) []byte {
			if proc != 17 {
				return nil
			}
			return dirEntries([]string{"a", "b", "c"}, func() uint64 { return 1 })
		}},
		// Every directory has three subdirectories, each new: endless.
		{"endless tree", func(proc uint32, _ []byte) []byte {
			if proc != 17 {
				return nil
			}
			return dirEntries([]string{"a", "b", "c"}, next)
		}},
		// READDIRPLUS never says EOF and repeats its cookies.
		{"endless paging", func(proc uint32, _ []byte) []byte {
			if proc != 17 {
				return nil
			}
			var b xdrBuf
			b.u32(0).u64(0)
			b.u32(1).u64(next()).opaque([]byte("f")).u64(7).u32(1).fattr(1, 0o644, 1, next()).u32(1).opaque([]byte("fh"))
			b.u32(0).u32(0) // not EOF
			return b.Bytes()
		}},
		// A name that declares 4 GiB in a 100-byte reply.
		{"huge length", func(proc uint32, _ []byte) []byte {
			if proc != 17 {
				return nil
			}
			var b xdrBuf
			b.u32(0).u64(0).u32(1).u64(2).u32(0xfffffff0)
			return b.Bytes()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, tt.reply)
			before := runtime.NumGoroutine()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap := ms.HeapAlloc
			start := time.Now()
			_, err := nfscheck.Run(context.Background(), nfscheck.Options{
				Target:  nfsclient.Target{Host: "127.0.0.1", NFSPort: srv.port(), MountPort: srv.port(), Path: "/x"},
				Timeout: 30 * time.Second, MaxEntries: 200_000,
			})
			if err == nil {
				t.Fatal("a hostile server's export was accepted")
			}
			if el := time.Since(start); el > 25*time.Second {
				t.Errorf("took %v: %v", el, err)
			}
			if tt.name != "huge length" && !errors.Is(err, nfsclient.ErrWalkLimit) {
				t.Errorf("err = %v, want ErrWalkLimit", err)
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > heap+512<<20 {
				t.Errorf("heap grew by %d MiB", (ms.HeapAlloc-heap)>>20)
			}
			time.Sleep(100 * time.Millisecond)
			if g := runtime.NumGoroutine(); g > before+8 {
				t.Errorf("%d goroutines left running (%d before)", g, before)
			}
			t.Logf("%s: %v", tt.name, err)
		})
	}
}
