package nfsclient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"nroot/verify/nfs4"
	"sync"
)

// Open state over NFSv4.1, as a node's kernel makes it: OPEN with the
// session's client id and an open owner of this connection, READ with the
// open's stateid, CLOSE. A boot storm replays a node's opens with these.

// Stateid is an NFSv4 stateid4: a sequence number and 12 bytes the server
// chose.
type Stateid [16]byte

// Open is an open file: its handle, the open stateid, and a delegation's
// stateid when the server granted one (Close returns it).
type Open struct {
	FH         []byte
	State      Stateid
	Delegation *Stateid
}

// ownerMu guards the making of a session's open owner.
var ownerMu sync.Mutex

// errNotV4 is open state asked of an NFSv3 connection.
var errNotV4 = errors.New("open state is NFSv4.1")

// claimFH opens the current file handle itself (CLAIM_FH, RFC 8881
// 18.16.3), as a Linux client reopens a name it already knows.
const claimNull, claimFH = 0, 4

// Open opens name in the directory dir for reading (OPEN4_NOCREATE,
// CLAIM_NULL), or with name "" the file dir itself (CLAIM_FH), with the
// connection's open owner. ACCESS and GETATTR follow in the same
// COMPOUND, as a Linux client sends them.
func (c *Conn) Open(ctx context.Context, dir []byte, name string) (*Open, error) {
	if c.v4 == nil {
		return nil, errNotV4
	}
	s := c.v4
	ownerMu.Lock()
	if s.owner == nil {
		s.owner = make([]byte, 16)
		rand.Read(s.owner)
	}
	owner := append([]byte("nroot-storm-"), s.owner...)
	ownerMu.Unlock()
	d, _, err := s.call(ctx, func(cp *compound4) {
		cp.op(nfs4.OpPutfh, "PUTFH")
		cp.Opaque(dir)
		cp.op(nfs4.OpOpen, "OPEN")
		cp.U32(0) // seqid: unused in NFSv4.1
		cp.U32(1) // OPEN4_SHARE_ACCESS_READ
		cp.U32(0) // deny none
		cp.U64(s.clientID)
		cp.Opaque(owner)
		cp.U32(0) // OPEN4_NOCREATE
		if name == "" {
			cp.U32(claimFH)
		} else {
			cp.U32(claimNull)
			cp.Opaque([]byte(name))
		}
		cp.op(nfs4.OpGetfh, "GETFH")
		cp.op(nfs4.OpAccess, "ACCESS")
		cp.U32(0x1f)
		cp.op(nfs4.OpGetattr, "GETATTR")
		cp.Bitmap(nfs4.AttrType, nfs4.AttrSize)
	})
	if err != nil {
		return nil, err
	}
	return parseOpen4(d, name)
}

// parseOpen4 reads the results of PUTFH, OPEN and GETFH: the open's
// stateid, a delegation's, and the file's handle.
func parseOpen4(d *dec, name string) (*Open, error) {
	if err := d.result("PUTFH"); err != nil {
		return nil, err
	}
	if err := d.result("OPEN " + name); err != nil {
		return nil, err
	}
	o := &Open{}
	copy(o.State[:], d.Bytes(16))
	d.Bytes(20) // change_info4
	d.U32()     // rflags
	d.Bitmap()  // attrset
	o.Delegation = delegation4(d)
	if err := d.result("GETFH"); err != nil {
		return nil, err
	}
	o.FH = d.Opaque(nfs4.MaxFH)
	if d.Err() != nil {
		return nil, d.Err()
	}
	if len(o.FH) == 0 {
		return nil, fmt.Errorf("OPEN %s: the server gives an empty file handle", name)
	}
	// ACCESS and GETATTR are the client's asking, not the open: their
	// results do not change what was opened.
	return o, nil
}

// delegation4 reads an open_delegation4 and returns its stateid when it
// grants a delegation.
func delegation4(d *dec) *Stateid {
	switch typ := d.U32(); typ {
	case 0: // none
	case 1, 2: // read, write
		var sid Stateid
		copy(sid[:], d.Bytes(16))
		d.U32() // recall
		if typ == 2 {
			switch d.U32() { // space limit
			case 1:
				d.U64()
			case 2:
				d.Bytes(8)
			default:
				d.Fail("OPEN: a write delegation's space limit of no known kind")
			}
		}
		d.Bytes(12) // ACE type, flag, mask
		d.Opaque(1024)
		if d.Err() == nil {
			return &sid
		}
	case 3: // none, with a reason
		if why := d.U32(); why == 1 || why == 2 {
			d.U32()
		}
	default:
		d.Fail("OPEN: delegation of kind %d", typ)
	}
	return nil
}

// Close4 closes an open (CLOSE with its stateid), returning its
// delegation first if it had one.
func (c *Conn) Close4(ctx context.Context, o *Open) error {
	if c.v4 == nil {
		return errNotV4
	}
	if o.Delegation != nil {
		if _, err := c.v4.onFH(ctx, o.FH, "DELEGRETURN", nfs4.OpDelegreturn, func(cp *compound4) { cp.Fixed(o.Delegation[:]) }); err != nil {
			return err
		}
		o.Delegation = nil
	}
	d, err := c.v4.onFH(ctx, o.FH, "CLOSE", nfs4.OpClose, func(cp *compound4) {
		cp.U32(0) // seqid: unused in NFSv4.1
		cp.Fixed(o.State[:])
	})
	if err != nil {
		return err
	}
	d.Bytes(16) // the closed stateid
	return d.Err()
}

// ReadOpen reads with an open's stateid.
func (c *Conn) ReadOpen(ctx context.Context, o *Open, off uint64, count uint32, p []byte) (int, bool, error) {
	if c.v4 == nil {
		return 0, false, errNotV4
	}
	return c.v4.readState(ctx, o.FH, o.State, off, count, p)
}
