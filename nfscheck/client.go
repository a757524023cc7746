// Package nfscheck mounts an NFS export with an in-process NFSv3 client,
// from any machine, without root or a kernel mount, walks it, compares it
// with the root filesystem it should serve, and checks that a diskless
// node can boot from it.
package nfscheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// Target is an export to check: nfs://SERVER[:PORT]/PATH.
type Target struct {
	Host      string
	NFSPort   int // 0: ask the portmapper
	MountPort int // 0: ask the portmapper
	Path      string
}

// ParseURL reads nfs://SERVER[:PORT]/PATH. PORT is the NFS port.
func ParseURL(s string) (Target, error) {
	rest, ok := strings.CutPrefix(s, "nfs://")
	if !ok {
		return Target{}, fmt.Errorf("%q: expected nfs://SERVER[:PORT]/PATH", s)
	}
	hostport, p, _ := strings.Cut(rest, "/")
	t := Target{Path: "/" + p}
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return t, fmt.Errorf("%q: bad port %q", s, port)
		}
		t.Host, t.NFSPort = h, n
	} else {
		t.Host = strings.Trim(hostport, "[]")
	}
	if t.Host == "" {
		return t, fmt.Errorf("%q: no server", s)
	}
	return t, nil
}

// StepError is a failure to reach the export, naming the step: portmap,
// mount or nfs. nroot check exits 2 on it.
type StepError struct {
	Step string
	Err  error
	Hint string
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Step, e.Err)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *StepError) Unwrap() error { return e.Err }

// guard runs fn, giving up when ctx ends and turning the library's panics
// (it panics on some malformed replies) into errors.
func guard[T any](ctx context.Context, onCancel func(), fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				var zero T
				ch <- result{zero, fmt.Errorf("malformed reply from the server: %v", r)}
			}
		}()
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if onCancel != nil {
			onCancel()
		}
		var zero T
		return zero, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// privileged reports whether this process can use a source port below
// 1024, which "secure" exports require.
func privileged() bool { return os.Geteuid() == 0 }

// Conn is a mounted export: the NFS client and the root file handle.
type Conn struct {
	nfs     *rpc.Client
	pool    []*rpc.Client // more connections to the NFS port, for pipelining
	next    atomic.Uint64
	mnt     *rpc.Client
	Target  *nfs.Target
	Root    []byte
	Auth    rpc.Auth
	Info    *nfs.FSInfo
	Ports   struct{ Mount, NFS int }
	Exports []string
	closed  bool
}

// Close unmounts and closes the connections.
func (c *Conn) Close() {
	if c.closed {
		return
	}
	c.closed = true
	if c.nfs != nil {
		c.nfs.Close()
	}
	for _, p := range c.pool {
		p.Close()
	}
	if c.mnt != nil {
		c.mnt.Close()
	}
}

func dial(ctx context.Context, addr string) (*rpc.Client, error) {
	// The library dials without a timeout; probe first so an unreachable
	// server fails within ctx.
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return guard(ctx, nil, func() (*rpc.Client, error) { return rpc.DialTCP("tcp", addr, privileged()) })
}

// Mount reaches the server, lists its exports and mounts t.Path as
// root (uid 0, gid 0), as a node does.
func Mount(ctx context.Context, t Target) (*Conn, error) {
	c := &Conn{Auth: rpc.NewAuthUnix("nroot-check", 0, 0).Auth()}
	host := t.Host
	c.Ports.Mount, c.Ports.NFS = t.MountPort, t.NFSPort
	if c.Ports.Mount == 0 || c.Ports.NFS == 0 {
		d := net.Dialer{}
		probe, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, "111"))
		if err != nil {
			return nil, &StepError{"portmap", err, "is the server running rpcbind? or give --mount-port and --nfs-port"}
		}
		probe.Close()
		pm, err := guard(ctx, nil, func() (*rpc.Portmapper, error) { return rpc.DialPortmapper("tcp", host) })
		if err != nil {
			return nil, &StepError{"portmap", err, "is the server running rpcbind?"}
		}
		defer pm.Close()
		for _, p := range []struct {
			prog, vers uint32
			dst        *int
			name       string
		}{{nfs.MountProg, nfs.MountVers, &c.Ports.Mount, "MOUNT v3"}, {nfs.Nfs3Prog, nfs.Nfs3Vers, &c.Ports.NFS, "NFS v3"}} {
			if *p.dst != 0 {
				continue
			}
			port, err := guard(ctx, pm.Close, func() (int, error) {
				return pm.Getport(rpc.Mapping{Prog: p.prog, Vers: p.vers, Prot: rpc.IPProtoTCP})
			})
			if err != nil {
				return nil, &StepError{"portmap", err, ""}
			}
			if port == 0 {
				return nil, &StepError{"portmap", fmt.Errorf("%s is not registered with the portmapper on %s", p.name, host), "is the NFS server running, with NFSv3 enabled?"}
			}
			*p.dst = port
		}
	}
	var err error
	c.mnt, err = dial(ctx, net.JoinHostPort(host, strconv.Itoa(c.Ports.Mount)))
	if err != nil {
		return nil, &StepError{"mount", err, "the MOUNT service does not answer"}
	}
	c.Exports, _ = c.exports(ctx)
	fh, err := c.mount(ctx, t.Path)
	if err != nil {
		c.Close()
		hint := ""
		if strings.Contains(err.Error(), "NOENT") || strings.Contains(err.Error(), "ACCES") {
			hint = fmt.Sprintf("the server exports %s; check the path (ganesha mounts v3 by Path, not Pseudo)", orNone(c.Exports))
		}
		if isAuthReject(err) {
			hint = insecureHint
		}
		return nil, &StepError{"mount", err, hint}
	}
	c.Root = fh
	c.nfs, err = dial(ctx, net.JoinHostPort(host, strconv.Itoa(c.Ports.NFS)))
	if err != nil {
		c.Close()
		return nil, &StepError{"nfs", err, "the NFS service does not answer"}
	}
	tg, err := guard(ctx, c.Close, func() (*nfs.Target, error) {
		return nfs.NewTargetWithClient(c.nfs, c.Auth, fh, t.Path, time.Minute)
	})
	if err != nil {
		c.Close()
		hint := ""
		if isAuthReject(err) {
			hint = insecureHint
		}
		return nil, &StepError{"nfs", err, hint}
	}
	c.Target = tg
	c.pool = []*rpc.Client{c.nfs}
	for i := 1; i < nfsConnections; i++ {
		extra, err := dial(ctx, net.JoinHostPort(host, strconv.Itoa(c.Ports.NFS)))
		if err != nil {
			break // one connection is enough to go on
		}
		c.pool = append(c.pool, extra)
	}
	c.Info, err = guard(ctx, c.Close, tg.FSInfo)
	if err != nil {
		c.Close()
		return nil, &StepError{"nfs", err, ""}
	}
	return c, nil
}

const insecureHint = "the server refused this client: exports that require a privileged source port reject non-root clients; add `insecure` to the export's options (or run nroot check as root)"

func isAuthReject(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "rejectedStatus") || strings.Contains(err.Error(), "AUTH"))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing (or would not say)"
	}
	return strings.Join(s, ", ")
}

func (c *Conn) mount(ctx context.Context, path string) ([]byte, error) {
	type mountArgs struct {
		rpc.Header
		Dirpath string
	}
	return guard(ctx, c.Close, func() ([]byte, error) {
		res, err := c.mnt.Call(&mountArgs{rpc.Header{Rpcvers: 2, Prog: nfs.MountProg, Vers: nfs.MountVers, Proc: nfs.MountProc3MNT, Cred: c.Auth, Verf: rpc.AuthNull}, path})
		if err != nil {
			return nil, err
		}
		stat, err := xdr.ReadUint32(res)
		if err != nil {
			return nil, err
		}
		if stat != 0 {
			names := map[uint32]string{1: "MNT3ERR_PERM", 2: "MNT3ERR_NOENT", 5: "MNT3ERR_IO", 13: "MNT3ERR_ACCES", 20: "MNT3ERR_NOTDIR", 63: "MNT3ERR_NAMETOOLONG"}
			return nil, fmt.Errorf("%s: %s", path, names[stat])
		}
		return xdr.ReadOpaque(res)
	})
}

// exports asks MOUNT for the export list.
func (c *Conn) exports(ctx context.Context) ([]string, error) {
	return guard(ctx, c.Close, func() ([]string, error) {
		res, err := c.mnt.Call(&rpc.Header{Rpcvers: 2, Prog: nfs.MountProg, Vers: nfs.MountVers, Proc: nfs.MountProc3Export, Cred: rpc.AuthNull, Verf: rpc.AuthNull})
		if err != nil {
			return nil, err
		}
		var out []string
		for {
			more, err := xdr.ReadUint32(res)
			if err != nil || more == 0 {
				return out, err
			}
			dir, err := xdr.ReadOpaque(res)
			if err != nil {
				return out, err
			}
			out = append(out, string(dir))
			for { // groups
				g, err := xdr.ReadUint32(res)
				if err != nil || g == 0 {
					break
				}
				if _, err := xdr.ReadOpaque(res); err != nil {
					break
				}
			}
		}
	})
}

func (c *Conn) header(proc uint32) rpc.Header {
	return rpc.Header{Rpcvers: 2, Prog: nfs.Nfs3Prog, Vers: nfs.Nfs3Vers, Proc: proc, Cred: c.Auth, Verf: rpc.AuthNull}
}

// nfsConnections spreads requests over several TCP connections, so
// neither end serialises on one socket.
const nfsConnections = 4

// call sends an NFS request and checks its status.
func (c *Conn) call(ctx context.Context, req any) (io.ReadSeeker, error) {
	client := c.nfs
	if len(c.pool) > 0 {
		client = c.pool[c.next.Add(1)%uint64(len(c.pool))]
	}
	return guard(ctx, c.Close, func() (io.ReadSeeker, error) {
		res, err := client.Call(req)
		if err != nil {
			return nil, err
		}
		status, err := xdr.ReadUint32(res)
		if err != nil {
			return nil, err
		}
		if err := nfs.NFS3Error(status); err != nil {
			return res, err
		}
		return res, nil
	})
}

// Entry is one directory entry with its attributes and handle.
type Entry struct {
	Name string
	Attr nfs.Fattr
	FH   []byte
}

// ReadDirPlus lists a directory by handle, several entries per request.
func (c *Conn) ReadDirPlus(ctx context.Context, fh []byte) ([]Entry, error) {
	type args struct {
		rpc.Header
		FH         []byte
		Cookie     uint64
		CookieVerf uint64
		DirCount   uint32
		MaxCount   uint32
	}
	type dirListPlus3 struct {
		IsSet bool          `xdr:"union"`
		Entry nfs.EntryPlus `xdr:"unioncase=1"`
	}
	type dirListOK struct {
		DirAttrs   nfs.PostOpAttr
		CookieVerf uint64
	}
	var out []Entry
	cookie, verf := uint64(0), uint64(0)
	for {
		res, err := c.call(ctx, &args{c.header(nfs.NFSProc3ReadDirPlus), fh, cookie, verf, 32 << 10, 128 << 10})
		if err != nil {
			return out, err
		}
		var ok dirListOK
		if err := readXDR(res, &ok); err != nil {
			return out, err
		}
		for {
			var item dirListPlus3
			if err := readXDR(res, &item); err != nil {
				return out, err
			}
			if !item.IsSet {
				break
			}
			cookie = item.Entry.Cookie
			if item.Entry.FileName == "." || item.Entry.FileName == ".." {
				continue
			}
			e := Entry{Name: item.Entry.FileName, FH: item.Entry.Handle.FH}
			if item.Entry.Attr.IsSet {
				e.Attr = item.Entry.Attr.Attr
			}
			if !item.Entry.Handle.IsSet || !item.Entry.Attr.IsSet {
				a, h, err := c.Lookup(ctx, fh, e.Name)
				if err != nil {
					return out, err
				}
				e.Attr, e.FH = a, h
			}
			out = append(out, e)
		}
		var eof bool
		if err := readXDR(res, &eof); err != nil {
			return out, err
		}
		if eof {
			return out, nil
		}
		verf = ok.CookieVerf
	}
}

// readXDR decodes with the library's codec, which panics on short data.
func readXDR(r io.Reader, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed reply: %v", p)
		}
	}()
	return xdr.Read(r, v)
}

// Lookup finds a name in a directory.
func (c *Conn) Lookup(ctx context.Context, dir []byte, name string) (nfs.Fattr, []byte, error) {
	type args struct {
		rpc.Header
		What nfs.Diropargs3
	}
	res, err := c.call(ctx, &args{c.header(nfs.NFSProc3Lookup), nfs.Diropargs3{FH: dir, Filename: name}})
	if err != nil {
		return nfs.Fattr{}, nil, err
	}
	fh, err := xdr.ReadOpaque(res)
	if err != nil {
		return nfs.Fattr{}, nil, err
	}
	var attr nfs.PostOpAttr
	if err := readXDR(res, &attr); err != nil {
		return nfs.Fattr{}, nil, err
	}
	if !attr.IsSet {
		a, err := c.Getattr(ctx, fh)
		return a, fh, err
	}
	return attr.Attr, fh, nil
}

// Getattr reads a handle's attributes.
func (c *Conn) Getattr(ctx context.Context, fh []byte) (nfs.Fattr, error) {
	type args struct {
		rpc.Header
		FH []byte
	}
	res, err := c.call(ctx, &args{c.header(nfs.NFSProc3GetAttr), fh})
	if err != nil {
		return nfs.Fattr{}, err
	}
	var a nfs.Fattr
	err = readXDR(res, &a)
	return a, err
}

// Readlink reads a symlink's target.
func (c *Conn) Readlink(ctx context.Context, fh []byte) (string, error) {
	type args struct {
		rpc.Header
		FH []byte
	}
	res, err := c.call(ctx, &args{c.header(nfs.NFSProc3Readlink), fh})
	if err != nil {
		return "", err
	}
	var attr nfs.PostOpAttr
	if err := readXDR(res, &attr); err != nil {
		return "", err
	}
	b, err := xdr.ReadOpaque(res)
	return string(b), err
}

// Read reads up to count bytes at off; eof says the file ends there.
func (c *Conn) Read(ctx context.Context, fh []byte, off uint64, count uint32, p []byte) (int, bool, error) {
	type args struct {
		rpc.Header
		FH     []byte
		Offset uint64
		Count  uint32
	}
	type readRes struct {
		Attr   nfs.PostOpAttr
		Count  uint32
		EOF    uint32
		Length uint32
	}
	res, err := c.call(ctx, &args{c.header(nfs.NFSProc3Read), fh, off, count})
	if err != nil {
		return 0, false, err
	}
	var rr readRes
	if err := readXDR(res, &rr); err != nil {
		return 0, false, err
	}
	if int(rr.Length) > len(p) {
		return 0, false, errors.New("read reply longer than asked")
	}
	n, err := io.ReadFull(res, p[:rr.Length])
	return n, rr.EOF != 0, err
}

// Access asks which of the given ACCESS3 bits the server grants on fh.
func (c *Conn) Access(ctx context.Context, fh []byte, mask uint32) (uint32, error) {
	type args struct {
		rpc.Header
		FH     []byte
		Access uint32
	}
	res, err := c.call(ctx, &args{c.header(nfs.NFSProc3Access), fh, mask})
	if err != nil {
		return 0, err
	}
	var attr nfs.PostOpAttr
	if err := readXDR(res, &attr); err != nil {
		return 0, err
	}
	return xdr.ReadUint32(res)
}
