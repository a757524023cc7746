// Package nfs4 is NFSv4.1's wire format (RFC 8881) as nroot reads and
// writes it: the program numbers, the operation codes, the attribute
// bits and statuses, and XDR encoding and decoding in which every length
// and count is checked against what is left. The check's client
// (verify/nfscheck) builds COMPOUNDs with it; the storm's recorder
// (verify/storm) decodes the COMPOUNDs booting nodes send. It has no
// transport: the caller frames records and talks to the server.
package nfs4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The ONC RPC program that is NFS, and its COMPOUND procedure.
const (
	Program      = 100003
	Version      = 4
	ProcNull     = 0
	ProcCompound = 1
)

// Operation codes (RFC 8881, section 18).
const (
	OpAccess            = 3
	OpClose             = 4
	OpCommit            = 5
	OpCreate            = 6
	OpDelegpurge        = 7
	OpDelegreturn       = 8
	OpGetattr           = 9
	OpGetfh             = 10
	OpLink              = 11
	OpLock              = 12
	OpLockt             = 13
	OpLocku             = 14
	OpLookup            = 15
	OpLookupp           = 16
	OpNverify           = 17
	OpOpen              = 18
	OpOpenattr          = 19
	OpOpenDowngrade     = 21
	OpPutfh             = 22
	OpPutpubfh          = 23
	OpPutrootfh         = 24
	OpRead              = 25
	OpReaddir           = 26
	OpReadlink          = 27
	OpRemove            = 28
	OpRename            = 29
	OpRestorefh         = 31
	OpSavefh            = 32
	OpSecinfo           = 33
	OpSetattr           = 34
	OpVerify            = 37
	OpWrite             = 38
	OpBindConnToSession = 41
	OpExchangeID        = 42
	OpCreateSession     = 43
	OpDestroySession    = 44
	OpFreeStateid       = 45
	OpGetDirDelegation  = 46
	OpGetdeviceinfo     = 47
	OpLayoutget         = 50
	OpSecinfoNoName     = 52
	OpSequence          = 53
	OpTestStateid       = 55
	OpDestroyClientID   = 57
	OpReclaimComplete   = 58
	OpReadPlus          = 65
)

var opNames = map[uint32]string{
	OpAccess: "ACCESS", OpClose: "CLOSE", OpCommit: "COMMIT", OpCreate: "CREATE", OpDelegpurge: "DELEGPURGE",
	OpDelegreturn: "DELEGRETURN", OpGetattr: "GETATTR", OpGetfh: "GETFH", OpLink: "LINK", OpLock: "LOCK",
	OpLockt: "LOCKT", OpLocku: "LOCKU", OpLookup: "LOOKUP", OpLookupp: "LOOKUPP", OpNverify: "NVERIFY",
	OpOpen: "OPEN", OpOpenattr: "OPENATTR", OpOpenDowngrade: "OPEN_DOWNGRADE", OpPutfh: "PUTFH",
	OpPutpubfh: "PUTPUBFH", OpPutrootfh: "PUTROOTFH", OpRead: "READ", OpReaddir: "READDIR",
	OpReadlink: "READLINK", OpRemove: "REMOVE", OpRename: "RENAME", OpRestorefh: "RESTOREFH",
	OpSavefh: "SAVEFH", OpSecinfo: "SECINFO", OpSetattr: "SETATTR", OpVerify: "VERIFY", OpWrite: "WRITE",
	OpBindConnToSession: "BIND_CONN_TO_SESSION", OpExchangeID: "EXCHANGE_ID", OpCreateSession: "CREATE_SESSION",
	OpDestroySession: "DESTROY_SESSION", OpFreeStateid: "FREE_STATEID", OpGetDirDelegation: "GET_DIR_DELEGATION",
	OpGetdeviceinfo: "GETDEVICEINFO", OpLayoutget: "LAYOUTGET", OpSecinfoNoName: "SECINFO_NO_NAME",
	OpSequence: "SEQUENCE", OpTestStateid: "TEST_STATEID", OpDestroyClientID: "DESTROY_CLIENTID",
	OpReclaimComplete: "RECLAIM_COMPLETE", OpReadPlus: "READ_PLUS",
}

// OpName is an operation's name as the RFC spells it, OPn for a code
// it does not name here.
func OpName(code uint32) string {
	if n, ok := opNames[code]; ok {
		return n
	}
	return "OP" + strconv.FormatUint(uint64(code), 10)
}

// fattr4 attribute bits (RFC 8881, section 5), in the order a fattr4
// encodes their values.
const (
	AttrType         = 1
	AttrSize         = 4
	AttrFSID         = 8
	AttrFilehandle   = 19
	AttrFileid       = 20
	AttrMaxread      = 30
	AttrMode         = 33
	AttrNumlinks     = 35
	AttrOwner        = 36
	AttrOwnerGroup   = 37
	AttrRawdev       = 41
	AttrSpaceUsed    = 45
	AttrTimeAccess   = 47
	AttrTimeMetadata = 52
	AttrTimeModify   = 53
)

// Statuses that have no NFSv3 equivalent (those below 10000 share
// NFSv3's numbers).
const (
	ErrBadhandle      = 10001
	ErrNotsupp        = 10004
	ErrDelay          = 10008
	ErrGrace          = 10013
	ErrNofilehandle   = 10020
	ErrStaleClientid  = 10022
	ErrResource       = 10023
	ErrBadStateid     = 10025
	ErrWrongsec       = 10041
	ErrOpIllegal      = 10044
	ErrBadsession     = 10052
	ErrBadslot        = 10053
	ErrSeqMisordered  = 10063
	ErrOpNotInSession = 10071
)

var statusNames = map[uint32]string{
	ErrBadhandle: "NFS4ERR_BADHANDLE", ErrNotsupp: "NFS4ERR_NOTSUPP", ErrDelay: "NFS4ERR_DELAY", ErrGrace: "NFS4ERR_GRACE",
	ErrNofilehandle: "NFS4ERR_NOFILEHANDLE", ErrStaleClientid: "NFS4ERR_STALE_CLIENTID", ErrResource: "NFS4ERR_RESOURCE",
	ErrBadStateid: "NFS4ERR_BAD_STATEID", ErrWrongsec: "NFS4ERR_WRONGSEC", ErrOpIllegal: "NFS4ERR_OP_ILLEGAL",
	ErrBadsession: "NFS4ERR_BADSESSION", ErrBadslot: "NFS4ERR_BADSLOT", ErrSeqMisordered: "NFS4ERR_SEQ_MISORDERED",
	ErrOpNotInSession: "NFS4ERR_OP_NOT_IN_SESSION",
}

// StatusName is a status's name, "status N" for one it does not name.
func StatusName(st uint32) string {
	if n, ok := statusNames[st]; ok {
		return n
	}
	return "status " + strconv.FormatUint(uint64(st), 10)
}

// Limits of what is decoded.
const (
	MaxFH         = 128 // NFS4_FHSIZE
	MaxBitmap     = 8   // words in a bitmap
	MaxCompoundOp = 128 // operations decoded of one COMPOUND
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed XDR")

// Encoder builds XDR.
type Encoder struct{ bytes.Buffer }

func (e *Encoder) U32(v uint32) { e.Write(binary.BigEndian.AppendUint32(nil, v)) }
func (e *Encoder) U64(v uint64) { e.Write(binary.BigEndian.AppendUint64(nil, v)) }

// Opaque writes variable-length opaque data: its length, the bytes and
// the padding to four.
func (e *Encoder) Opaque(b []byte) {
	e.U32(uint32(len(b)))
	e.Write(b)
	e.Write(make([]byte, (4-len(b)%4)%4))
}

// Fixed writes fixed-length opaque data, a multiple of four bytes.
func (e *Encoder) Fixed(b []byte) { e.Write(b) }

// Bitmap writes a two-word bitmap4 with bits set.
func (e *Encoder) Bitmap(bits ...int) {
	var w [2]uint32
	for _, b := range bits {
		w[b/32] |= 1 << (b % 32)
	}
	e.U32(2)
	e.U32(w[0])
	e.U32(w[1])
}

// Decoder reads XDR from b. The first error sticks: every read after
// it returns zero values, and Err says what went wrong. No length is
// trusted beyond what is left of b.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder reads b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err is the first error, wrapping ErrMalformed.
func (d *Decoder) Err() error { return d.err }

// Len is what is left.
func (d *Decoder) Len() int { return len(d.b) }

// Fail records an error said as fmt.Errorf says it, %w too, wrapping
// ErrMalformed (the first one sticks), and stops decoding.
func (d *Decoder) Fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
	}
	d.b = nil
}

func (d *Decoder) U32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.Fail("4 bytes wanted, %d left", len(d.b))
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *Decoder) U64() uint64 { return uint64(d.U32())<<32 | uint64(d.U32()) }

// Skip passes over n bytes.
func (d *Decoder) Skip(n int) {
	if d.err != nil {
		return
	}
	if n < 0 || n > len(d.b) {
		d.Fail("%d bytes to skip, %d left", n, len(d.b))
		return
	}
	d.b = d.b[n:]
}

// Bytes reads n bytes and their padding to four, as a copy.
func (d *Decoder) Bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.Fail("%d bytes declared, %d left", n, len(d.b))
		return nil
	}
	out := bytes.Clone(d.b[:n])
	if out == nil {
		out = []byte{}
	}
	d.Skip(min(len(d.b), n+(4-n%4)%4))
	return out
}

// Opaque reads variable-length opaque data of at most max bytes.
func (d *Decoder) Opaque(max int) []byte {
	n := d.U32()
	if d.err == nil && int64(n) > int64(max) {
		d.Fail("%d bytes where at most %d belong", n, max)
	}
	return d.Bytes(int(n))
}

// SkipOpaque passes over variable-length opaque data of at most max
// bytes without copying it, and says how long it was.
func (d *Decoder) SkipOpaque(max int) int {
	n := d.U32()
	if d.err == nil && int64(n) > int64(max) {
		d.Fail("%d bytes where at most %d belong", n, max)
	}
	if d.err != nil {
		return 0
	}
	if int64(n) > int64(len(d.b)) {
		d.Fail("%d bytes declared, %d left", n, len(d.b))
		return 0
	}
	d.Skip(min(len(d.b), int(n)+(4-int(n)%4)%4))
	return int(n)
}

// Bitmap reads a bitmap4 of at most MaxBitmap words.
func (d *Decoder) Bitmap() []uint32 {
	n := d.U32()
	if d.err == nil && n > MaxBitmap {
		d.Fail("a bitmap of %d words", n)
	}
	if d.err != nil {
		return nil
	}
	w := make([]uint32, n)
	for i := range w {
		w[i] = d.U32()
	}
	return w
}
