// Package nfsclient is an in-process NFS client, over NFSv3 (MOUNT and
// READDIRPLUS) or NFSv4.1 (one session, COMPOUNDs through verify/nfs4),
// that mounts an export from any machine without root or a kernel
// mount, walks it into a Tree within bounds (depth, entries, time), reads
// files, maps owners sent as names, and compares a Tree with a local
// one. The server is hostile: every length, loop and wait is bounded.
// The checks that decide whether a node can boot from the export are
// verify/nfscheck's.
package nfsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"nroot/verify/nfs4"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	xdr2 "github.com/rasky/go-xdr/xdr2"
	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// Target is an export to check: nfs://SERVER[:PORT]/PATH (NFSv3) or
// nfs4://SERVER[:PORT]/PATH (NFSv4.1).
type Target struct {
	Host      string
	NFSPort   int // 0: ask the portmapper (NFSv3), 2049 (NFSv4)
	MountPort int // 0: ask the portmapper; unused in NFSv4
	Path      string
	// Version is 3 (the default) or 4: NFSv4.1, PATH in the server's
	// pseudo file system, no portmapper or MOUNT.
	Version int
	// AnyPort connects from an unprivileged source port even as root
	// (a storm's hundreds of clients on one address would run out of
	// the 423 privileged ports).
	AnyPort bool
}

// ParseURL reads nfs://SERVER[:PORT]/PATH (NFSv3) or
// nfs4://SERVER[:PORT]/PATH (NFSv4.1). PORT is the NFS port.
func ParseURL(s string) (Target, error) {
	version := 3
	rest, ok := strings.CutPrefix(s, "nfs://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "nfs4://"); !ok {
			return Target{}, fmt.Errorf("%q: expected nfs://SERVER[:PORT]/PATH or nfs4://SERVER[:PORT]/PATH", s)
		}
		version = 4
	}
	hostport, p, _ := strings.Cut(rest, "/")
	t := Target{Path: "/" + p, Version: version}
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

// privileged reports whether this process can use a source port below
// 1024, which "secure" exports require.
func privileged() bool { return os.Geteuid() == 0 }

// Conn is a mounted export: the NFS connections and the root file handle.
type Conn struct {
	v4      *session4 // NFSv4.1: every call goes through the session
	rpcs    atomic.Int64
	mnt     *rpcConn
	pool    []*rpcConn // connections to the NFS port; requests are spread over them
	next    atomic.Uint64
	Root    []byte
	Auth    rpc.Auth
	Info    *nfs.FSInfo
	Ports   struct{ Mount, NFS int }
	Exports []string
}

// Close closes the connections.
func (c *Conn) Close() {
	if c.v4 != nil {
		c.v4.close()
	}
	if c.mnt != nil {
		c.mnt.Close()
	}
	for _, p := range c.pool {
		p.Close()
	}
}

// nfsConnections spreads requests over several TCP connections, so
// neither end serialises on one socket.
const nfsConnections = 4

// Mount reaches the server, lists its exports and mounts t.Path as
// root (uid 0, gid 0), as a node does.
func Mount(ctx context.Context, t Target) (*Conn, error) {
	if t.Version == 4 {
		return mount4(ctx, t)
	}
	c := &Conn{Auth: rpc.NewAuthUnix("nroot-check", 0, 0).Auth()}
	host := t.Host
	c.Ports.Mount, c.Ports.NFS = t.MountPort, t.NFSPort
	if c.Ports.Mount == 0 || c.Ports.NFS == 0 {
		pm, err := dialRPC(ctx, net.JoinHostPort(host, "111"))
		if err != nil {
			return nil, &StepError{"portmap", err, "is the server running rpcbind? or give --mount-port and --nfs-port"}
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
			res, err := pm.Call(ctx, rpc.PmapProg, rpc.PmapVers, rpc.PmapProcGetPort, rpc.AuthNull, rpc.Mapping{Prog: p.prog, Vers: p.vers, Prot: rpc.IPProtoTCP})
			if err != nil {
				return nil, &StepError{"portmap", err, ""}
			}
			port, err := xdr.ReadUint32(res)
			if err != nil {
				return nil, &StepError{"portmap", err, ""}
			}
			if port == 0 {
				return nil, &StepError{"portmap", fmt.Errorf("%s is not registered with the portmapper on %s", p.name, host), "is the NFS server running, with NFSv3 enabled?"}
			}
			*p.dst = int(port)
		}
	}
	var err error
	c.mnt, err = dialRPC(ctx, net.JoinHostPort(host, strconv.Itoa(c.Ports.Mount)))
	if err != nil {
		return nil, &StepError{"mount", err, "the MOUNT service does not answer"}
	}
	c.Exports, _ = c.exports(ctx)
	fh, err := c.mount(ctx, t.Path)
	if err != nil {
		c.Close()
		hint := ""
		var me *MountError
		if errors.As(err, &me) && (me.Status == mnt3ErrNoEnt || me.Status == mnt3ErrAcces) {
			hint = fmt.Sprintf("the server exports %s; check the path (ganesha mounts v3 by Path, not Pseudo)", orNone(c.Exports))
		}
		if errors.Is(err, errAuth) {
			hint = insecureHint
		}
		return nil, &StepError{"mount", err, hint}
	}
	c.Root = fh
	for i := 0; i < nfsConnections; i++ {
		nc, err := dialRPC(ctx, net.JoinHostPort(host, strconv.Itoa(c.Ports.NFS)))
		if err != nil {
			if i > 0 {
				break // one connection is enough to go on
			}
			c.Close()
			return nil, &StepError{"nfs", err, "the NFS service does not answer"}
		}
		c.pool = append(c.pool, nc)
	}
	c.Info, err = c.fsinfo(ctx)
	if err != nil {
		c.Close()
		hint := ""
		if errors.Is(err, errAuth) {
			hint = insecureHint
		}
		return nil, &StepError{"nfs", err, hint}
	}
	return c, nil
}

const insecureHint = "the server refused this client: exports that require a privileged source port reject non-root clients; add `insecure` to the export's options (or run nroot check as root)"

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing (or would not say)"
	}
	return strings.Join(s, ", ")
}

// MountError is the MOUNT service's refusal of a path.
type MountError struct {
	Path   string
	Status uint32 // mountstat3
}

const (
	mnt3ErrNoEnt = 2
	mnt3ErrAcces = 13
)

func (e *MountError) Error() string {
	names := map[uint32]string{1: "MNT3ERR_PERM", 2: "MNT3ERR_NOENT", 5: "MNT3ERR_IO", 13: "MNT3ERR_ACCES", 20: "MNT3ERR_NOTDIR", 63: "MNT3ERR_NAMETOOLONG"}
	n := names[e.Status]
	if n == "" {
		n = fmt.Sprintf("status %d", e.Status)
	}
	return e.Path + ": " + n
}

func (c *Conn) mount(ctx context.Context, path string) ([]byte, error) {
	res, err := c.mnt.Call(ctx, nfs.MountProg, nfs.MountVers, nfs.MountProc3MNT, c.Auth, struct{ Dirpath string }{path})
	if err != nil {
		return nil, err
	}
	stat, err := xdr.ReadUint32(res)
	if err != nil {
		return nil, err
	}
	if stat != 0 {
		return nil, &MountError{Path: path, Status: stat}
	}
	return readOpaque(res)
}

// exports asks MOUNT for the export list.
func (c *Conn) exports(ctx context.Context) ([]string, error) {
	res, err := c.mnt.Call(ctx, nfs.MountProg, nfs.MountVers, nfs.MountProc3Export, rpc.AuthNull, nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		more, err := xdr.ReadUint32(res)
		if err != nil || more == 0 {
			return out, err
		}
		dir, err := readOpaque(res)
		if err != nil {
			return out, err
		}
		out = append(out, string(dir))
		for { // groups
			g, err := xdr.ReadUint32(res)
			if err != nil || g == 0 {
				break
			}
			if _, err := readOpaque(res); err != nil {
				break
			}
		}
	}
}

// call sends an NFS request on one of the connections and checks its
// status.
func (c *Conn) call(ctx context.Context, proc uint32, args any) (io.ReadSeeker, error) {
	c.rpcs.Add(1)
	conn := c.pool[c.next.Add(1)%uint64(len(c.pool))]
	res, err := conn.Call(ctx, nfs.Nfs3Prog, nfs.Nfs3Vers, proc, c.Auth, args)
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
}

func (c *Conn) fsinfo(ctx context.Context) (*nfs.FSInfo, error) {
	res, err := c.call(ctx, nfs.NFSProc3FSInfo, struct{ FH []byte }{c.Root})
	if err != nil {
		return nil, err
	}
	var fi nfs.FSInfo
	if err := readXDR(res, &fi); err != nil {
		return nil, err
	}
	return &fi, nil
}

// Entry is one directory entry with its attributes and handle.
type Entry struct {
	Name string
	Attr nfs.Fattr
	FH   []byte
}

// ReadDirPlus lists a directory by handle, several entries per request,
// at most max entries (a server could otherwise page forever).
func (c *Conn) ReadDirPlus(ctx context.Context, fh []byte, max int) ([]Entry, error) {
	if c.v4 != nil {
		return c.v4.readdir(ctx, fh, max)
	}
	type args struct {
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
	seen := map[uint64]bool{}
	for {
		if seen[cookie] && cookie != 0 || len(out) > max {
			return out, fmt.Errorf("READDIRPLUS goes on without end (cookie %d again, %d entries): %w", cookie, len(out), ErrWalkLimit)
		}
		seen[cookie] = true
		res, err := c.call(ctx, nfs.NFSProc3ReadDirPlus, &args{fh, cookie, verf, 32 << 10, 128 << 10})
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

// readXDR decodes with the library's codec, which panics on short data,
// and which would allocate whatever length a reply declares: no length
// may be larger than what is left of the reply.
func readXDR(r io.Reader, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed reply: %v", p)
		}
	}()
	_, err = xdr2.UnmarshalLimited(r, v, uint(left(r)))
	return err
}

// left is how much of a reply is still to be read.
func left(r io.Reader) int {
	if l, ok := r.(interface{ Len() int }); ok {
		return l.Len()
	}
	return maxRecord
}

// readOpaque reads variable-length opaque data, refusing a length larger
// than what is left of the reply before allocating it.
func readOpaque(r io.Reader) ([]byte, error) {
	n, err := xdr.ReadUint32(r)
	if err != nil {
		return nil, err
	}
	if int64(n) > int64(left(r)) {
		return nil, fmt.Errorf("malformed reply: %d bytes declared, %d left", n, left(r))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if pad := (4 - n%4) % 4; pad > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(pad)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Lookup finds a name in a directory.
func (c *Conn) Lookup(ctx context.Context, dir []byte, name string) (nfs.Fattr, []byte, error) {
	if c.v4 != nil {
		return c.v4.lookup(ctx, dir, name)
	}
	res, err := c.call(ctx, nfs.NFSProc3Lookup, &nfs.Diropargs3{FH: dir, Filename: name})
	if err != nil {
		return nfs.Fattr{}, nil, err
	}
	fh, err := readOpaque(res)
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
	if c.v4 != nil {
		return c.v4.getattr(ctx, fh)
	}
	res, err := c.call(ctx, nfs.NFSProc3GetAttr, struct{ FH []byte }{fh})
	if err != nil {
		return nfs.Fattr{}, err
	}
	var a nfs.Fattr
	err = readXDR(res, &a)
	return a, err
}

// Readlink reads a symlink's target.
func (c *Conn) Readlink(ctx context.Context, fh []byte) (string, error) {
	if c.v4 != nil {
		return c.v4.readlink(ctx, fh)
	}
	res, err := c.call(ctx, nfs.NFSProc3Readlink, struct{ FH []byte }{fh})
	if err != nil {
		return "", err
	}
	var attr nfs.PostOpAttr
	if err := readXDR(res, &attr); err != nil {
		return "", err
	}
	b, err := readOpaque(res)
	return string(b), err
}

// Read reads up to count bytes at off; eof says the file ends there.
func (c *Conn) Read(ctx context.Context, fh []byte, off uint64, count uint32, p []byte) (int, bool, error) {
	if c.v4 != nil {
		return c.v4.read(ctx, fh, off, count, p)
	}
	type args struct {
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
	res, err := c.call(ctx, nfs.NFSProc3Read, &args{fh, off, count})
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
	if c.v4 != nil {
		return c.v4.access(ctx, fh, mask)
	}
	res, err := c.call(ctx, nfs.NFSProc3Access, &struct {
		FH     []byte
		Access uint32
	}{fh, mask})
	if err != nil {
		return 0, err
	}
	var attr nfs.PostOpAttr
	if err := readXDR(res, &attr); err != nil {
		return 0, err
	}
	return xdr.ReadUint32(res)
}

// mount4 opens an NFSv4.1 session and looks the path up from the
// server's pseudo root, as a node's mount does.
func mount4(ctx context.Context, t Target) (*Conn, error) {
	c := &Conn{}
	c.Ports.NFS = t.NFSPort
	if c.Ports.NFS == 0 {
		c.Ports.NFS = 2049
	}
	s, err := dial4(ctx, net.JoinHostPort(t.Host, strconv.Itoa(c.Ports.NFS)), !t.AnyPort && privileged())
	if err != nil {
		hint := "is the server running, with NFSv4.1 enabled?"
		if errors.Is(err, errAuth) {
			hint = insecureHint
		}
		return nil, &StepError{"nfs", err, hint}
	}
	c.v4 = s
	a, fh, err := s.lookupPath(ctx, t.Path, append([]int{nfs4.AttrMaxread}, attrBits...))
	if err != nil {
		c.Close()
		return nil, &StepError{"mount", fmt.Errorf("%s: %w", t.Path, err), "NFSv4 looks the path up in the server's pseudo file system (ganesha's Pseudo, knfsd's fsid=0 export)"}
	}
	if a.Type != nfs.NF3Dir {
		c.Close()
		return nil, &StepError{"mount", fmt.Errorf("%s is not a directory", t.Path), ""}
	}
	c.Root = fh
	rt := s.maxRead
	if a.maxRead > 0 && a.maxRead < uint64(rt) {
		rt = uint32(a.maxRead)
	}
	c.Info = &nfs.FSInfo{RTMax: rt, RTPref: rt}
	return c, nil
}

// RPCs is how many NFS calls (NFSv4: COMPOUNDs) the connection sent.
func (c *Conn) RPCs() int64 {
	if c.v4 != nil {
		return c.v4.rpcs.Load()
	}
	return c.rpcs.Load()
}

// Sequence sends a COMPOUND of SEQUENCE alone, as a client renewing its
// lease does (NFSv4.1 only).
func (c *Conn) Sequence(ctx context.Context) error {
	if c.v4 == nil {
		return errors.New("SEQUENCE is NFSv4.1")
	}
	_, _, err := c.v4.call(ctx, func(*compound4) {})
	return err
}

// ReadFile reads a file of the export up to the size the server declared
// for it, which must be at most max: a server that keeps answering READs
// cannot make nroot read forever.
func (c *Conn) ReadFile(ctx context.Context, n *Node, max int64) ([]byte, error) {
	if n.Size > max {
		return nil, fmt.Errorf("the file is %d bytes, over the %d this check reads", n.Size, max)
	}
	const chunk = 64 << 10
	out := make([]byte, 0, n.Size)
	buf := make([]byte, chunk)
	for int64(len(out)) < n.Size {
		want := min(int64(chunk), n.Size-int64(len(out)))
		k, eof, err := c.Read(ctx, n.fh, uint64(len(out)), uint32(want), buf[:want])
		if err != nil {
			return nil, err
		}
		out = append(out, buf[:k]...)
		if eof || k == 0 {
			break
		}
	}
	return out, nil
}

// Version is the NFS version the connection speaks: "4.1" or "3".
func (c *Conn) Version() string {
	if c.v4 != nil {
		return "4.1"
	}
	return "3"
}
