package nfsclient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"nroot/verify/nfs4"
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

// Error4 is an NFSv4 status that has no NFSv3 equivalent.
type Error4 struct {
	Op     string
	Status uint32
}

func (e *Error4) Error() string { return e.Op + ": " + nfs4.StatusName(e.Status) }

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

// enc builds XDR; dec reads a reply, with what a walk keeps beside.
type enc = nfs4.Encoder

type dec struct {
	*nfs4.Decoder
	verf  [8]byte     // READDIR's cookie verifier
	names *ownerNames // where owner names sent as strings are kept
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
	owner    []byte // the open owner, made at the first OPEN
}

// compound4 is one COMPOUND being built; ops counts its operations.
type compound4 struct {
	enc
	ops   uint32
	names []string
}

func (c *compound4) op(code uint32, name string) {
	c.U32(code)
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
		if errors.As(err, &e4) && (e4.Status == nfs4.ErrDelay || e4.Status == nfs4.ErrGrace) && attempt < 20 {
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
	body.Opaque(nil) // tag
	body.U32(1)      // minor version
	var ops compound4
	if slot >= 0 {
		s.seq[slot]++
		ops.op(nfs4.OpSequence, "SEQUENCE")
		ops.Fixed(s.id[:])
		ops.U32(s.seq[slot])
		ops.U32(uint32(slot))
		ops.U32(uint32(len(s.seq) - 1))
		ops.U32(0) // cachethis
	}
	build(&ops)
	s.rpcs.Add(1)
	body.U32(ops.ops)
	body.Write(ops.Bytes())
	b, err := s.conn.CallRaw(ctx, nfs4.Program, nfs4.Version, nfs4.ProcCompound, authSys, rawArgs(body.Bytes()))
	if err != nil {
		return nil, nil, err
	}
	d := &dec{Decoder: nfs4.NewDecoder(b), names: &s.names}
	status := d.U32()
	d.Opaque(1024) // tag
	n := d.U32()
	if d.Err() != nil {
		return nil, nil, d.Err()
	}
	if n > ops.ops {
		return nil, nil, fmt.Errorf("%w: %d results to %d operations", nfs4.ErrMalformed, n, ops.ops)
	}
	names := ops.names
	if slot >= 0 {
		if n == 0 {
			s.seq[slot]-- // the server did not take the slot's sequence
			return nil, nil, status4("SEQUENCE", status)
		}
		d.U32() // resop
		if st := d.U32(); st != 0 {
			s.seq[slot]--
			if d.Err() != nil {
				return nil, nil, d.Err()
			}
			return nil, nil, status4("SEQUENCE", st)
		}
		d.Bytes(16 + 5*4) // sessionid, sequenceid, slotid, highest, target highest, flags
		names = names[1:]
	}
	if d.Err() != nil {
		return nil, nil, d.Err()
	}
	return d, names, nil
}

// result reads one operation's header: its code and status.
func (d *dec) result(name string) error {
	d.U32()
	st := d.U32()
	if d.Err() != nil {
		return d.Err()
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
		c.op(nfs4.OpExchangeID, "EXCHANGE_ID")
		c.Fixed(verifier[:])
		c.Opaque(append([]byte("nroot-check-"), owner...))
		c.U32(0x00010000) // EXCHGID4_FLAG_USE_NON_PNFS
		c.U32(0)          // SP4_NONE
		c.U32(0)          // no implementation id
	})
	if err == nil {
		err = d.result("EXCHANGE_ID")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	s.clientID = d.U64()
	seq := d.U32()
	const slots, maxResp = 16, 1<<20 + 4096
	d, _, err = s.call(ctx, func(c *compound4) {
		c.op(nfs4.OpCreateSession, "CREATE_SESSION")
		c.U64(s.clientID)
		c.U32(seq)
		c.U32(0) // flags: no persistence, no back channel
		for _, fore := range []bool{true, false} {
			c.U32(0)       // header pad
			c.U32(1 << 20) // max request
			c.U32(maxResp) // max response
			c.U32(4096)    // max response cached
			c.U32(8)       // max operations
			if fore {
				c.U32(slots)
			} else {
				c.U32(1)
			}
			c.U32(0) // no RDMA
		}
		c.U32(0x40000000) // callback program
		c.U32(1)          // one security parameter: AUTH_NONE
		c.U32(0)
	})
	if err == nil {
		err = d.result("CREATE_SESSION")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	copy(s.id[:], d.Bytes(16))
	d.U32() // sequence
	d.U32() // flags
	d.U32() // header pad
	d.U32() // max request
	resp := d.U32()
	d.U32() // cached
	d.U32() // max operations
	n := d.U32()
	if d.Err() != nil {
		conn.Close()
		return nil, d.Err()
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
		c.op(nfs4.OpReclaimComplete, "RECLAIM_COMPLETE")
		c.U32(0)
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
		c.op(nfs4.OpDestroySession, "DESTROY_SESSION")
		c.Fixed(s.id[:])
	})
	s.slots = nil
	s.callOnce(ctx, func(c *compound4) {
		c.op(nfs4.OpDestroyClientID, "DESTROY_CLIENTID")
		c.U64(s.clientID)
	})
	s.conn.Close()
}

// attrBits are what a walk needs of each entry.
var attrBits = []int{nfs4.AttrType, nfs4.AttrSize, nfs4.AttrFSID, nfs4.AttrFileid, nfs4.AttrMode, nfs4.AttrNumlinks, nfs4.AttrOwner, nfs4.AttrOwnerGroup, nfs4.AttrRawdev, nfs4.AttrSpaceUsed, nfs4.AttrTimeAccess, nfs4.AttrTimeMetadata, nfs4.AttrTimeModify}

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
	words := d.Bitmap()
	list := d.Opaque(64 << 10)
	if d.Err() != nil {
		return a
	}
	v := &dec{Decoder: nfs4.NewDecoder(list)}
	owner := func(group bool) uint32 {
		s := string(v.Opaque(1024))
		if d.names == nil {
			d.names = &ownerNames{}
		}
		return d.names.id(s, group)
	}
	time4 := func() nfs.NFS3Time {
		sec := v.U64()
		ns := v.U32()
		return nfs.NFS3Time{Seconds: uint32(sec), Nseconds: ns}
	}
	for w, word := range words {
		for b := 0; b < 32; b++ {
			if word&(1<<b) == 0 {
				continue
			}
			switch bit := w*32 + b; bit {
			case nfs4.AttrType:
				a.Type = v.U32()
			case nfs4.AttrSize:
				a.Filesize = v.U64()
			case nfs4.AttrFSID:
				a.FSID = v.U64() ^ v.U64()<<1
			case nfs4.AttrFilehandle:
				a.fh = v.Opaque(nfs4.MaxFH)
			case nfs4.AttrFileid:
				a.Fileid = v.U64()
			case nfs4.AttrMaxread:
				a.maxRead = v.U64()
			case nfs4.AttrMode:
				a.FileMode = v.U32() & 0o7777
			case nfs4.AttrNumlinks:
				a.Nlink = v.U32()
			case nfs4.AttrOwner:
				a.UID = owner(false)
			case nfs4.AttrOwnerGroup:
				a.GID = owner(true)
			case nfs4.AttrRawdev:
				a.SpecData = [2]uint32{v.U32(), v.U32()}
			case nfs4.AttrSpaceUsed:
				a.Used = v.U64()
			case nfs4.AttrTimeAccess:
				a.Atime = time4()
			case nfs4.AttrTimeMetadata:
				a.Ctime = time4()
			case nfs4.AttrTimeModify:
				a.Mtime = time4()
			default:
				d.Fail("attribute %d was not asked for", bit)
				return a
			}
		}
	}
	if v.Err() != nil {
		d.Fail("attributes: %w", v.Err())
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
		c.op(nfs4.OpPutrootfh, "PUTROOTFH")
		for _, x := range parts {
			c.op(nfs4.OpLookup, "LOOKUP "+x)
			c.Opaque([]byte(x))
		}
		c.op(nfs4.OpGetfh, "GETFH")
		c.op(nfs4.OpGetattr, "GETATTR")
		c.Bitmap(bits...)
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
	fh := d.Opaque(nfs4.MaxFH)
	if err := d.result("GETATTR"); err != nil {
		return attrs4{}, nil, err
	}
	a := d.fattr()
	return a, fh, d.Err()
}

func (s *session4) lookup(ctx context.Context, dir []byte, name string) (nfs.Fattr, []byte, error) {
	d, _, err := s.call(ctx, func(c *compound4) {
		c.op(nfs4.OpPutfh, "PUTFH")
		c.Opaque(dir)
		c.op(nfs4.OpLookup, "LOOKUP")
		c.Opaque([]byte(name))
		c.op(nfs4.OpGetfh, "GETFH")
		c.op(nfs4.OpGetattr, "GETATTR")
		c.Bitmap(attrBits...)
	})
	if err != nil {
		return nfs.Fattr{}, nil, err
	}
	for _, n := range []string{"PUTFH", "LOOKUP " + name, "GETFH"} {
		if err := d.result(n); err != nil {
			return nfs.Fattr{}, nil, err
		}
	}
	fh := d.Opaque(nfs4.MaxFH)
	if err := d.result("GETATTR"); err != nil {
		return nfs.Fattr{}, nil, err
	}
	a := d.fattr()
	return a.Fattr, fh, d.Err()
}

// onFH runs one operation on a file handle and returns its decoder.
func (s *session4) onFH(ctx context.Context, fh []byte, name string, code uint32, args func(*compound4)) (*dec, error) {
	d, _, err := s.call(ctx, func(c *compound4) {
		c.op(nfs4.OpPutfh, "PUTFH")
		c.Opaque(fh)
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
	d, err := s.onFH(ctx, fh, "GETATTR", nfs4.OpGetattr, func(c *compound4) { c.Bitmap(attrBits...) })
	if err != nil {
		return nfs.Fattr{}, err
	}
	a := d.fattr()
	return a.Fattr, d.Err()
}

func (s *session4) readlink(ctx context.Context, fh []byte) (string, error) {
	d, err := s.onFH(ctx, fh, "READLINK", nfs4.OpReadlink, nil)
	if err != nil {
		return "", err
	}
	b := d.Opaque(4096)
	return string(b), d.Err()
}

// read reads with the anonymous stateid (seqid 0, other all zeros): no
// open state, as a checker that only looks needs none.
func (s *session4) read(ctx context.Context, fh []byte, off uint64, count uint32, p []byte) (int, bool, error) {
	return s.readState(ctx, fh, Stateid{}, off, count, p)
}

// readState is READ with the stateid given: the anonymous one, or an
// open's.
func (s *session4) readState(ctx context.Context, fh []byte, state Stateid, off uint64, count uint32, p []byte) (int, bool, error) {
	if count > s.maxRead {
		count = s.maxRead
	}
	d, err := s.onFH(ctx, fh, "READ", nfs4.OpRead, func(c *compound4) {
		c.Fixed(state[:])
		c.U64(off)
		c.U32(count)
	})
	if err != nil {
		return 0, false, err
	}
	eof := d.U32() != 0
	data := d.Opaque(int(count))
	if d.Err() != nil {
		return 0, false, d.Err()
	}
	if len(data) > len(p) {
		return 0, false, fmt.Errorf("READ: a reply of %d bytes to %d asked", len(data), len(p))
	}
	return copy(p, data), eof, nil
}

func (s *session4) access(ctx context.Context, fh []byte, mask uint32) (uint32, error) {
	d, err := s.onFH(ctx, fh, "ACCESS", nfs4.OpAccess, func(c *compound4) { c.U32(mask) })
	if err != nil {
		return 0, err
	}
	d.U32() // supported
	granted := d.U32()
	return granted, d.Err()
}

// readdir lists a directory with each entry's attributes and handle.
func (s *session4) readdir(ctx context.Context, fh []byte, max int) ([]Entry, error) {
	var out []Entry
	cookie := uint64(0)
	var verf [8]byte
	seen := map[uint64]bool{}
	bits := append([]int{nfs4.AttrFilehandle}, attrBits...)
	for rounds := 0; ; rounds++ {
		if (seen[cookie] && cookie != 0) || len(out) > max || rounds > max+1 {
			return out, fmt.Errorf("READDIR goes on without end (cookie %d again, %d entries): %w", cookie, len(out), ErrWalkLimit)
		}
		seen[cookie] = true
		d, err := s.onFH(ctx, fh, "READDIR", nfs4.OpReaddir, func(c *compound4) {
			c.U64(cookie)
			c.Fixed(verf[:])
			c.U32(32 << 10)
			c.U32(s.maxRead)
			c.Bitmap(bits...)
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
	copy(d.verf[:], d.Bytes(8))
	for d.U32() != 0 && d.Err() == nil {
		if len(entries) >= max {
			return entries, cookie, false, fmt.Errorf("READDIR: more than %d entries: %w", max, ErrWalkLimit)
		}
		cookie = d.U64()
		name := string(d.Opaque(255))
		a := d.fattr()
		if d.Err() != nil {
			return entries, cookie, false, d.Err()
		}
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") || strings.ContainsRune(name, 0) {
			return entries, cookie, false, fmt.Errorf("READDIR: the server names an entry %q", name)
		}
		entries = append(entries, Entry{Name: name, Attr: a.Fattr, FH: a.fh})
	}
	eof = d.U32() != 0
	return entries, cookie, eof, d.Err()
}
