package nfscheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// NFSv4.1 (RFC 8881) as nroot check needs it: a session over one TCP
// connection, COMPOUNDs that start with SEQUENCE, and the operations a
// read-only walk sends (PUTROOTFH, PUTFH, LOOKUP, GETFH, GETATTR,
// READDIR, READLINK, READ with the anonymous stateid, ACCESS). go-nfs-
// client has NFSv3 only; the encoding here is XDR by hand, and every
// length and count in a reply is checked against what is left of it.

const (
	nfs4Prog     = 100003
	nfs4Vers     = 4
	nfs4Compound = 1

	op4Access          = 3
	op4Getattr         = 9
	op4Getfh           = 10
	op4Lookup          = 15
	op4Putfh           = 22
	op4Putrootfh       = 24
	op4Read            = 25
	op4Readdir         = 26
	op4Readlink        = 27
	op4ExchangeID      = 42
	op4CreateSession   = 43
	op4DestroySession  = 44
	op4Sequence        = 53
	op4DestroyClientID = 57
	op4ReclaimComplete = 58

	nfs4ErrDelay = 10008
	nfs4ErrGrace = 10013

	// maxFH is NFS4_FHSIZE.
	maxFH = 128
)

// fattr4 bits nroot asks for, in the order their values are encoded.
const (
	fa4Type         = 1
	fa4Size         = 4
	fa4FSID         = 8
	fa4Filehandle   = 19
	fa4Fileid       = 20
	fa4Maxread      = 30
	fa4Mode         = 33
	fa4Numlinks     = 35
	fa4Owner        = 36
	fa4OwnerGroup   = 37
	fa4Rawdev       = 41
	fa4SpaceUsed    = 45
	fa4TimeAccess   = 47
	fa4TimeMetadata = 52
	fa4TimeModify   = 53
)

// Error4 is an NFSv4 status that has no NFSv3 equivalent.
type Error4 struct {
	Op     string
	Status uint32
}

func (e *Error4) Error() string {
	names := map[uint32]string{10001: "NFS4ERR_BADHANDLE", 10008: "NFS4ERR_DELAY", 10013: "NFS4ERR_GRACE", 10020: "NFS4ERR_NOFILEHANDLE",
		10022: "NFS4ERR_STALE_CLIENTID", 10025: "NFS4ERR_BAD_STATEID", 10041: "NFS4ERR_WRONGSEC", 10052: "NFS4ERR_BADSESSION",
		10053: "NFS4ERR_BADSLOT", 10063: "NFS4ERR_SEQ_MISORDERED", 10071: "NFS4ERR_OP_NOT_IN_SESSION", 10044: "NFS4ERR_OP_ILLEGAL", 10004: "NFS4ERR_NOTSUPP", 10023: "NFS4ERR_RESOURCE"}
	n := names[e.Status]
	if n == "" {
		n = "status " + strconv.Itoa(int(e.Status))
	}
	return e.Op + ": " + n
}

// status4 turns an NFSv4 status into an error: the statuses NFSv3 shares
// (same numbers) as go-nfs-client's NFSv3 errors, so callers classify
// both versions alike; the others as *Error4.
func status4(op string, st uint32) error {
	if st == 0 {
		return nil
	}
	if st < 10000 {
		return fmt.Errorf("%s: %w", op, nfs.NFS3Error(st))
	}
	return &Error4{Op: op, Status: st}
}

// enc builds XDR.
type enc struct{ bytes.Buffer }

func (e *enc) u32(v uint32) { binary.Write(&e.Buffer, binary.BigEndian, v) }
func (e *enc) u64(v uint64) { binary.Write(&e.Buffer, binary.BigEndian, v) }
func (e *enc) opaque(b []byte) {
	e.u32(uint32(len(b)))
	e.Write(b)
	e.Write(make([]byte, (4-len(b)%4)%4))
}
func (e *enc) fixed(b []byte) { e.Write(b) } // fixed-length opaque, a multiple of 4
func (e *enc) bitmap(bits ...int) {
	var w [2]uint32
	for _, b := range bits {
		w[b/32] |= 1 << (b % 32)
	}
	e.u32(2)
	e.u32(w[0])
	e.u32(w[1])
}

// dec reads XDR from a reply, refusing lengths beyond it.
type dec struct {
	r     *bytes.Reader
	err   error
	verf  [8]byte     // READDIR's cookie verifier
	names *ownerNames // where owner names sent as strings are kept
}

func (d *dec) u32() uint32 {
	var b [4]byte
	if d.err == nil {
		_, d.err = io.ReadFull(d.r, b[:])
	}
	return binary.BigEndian.Uint32(b[:])
}

func (d *dec) u64() uint64 { return uint64(d.u32())<<32 | uint64(d.u32()) }

func (d *dec) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.r.Len() {
		d.err = fmt.Errorf("malformed reply: %d bytes declared, %d left", n, d.r.Len())
		return nil
	}
	b := make([]byte, n)
	io.ReadFull(d.r, b)
	if pad := (4 - n%4) % 4; pad > 0 {
		d.r.Seek(int64(pad), io.SeekCurrent)
	}
	return b
}

func (d *dec) opaque(max int) []byte {
	n := d.u32()
	if d.err == nil && int64(n) > int64(max) {
		d.err = fmt.Errorf("malformed reply: %d bytes where at most %d belong", n, max)
	}
	return d.bytes(int(n))
}

// bitmap4 reads a bitmap of at most 8 words.
func (d *dec) bitmap() []uint32 {
	n := d.u32()
	if d.err == nil && n > 8 {
		d.err = fmt.Errorf("malformed reply: a bitmap of %d words", n)
	}
	if d.err != nil {
		return nil
	}
	w := make([]uint32, n)
	for i := range w {
		w[i] = d.u32()
	}
	return w
}

// session4 is an NFSv4.1 session and its slots.
type session4 struct {
	conn     *rpcConn
	clientID uint64
	id       [16]byte
	slots    chan int // free slot ids
	seq      []uint32 // each slot's last sequence id
	maxRead  uint32   // the fore channel's response limit, less headers
	rpcs     atomic.Int64
	names    ownerNames
}

// compound4 is one COMPOUND being built; ops counts its operations.
type compound4 struct {
	enc
	ops   uint32
	names []string
}

func (c *compound4) op(code uint32, name string) {
	c.u32(code)
	c.ops++
	c.names = append(c.names, name)
}

// call sends a COMPOUND (with SEQUENCE first when in a session) and
// returns a decoder positioned at the first result after SEQUENCE's.
// NFS4ERR_DELAY is retried, a bounded number of times.
func (s *session4) call(ctx context.Context, build func(*compound4)) (*dec, []string, error) {
	for attempt := 0; ; attempt++ {
		d, names, err := s.callOnce(ctx, build)
		var e4 *Error4
		if errors.As(err, &e4) && (e4.Status == nfs4ErrDelay || e4.Status == nfs4ErrGrace) && attempt < 20 {
			select {
			case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
			}
		}
		return d, names, err
	}
}

func (s *session4) callOnce(ctx context.Context, build func(*compound4)) (*dec, []string, error) {
	slot := -1
	if s.slots != nil {
		select {
		case slot = <-s.slots:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
		}
		defer func() { s.slots <- slot }()
	}
	var body compound4
	body.opaque(nil) // tag
	body.u32(1)      // minor version
	var ops compound4
	if slot >= 0 {
		s.seq[slot]++
		ops.op(op4Sequence, "SEQUENCE")
		ops.fixed(s.id[:])
		ops.u32(s.seq[slot])
		ops.u32(uint32(slot))
		ops.u32(uint32(len(s.seq) - 1))
		ops.u32(0) // cachethis
	}
	build(&ops)
	s.rpcs.Add(1)
	body.u32(ops.ops)
	body.Write(ops.Bytes())
	res, err := s.conn.Call(ctx, nfs4Prog, nfs4Vers, nfs4Compound, authSys, rawArgs(body.Bytes()))
	if err != nil {
		return nil, nil, err
	}
	r, ok := res.(*bytes.Reader)
	if !ok {
		b, _ := io.ReadAll(res)
		r = bytes.NewReader(b)
	}
	d := &dec{r: r, names: &s.names}
	status := d.u32()
	d.opaque(1024) // tag
	n := d.u32()
	if d.err != nil {
		return nil, nil, d.err
	}
	if n > ops.ops {
		return nil, nil, fmt.Errorf("malformed reply: %d results to %d operations", n, ops.ops)
	}
	names := ops.names
	if slot >= 0 {
		if n == 0 {
			s.seq[slot]-- // the server did not take the slot's sequence
			return nil, nil, status4("SEQUENCE", status)
		}
		d.u32() // resop
		if st := d.u32(); st != 0 {
			s.seq[slot]--
			if d.err != nil {
				return nil, nil, d.err
			}
			return nil, nil, status4("SEQUENCE", st)
		}
		d.bytes(16 + 5*4) // sessionid, sequenceid, slotid, highest, target highest, flags
		names = names[1:]
	}
	if d.err != nil {
		return nil, nil, d.err
	}
	return d, names, nil
}

// result reads one operation's header: its code and status.
func (d *dec) result(name string) error {
	d.u32()
	st := d.u32()
	if d.err != nil {
		return d.err
	}
	return status4(name, st)
}

// authSys is AUTH_UNIX as root, as a node mounts.
var authSys = rpc.NewAuthUnix("nroot-check", 0, 0).Auth()

// dial4 opens a session with the server at addr.
func dial4(ctx context.Context, addr string, lowPort bool) (*session4, error) {
	conn, err := dialRPCFrom(ctx, addr, lowPort)
	if err != nil {
		return nil, err
	}
	s := &session4{conn: conn}
	var verifier [8]byte
	rand.Read(verifier[:])
	owner := make([]byte, 16)
	rand.Read(owner)
	d, _, err := s.call(ctx, func(c *compound4) {
		c.op(op4ExchangeID, "EXCHANGE_ID")
		c.fixed(verifier[:])
		c.opaque(append([]byte("nroot-check-"), owner...))
		c.u32(0x00010000) // EXCHGID4_FLAG_USE_NON_PNFS
		c.u32(0)          // SP4_NONE
		c.u32(0)          // no implementation id
	})
	if err == nil {
		err = d.result("EXCHANGE_ID")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.clientID = d.u64()
	seq := d.u32()
	const slots, maxResp = 16, 1<<20 + 4096
	d, _, err = s.call(ctx, func(c *compound4) {
		c.op(op4CreateSession, "CREATE_SESSION")
		c.u64(s.clientID)
		c.u32(seq)
		c.u32(0) // flags: no persistence, no back channel
		for _, fore := range []bool{true, false} {
			c.u32(0)       // header pad
			c.u32(1 << 20) // max request
			c.u32(maxResp) // max response
			c.u32(4096)    // max response cached
			c.u32(8)       // max operations
			if fore {
				c.u32(slots)
			} else {
				c.u32(1)
			}
			c.u32(0) // no RDMA
		}
		c.u32(0x40000000) // callback program
		c.u32(1)          // one security parameter: AUTH_NONE
		c.u32(0)
	})
	if err == nil {
		err = d.result("CREATE_SESSION")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	copy(s.id[:], d.bytes(16))
	d.u32() // sequence
	d.u32() // flags
	d.u32() // header pad
	d.u32() // max request
	resp := d.u32()
	d.u32() // cached
	d.u32() // max operations
	n := d.u32()
	if d.err != nil {
		conn.Close()
		return nil, d.err
	}
	if n == 0 || n > 1024 {
		conn.Close()
		return nil, fmt.Errorf("CREATE_SESSION: the server grants %d slots", n)
	}
	s.seq = make([]uint32, n)
	s.slots = make(chan int, n)
	for i := 0; i < int(n); i++ {
		s.slots <- i
	}
	s.maxRead = 1 << 20
	if resp > 0 && resp < s.maxRead+1024 {
		if resp <= 1024+4096 {
			conn.Close()
			return nil, fmt.Errorf("CREATE_SESSION: the server's replies are at most %d bytes", resp)
		}
		s.maxRead = (resp - 1024) &^ 4095
	}
	// A client with no state to reclaim says so once, before its first
	// use of the file system.
	d, names, err := s.call(ctx, func(c *compound4) {
		c.op(op4ReclaimComplete, "RECLAIM_COMPLETE")
		c.u32(0)
	})
	if err == nil {
		err = d.result(names[0])
	}
	var e4 *Error4
	if err != nil && !(errors.As(err, &e4) && e4.Status == 10075) { // NFS4ERR_COMPLETE_ALREADY
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *session4) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.callOnce(ctx, func(c *compound4) {
		c.op(op4DestroySession, "DESTROY_SESSION")
		c.fixed(s.id[:])
	})
	s.slots = nil
	s.callOnce(ctx, func(c *compound4) {
		c.op(op4DestroyClientID, "DESTROY_CLIENTID")
		c.u64(s.clientID)
	})
	s.conn.Close()
}

// attrBits are what a walk needs of each entry.
var attrBits = []int{fa4Type, fa4Size, fa4FSID, fa4Fileid, fa4Mode, fa4Numlinks, fa4Owner, fa4OwnerGroup, fa4Rawdev, fa4SpaceUsed, fa4TimeAccess, fa4TimeMetadata, fa4TimeModify}

// attrs4 is a decoded fattr4.
type attrs4 struct {
	nfs.Fattr
	fh      []byte
	maxRead uint64
}

// fattr reads a fattr4: the bitmap, then each value in bit order. A bit
// nroot did not ask for, or cannot decode, is an error: the values that
// follow could not be found.
func (d *dec) fattr() attrs4 {
	var a attrs4
	words := d.bitmap()
	list := d.opaque(64 << 10)
	if d.err != nil {
		return a
	}
	v := &dec{r: bytes.NewReader(list)}
	owner := func(group bool) uint32 {
		s := string(v.opaque(1024))
		if d.names == nil {
			d.names = &ownerNames{}
		}
		return d.names.id(s, group)
	}
	time4 := func() nfs.NFS3Time {
		sec := v.u64()
		ns := v.u32()
		return nfs.NFS3Time{Seconds: uint32(sec), Nseconds: ns}
	}
	for w, word := range words {
		for b := 0; b < 32; b++ {
			if word&(1<<b) == 0 {
				continue
			}
			switch bit := w*32 + b; bit {
			case fa4Type:
				a.Type = v.u32()
			case fa4Size:
				a.Filesize = v.u64()
			case fa4FSID:
				a.FSID = v.u64() ^ v.u64()<<1
			case fa4Filehandle:
				a.fh = v.opaque(maxFH)
			case fa4Fileid:
				a.Fileid = v.u64()
			case fa4Maxread:
				a.maxRead = v.u64()
			case fa4Mode:
				a.FileMode = v.u32() & 0o7777
			case fa4Numlinks:
				a.Nlink = v.u32()
			case fa4Owner:
				a.UID = owner(false)
			case fa4OwnerGroup:
				a.GID = owner(true)
			case fa4Rawdev:
				a.SpecData = [2]uint32{v.u32(), v.u32()}
			case fa4SpaceUsed:
				a.Used = v.u64()
			case fa4TimeAccess:
				a.Atime = time4()
			case fa4TimeMetadata:
				a.Ctime = time4()
			case fa4TimeModify:
				a.Mtime = time4()
			default:
				d.err = fmt.Errorf("malformed reply: attribute %d was not asked for", bit)
				return a
			}
		}
	}
	if v.err != nil {
		d.err = fmt.Errorf("malformed attributes: %w", v.err)
	}
	return a
}

// The Conn methods in NFSv4.1.

func (s *session4) lookupPath(ctx context.Context, p string, bits []int) (attrs4, []byte, error) {
	var parts []string
	for _, x := range strings.Split(p, "/") {
		if x != "" {
			parts = append(parts, x)
		}
	}
	if len(parts) > 6 {
		return attrs4{}, nil, fmt.Errorf("%s: nroot looks up at most 6 components of an NFSv4 path", p)
	}
	d, names, err := s.call(ctx, func(c *compound4) {
		c.op(op4Putrootfh, "PUTROOTFH")
		for _, x := range parts {
			c.op(op4Lookup, "LOOKUP "+x)
			c.opaque([]byte(x))
		}
		c.op(op4Getfh, "GETFH")
		c.op(op4Getattr, "GETATTR")
		c.bitmap(bits...)
	})
	if err != nil {
		return attrs4{}, nil, err
	}
	for _, n := range names[:len(names)-2] {
		if err := d.result(n); err != nil {
			return attrs4{}, nil, err
		}
	}
	if err := d.result("GETFH"); err != nil {
		return attrs4{}, nil, err
	}
	fh := d.opaque(maxFH)
	if err := d.result("GETATTR"); err != nil {
		return attrs4{}, nil, err
	}
	a := d.fattr()
	return a, fh, d.err
}

func (s *session4) lookup(ctx context.Context, dir []byte, name string) (nfs.Fattr, []byte, error) {
	d, _, err := s.call(ctx, func(c *compound4) {
		c.op(op4Putfh, "PUTFH")
		c.opaque(dir)
		c.op(op4Lookup, "LOOKUP")
		c.opaque([]byte(name))
		c.op(op4Getfh, "GETFH")
		c.op(op4Getattr, "GETATTR")
		c.bitmap(attrBits...)
	})
	if err != nil {
		return nfs.Fattr{}, nil, err
	}
	for _, n := range []string{"PUTFH", "LOOKUP " + name, "GETFH"} {
		if err := d.result(n); err != nil {
			return nfs.Fattr{}, nil, err
		}
	}
	fh := d.opaque(maxFH)
	if err := d.result("GETATTR"); err != nil {
		return nfs.Fattr{}, nil, err
	}
	a := d.fattr()
	return a.Fattr, fh, d.err
}

// onFH runs one operation on a file handle and returns its decoder.
func (s *session4) onFH(ctx context.Context, fh []byte, name string, code uint32, args func(*compound4)) (*dec, error) {
	d, _, err := s.call(ctx, func(c *compound4) {
		c.op(op4Putfh, "PUTFH")
		c.opaque(fh)
		c.op(code, name)
		if args != nil {
			args(c)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := d.result("PUTFH"); err != nil {
		return nil, err
	}
	if err := d.result(name); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *session4) getattr(ctx context.Context, fh []byte) (nfs.Fattr, error) {
	d, err := s.onFH(ctx, fh, "GETATTR", op4Getattr, func(c *compound4) { c.bitmap(attrBits...) })
	if err != nil {
		return nfs.Fattr{}, err
	}
	a := d.fattr()
	return a.Fattr, d.err
}

func (s *session4) readlink(ctx context.Context, fh []byte) (string, error) {
	d, err := s.onFH(ctx, fh, "READLINK", op4Readlink, nil)
	if err != nil {
		return "", err
	}
	b := d.opaque(4096)
	return string(b), d.err
}

func (s *session4) read(ctx context.Context, fh []byte, off uint64, count uint32, p []byte) (int, bool, error) {
	if count > s.maxRead {
		count = s.maxRead
	}
	d, err := s.onFH(ctx, fh, "READ", op4Read, func(c *compound4) {
		c.u32(0)                  // the anonymous stateid: seqid 0,
		c.fixed(make([]byte, 12)) // other all zeros
		c.u64(off)
		c.u32(count)
	})
	if err != nil {
		return 0, false, err
	}
	eof := d.u32() != 0
	data := d.opaque(int(count))
	if d.err != nil {
		return 0, false, d.err
	}
	if len(data) > len(p) {
		return 0, false, errors.New("read reply longer than asked")
	}
	return copy(p, data), eof, nil
}

func (s *session4) access(ctx context.Context, fh []byte, mask uint32) (uint32, error) {
	d, err := s.onFH(ctx, fh, "ACCESS", op4Access, func(c *compound4) { c.u32(mask) })
	if err != nil {
		return 0, err
	}
	d.u32() // supported
	granted := d.u32()
	return granted, d.err
}

// readdir lists a directory with each entry's attributes and handle.
func (s *session4) readdir(ctx context.Context, fh []byte, max int) ([]Entry, error) {
	var out []Entry
	cookie := uint64(0)
	var verf [8]byte
	seen := map[uint64]bool{}
	bits := append([]int{fa4Filehandle}, attrBits...)
	for rounds := 0; ; rounds++ {
		if (seen[cookie] && cookie != 0) || len(out) > max || rounds > max+1 {
			return out, fmt.Errorf("READDIR goes on without end (cookie %d again, %d entries): %w", cookie, len(out), ErrWalkLimit)
		}
		seen[cookie] = true
		d, err := s.onFH(ctx, fh, "READDIR", op4Readdir, func(c *compound4) {
			c.u64(cookie)
			c.fixed(verf[:])
			c.u32(32 << 10)
			c.u32(s.maxRead)
			c.bitmap(bits...)
		})
		if err != nil {
			return out, err
		}
		page, next, eof, err := parseReaddir4(d, max-len(out)+1)
		if err != nil {
			return out, err
		}
		for _, e := range page {
			if e.FH == nil {
				if e.Attr, e.FH, err = s.lookup(ctx, fh, e.Name); err != nil {
					return out, err
				}
			}
			out = append(out, e)
		}
		if eof {
			return out, nil
		}
		if len(page) == 0 {
			return out, fmt.Errorf("READDIR: the server sends an empty page that is not the end: %w", ErrWalkLimit)
		}
		cookie, verf = next, d.verf
	}
}

// parseReaddir4 reads READDIR4resok: the verifier, at most max entries,
// eof. It returns the last entry's cookie.
func parseReaddir4(d *dec, max int) (entries []Entry, cookie uint64, eof bool, err error) {
	copy(d.verf[:], d.bytes(8))
	for d.u32() != 0 && d.err == nil {
		if len(entries) >= max {
			return entries, cookie, false, fmt.Errorf("READDIR: more than %d entries: %w", max, ErrWalkLimit)
		}
		cookie = d.u64()
		name := string(d.opaque(255))
		a := d.fattr()
		if d.err != nil {
			return entries, cookie, false, d.err
		}
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") || strings.ContainsRune(name, 0) {
			return entries, cookie, false, fmt.Errorf("READDIR: the server names an entry %q", name)
		}
		entries = append(entries, Entry{Name: name, Attr: a.Fattr, FH: a.fh})
	}
	eof = d.u32() != 0
	return entries, cookie, eof, d.err
}
