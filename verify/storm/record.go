package storm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"nroot/verify/nfs4"
	"path"
	"strconv"
	"sync"
	"time"
)

// Recorder is a TCP proxy between NFS clients and a server that records
// the NFSv4 COMPOUNDs passing through it. It forwards every byte as it
// is; what it cannot decode it counts and forwards all the same.
type Recorder struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	ws       WorkingSet
	names    map[string]string // file handle -> path from the pseudo root
	wg       sync.WaitGroup
	conns    map[net.Conn]bool
	accepted int       // client connections
	dialErr  error     // the last failure to reach upstream
	lat      Hist      // each COMPOUND's time from its call passing to its reply
	first    time.Time // the first COMPOUND's sending, for Op.At
}

// maxRecord bounds one RPC record either way.
const maxRecord = 16 << 20

// NewRecorder starts recording on ln, forwarding to upstream.
func NewRecorder(ln net.Listener, upstream, mode string) *Recorder {
	r := &Recorder{ln: ln, upstream: upstream, names: map[string]string{}, conns: map[net.Conn]bool{},
		ws: WorkingSet{Mode: mode, Ops: map[string]int{}, Files: map[string]int64{}}}
	r.wg.Add(1)
	go r.accept()
	return r
}

func (r *Recorder) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.accepted++
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.proxy(c)
		}()
	}
}

// Close stops listening, ends every connection and returns what was
// recorded.
func (r *Recorder) Close() *WorkingSet {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return r.WorkingSet()
}

// ErrNothingRecorded is a recording in which no NFSv4 COMPOUND passed:
// its working set would replay nothing.
var ErrNothingRecorded = errors.New("nothing was recorded")

// Finish is Close for a recording that must hold a boot: one that
// recorded no COMPOUND is ErrNothingRecorded, saying why it may be so.
func (r *Recorder) Finish() (*WorkingSet, error) {
	ws := r.Close()
	if len(ws.Calls) > 0 {
		return ws, nil
	}
	r.mu.Lock()
	accepted, dialErr := r.accepted, r.dialErr
	r.mu.Unlock()
	switch {
	case accepted == 0:
		return nil, fmt.Errorf("storm record: %w: no client connected to %s; boot the node against it (QEMU user networking reaches it as 10.0.2.2)", ErrNothingRecorded, r.ln.Addr())
	case dialErr != nil:
		return nil, fmt.Errorf("storm record: %w: %d connections, but the upstream %s could not be reached (%v); give the NFS server's address to --upstream", ErrNothingRecorded, accepted, r.upstream, dialErr)
	}
	return nil, fmt.Errorf("storm record: %w: %d connections to %s, but no NFSv4.1 COMPOUND in them; the node must mount over NFSv4.1 (vers=4.1)", ErrNothingRecorded, accepted, r.upstream)
}

// CheckUpstream checks the address a recorder forwards to: HOST:PORT.
func CheckUpstream(address string) error {
	host, port, err := net.SplitHostPort(address)
	if n, perr := strconv.Atoi(port); err == nil && (host == "" || perr != nil || n < 1 || n > 65535) {
		err = errors.New("a host and a port from 1 to 65535")
	}
	if err != nil {
		return fmt.Errorf("storm: upstream %q: %v; give the NFS server as HOST:PORT (e.g. 127.0.0.1:20490)", address, err)
	}
	return nil
}

// WorkingSet is a copy of what is recorded so far.
func (r *Recorder) WorkingSet() *WorkingSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.ws
	ws.Ops, ws.Files = map[string]int{}, map[string]int64{}
	for k, v := range r.ws.Ops {
		ws.Ops[k] = v
	}
	for k, v := range r.ws.Files {
		ws.Files[k] = v
	}
	ws.Calls = append([]Op(nil), r.ws.Calls...)
	ws.CallsTimed, ws.CallP50, ws.CallP99 = r.lat.Count(), r.lat.Quantile(0.50), r.lat.Quantile(0.99)
	return &ws
}

func (r *Recorder) track(c net.Conn, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.conns[c] = true
	} else {
		delete(r.conns, c)
	}
}

// proxy joins one client connection to the server and reads both ways.
func (r *Recorder) proxy(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", r.upstream, 10*time.Second)
	if err != nil {
		r.mu.Lock()
		r.dialErr = err
		r.mu.Unlock()
		return
	}
	defer server.Close()
	r.track(client, true)
	r.track(server, true)
	defer r.track(client, false)
	defer r.track(server, false)
	calls := &pendingCalls{m: map[uint32]*call{}}
	done := make(chan struct{}, 2)
	go func() {
		// A call is registered before the server sees it, so its
		// reply always finds it; it goes on as one fragment.
		records(client, func(rec []byte) {
			r.onCall(calls, rec)
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 0x80000000|uint32(len(rec)))
			if _, err := server.Write(append(hdr[:], rec...)); err != nil {
				client.Close()
			}
		})
		server.Close()
		done <- struct{}{}
	}()
	go func() {
		records(io.TeeReader(server, client), func(rec []byte) { r.onReply(calls, rec) })
		client.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// records reads RPC record marking and hands each whole record on.
func records(rd io.Reader, fn func([]byte)) {
	var hdr [4]byte
	var rec []byte
	for {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			return
		}
		v := binary.BigEndian.Uint32(hdr[:])
		n := int(v & 0x7fffffff)
		if len(rec)+n > maxRecord {
			return // larger than any NFS record: the connection ends
		}
		start := len(rec)
		rec = append(rec, make([]byte, n)...)
		if _, err := io.ReadFull(rd, rec[start:]); err != nil {
			return
		}
		if v&0x80000000 != 0 {
			fn(rec)
			rec = nil
		}
	}
}

// call is a decoded COMPOUND call waiting for its reply.
type call struct {
	ops  []callOp
	sent time.Time // when the call passed on to the server
}

type callOp struct {
	code  uint32
	name  string // LOOKUP, OPEN with CLAIM_NULL: the component
	fh    string // PUTFH
	off   uint64
	count uint32
	byFH  bool // OPEN with CLAIM_FH: the current handle is the file
}

type pendingCalls struct {
	mu sync.Mutex
	m  map[uint32]*call
}

// fattrSkip passes over a fattr4.
func fattrSkip(x *nfs4.Decoder) { x.Bitmap(); x.SkipOpaque(x.Len()) }

// parseCall decodes an RPC call; it returns the xid and, for an NFSv4
// COMPOUND, its operations (as many as could be decoded).
func parseCall(rec []byte) (uint32, *call, bool) {
	x := nfs4.NewDecoder(rec)
	xid := x.U32()
	if x.U32() != 0 || x.U32() != 2 { // CALL, RPC version 2
		return 0, nil, false
	}
	prog, vers, proc := x.U32(), x.U32(), x.U32()
	x.U32()
	x.Opaque(x.Len()) // credentials
	x.U32()
	x.Opaque(x.Len()) // verifier
	if x.Err() != nil || prog != nfs4.Program || vers != nfs4.Version || proc != nfs4.ProcCompound {
		return xid, nil, x.Err() == nil
	}
	x.Opaque(x.Len()) // tag
	x.U32()           // minor version
	n := x.U32()
	if n > 128 {
		n = 128
	}
	c := &call{}
	for i := uint32(0); i < n && x.Err() == nil; i++ {
		op := callOp{code: x.U32()}
		if !op.parseArgs(x) {
			c.ops = append(c.ops, op)
			break // arguments nroot does not decode: the rest cannot be found
		}
		if x.Err() != nil {
			break
		}
		c.ops = append(c.ops, op)
	}
	return xid, c, true
}

// parseArgs skips (and keeps what matters of) an operation's arguments;
// false for an operation it cannot decode.
func (op *callOp) parseArgs(x *nfs4.Decoder) bool {
	switch op.code {
	case nfs4.OpGetfh, nfs4.OpLookupp, nfs4.OpPutpubfh, nfs4.OpPutrootfh, nfs4.OpReadlink, nfs4.OpRestorefh, nfs4.OpSavefh: // no arguments
	case nfs4.OpAccess, nfs4.OpSecinfoNoName:
		x.U32()
	case nfs4.OpClose:
		x.Skip(20)
	case nfs4.OpDelegpurge, nfs4.OpDestroyClientID:
		x.U64()
	case nfs4.OpDelegreturn, nfs4.OpFreeStateid:
		x.Skip(16)
	case nfs4.OpGetattr:
		x.Bitmap()
	case nfs4.OpLookup, nfs4.OpSecinfo:
		op.name = string(x.Opaque(x.Len()))
	case nfs4.OpNverify, nfs4.OpVerify:
		fattrSkip(x)
	case nfs4.OpOpen:
		x.Skip(12)
		x.U64()
		x.Opaque(x.Len())
		if x.U32() == 1 { // OPEN4_CREATE
			switch x.U32() {
			case 0, 1:
				fattrSkip(x)
			case 2:
				x.Skip(8)
			case 3:
				x.Skip(8)
				fattrSkip(x)
			default:
				return false
			}
		}
		switch x.U32() {
		case 0, 3: // CLAIM_NULL, CLAIM_DELEGATE_PREV
			op.name = string(x.Opaque(x.Len()))
		case 1:
			x.U32()
		case 2:
			x.Skip(16)
			op.name = string(x.Opaque(x.Len()))
		case 4: // CLAIM_FH
			op.byFH = true
		case 6:
		case 5:
			x.Skip(16)
		default:
			return false
		}
	case nfs4.OpOpenattr:
		x.U32()
	case nfs4.OpOpenDowngrade:
		x.Skip(28)
	case nfs4.OpPutfh:
		op.fh = string(x.Opaque(x.Len()))
	case nfs4.OpRead, nfs4.OpReadPlus:
		x.Skip(16)
		op.off = x.U64()
		op.count = x.U32()
	case nfs4.OpReaddir:
		x.Skip(24)
		x.Bitmap()
	case nfs4.OpWrite:
		x.Skip(28)
		x.Opaque(x.Len())
	case nfs4.OpBindConnToSession:
		x.Skip(24)
	case nfs4.OpDestroySession:
		x.Skip(16)
	case nfs4.OpGetdeviceinfo:
		x.Skip(24)
		x.Bitmap()
	case nfs4.OpSequence:
		x.Skip(32)
	case nfs4.OpTestStateid:
		n := int(x.U32())
		x.Skip(16 * n)
	case nfs4.OpReclaimComplete:
		x.U32()
	default:
		return false
	}
	return true
}

func (r *Recorder) onCall(p *pendingCalls, rec []byte) {
	xid, c, ok := parseCall(rec)
	if !ok || c == nil {
		return
	}
	c.sent = time.Now()
	p.mu.Lock()
	if len(p.m) < 65536 {
		p.m[xid] = c
	}
	p.mu.Unlock()
}

// onReply pairs a reply with its call, learns file handles' names from
// GETFH and READDIR, and records the COMPOUND.
func (r *Recorder) onReply(p *pendingCalls, rec []byte) {
	x := nfs4.NewDecoder(rec)
	xid := x.U32()
	p.mu.Lock()
	c := p.m[xid]
	delete(p.m, xid)
	p.mu.Unlock()
	if c != nil {
		r.mu.Lock()
		r.lat.Add(time.Since(c.sent))
		r.mu.Unlock()
	}
	if c == nil || x.U32() != 1 || x.U32() != 0 { // REPLY, MSG_ACCEPTED
		return
	}
	x.U32()
	x.Opaque(x.Len()) // verifier
	if x.U32() != 0 || x.Err() != nil {
		return // not SUCCESS
	}
	x.U32()           // COMPOUND status
	x.Opaque(x.Len()) // tag
	nres := int(x.U32())
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ws.RPCs++
	var cur, saved string
	var main Op
	known := true // every handle so far had a name
	setMain := func(o Op) {
		if main.Op == "" || rank[o.Op] > rank[main.Op] {
			main = o
		}
	}
	for i, op := range c.ops {
		r.ws.Ops[nfs4.OpName(op.code)]++
		// Follow the current file handle's path through the call.
		switch op.code {
		case nfs4.OpPutrootfh:
			cur = "/"
		case nfs4.OpPutfh:
			cur = r.names[op.fh]
			known = known && cur != ""
		case nfs4.OpLookup:
			if cur != "" {
				cur = path.Join(cur, op.name)
			}
			setMain(Op{Op: "LOOKUP", Path: cur})
		case nfs4.OpLookupp:
			if cur != "" {
				cur = path.Dir(cur)
			}
		case nfs4.OpOpen:
			if op.name != "" && cur != "" {
				cur = path.Join(cur, op.name)
			}
			o := Op{Op: "OPEN", Path: cur}
			if op.byFH {
				o.Claim = "fh"
			}
			setMain(o)
		case nfs4.OpClose:
			setMain(Op{Op: "CLOSE", Path: cur})
		case nfs4.OpSavefh:
			saved = cur
		case nfs4.OpRestorefh:
			cur = saved
		case nfs4.OpGetattr:
			setMain(Op{Op: "GETATTR", Path: cur})
		case nfs4.OpAccess:
			setMain(Op{Op: "ACCESS", Path: cur})
		case nfs4.OpReaddir:
			setMain(Op{Op: "READDIR", Path: cur})
		case nfs4.OpReadlink:
			setMain(Op{Op: "READLINK", Path: cur})
		case nfs4.OpRead, nfs4.OpReadPlus:
			setMain(Op{Op: "READ", Path: cur, Off: op.off, Count: op.count})
		}
		// Its result, while the reply can be followed.
		if i >= nres || x.Err() != nil {
			continue
		}
		if x.U32() != op.code {
			x.Fail("the reply does not follow its call")
			continue
		}
		if x.U32() != 0 {
			x.Fail("the reply does not follow its call") // an error ends the COMPOUND
			continue
		}
		switch op.code {
		case nfs4.OpSequence:
			x.Skip(36)
		case nfs4.OpGetfh:
			if fh := string(x.Opaque(x.Len())); x.Err() == nil && cur != "" && len(r.names) < 1<<20 {
				r.names[fh] = cur
			}
		case nfs4.OpGetattr:
			fattrSkip(x)
		case nfs4.OpAccess:
			x.Skip(8)
		case nfs4.OpRead:
			x.U32()
			n := x.SkipOpaque(x.Len())
			r.ws.Bytes += int64(n)
			if cur != "" {
				r.ws.Files[cur] += int64(n)
			}
		case nfs4.OpReadlink:
			x.SkipOpaque(x.Len())
		case nfs4.OpReaddir:
			r.readdirNames(x, cur)
		case nfs4.OpOpen:
			x.Skip(40)
			x.Bitmap()
			skipDelegation(x)
		case nfs4.OpClose:
			x.Skip(16)
		case nfs4.OpPutfh, nfs4.OpPutrootfh, nfs4.OpLookup, nfs4.OpLookupp, nfs4.OpRestorefh, nfs4.OpSavefh:
		default:
			x.Fail("the reply does not follow its call") // results nroot does not decode: stop here
		}
	}
	if main.Op == "" {
		main.Op = "SEQUENCE"
	}
	if len(c.ops) > 0 && setup[c.ops[len(c.ops)-1].code] {
		return // session set-up and tear-down: a replay makes its own
	}
	if (!known || main.Path == "") && main.Op != "SEQUENCE" {
		r.ws.Unnamed++
		main.Path = ""
	}
	if r.first.IsZero() {
		r.first = c.sent
	}
	// Microseconds are enough and keep the file short.
	main.At = max(math.Round(c.sent.Sub(r.first).Seconds()*1e6)/1e6, 0)
	if len(r.ws.Calls) < maxCalls {
		r.ws.Calls = append(r.ws.Calls, main)
	}
}

// setup are the operations that make or end a session.
var setup = map[uint32]bool{41: true, 42: true, 43: true, 44: true, 57: true, 58: true}

// rank orders the operations a COMPOUND is named after.
// ACCESS is above GETATTR, which a Linux client sends beside it, and
// CLOSE above all, so each is replayed as recorded.
var rank = map[string]int{"GETATTR": 1, "ACCESS": 2, "LOOKUP": 3, "OPEN": 4, "READLINK": 5, "READDIR": 6, "READ": 7, "CLOSE": 8}

// skipDelegation skips an open_delegation4.
func skipDelegation(x *nfs4.Decoder) {
	typ := x.U32()
	switch typ {
	case 0: // none
	case 1, 2: // read, write: stateid, recall, (write: space limit), ACE
		x.Skip(20)
		if typ == 2 {
			switch x.U32() {
			case 1:
				x.U64()
			case 2:
				x.Skip(8)
			default:
				x.Fail("the reply does not follow its call")
			}
		}
		x.Skip(12)
		x.Opaque(x.Len())
	case 3: // none, with a reason (NFSv4.1)
		if why := x.U32(); why == 1 || why == 2 {
			x.U32()
		}
	default:
		x.Fail("the reply does not follow its call")
	}
}

// readdirNames learns each entry's handle from a READDIR reply that
// carries the filehandle attribute.
func (r *Recorder) readdirNames(x *nfs4.Decoder, dir string) {
	x.Skip(8)
	for n := 0; n < 100000 && x.U32() != 0 && x.Err() == nil; n++ {
		x.U64()
		name := string(x.Opaque(x.Len()))
		words := x.Bitmap()
		vals := nfs4.NewDecoder(x.Opaque(x.Len()))
		if fh := fhAttr(words, vals); fh != "" && dir != "" && len(r.names) < 1<<20 {
			r.names[fh] = path.Join(dir, name)
		}
	}
	x.U32() // eof
}

// fhAttr finds FATTR4_FILEHANDLE (bit 19) in a fattr4's values, skipping
// the attributes before it, all of known size.
func fhAttr(words []uint32, v *nfs4.Decoder) string {
	if len(words) == 0 || words[0]&(1<<nfs4.AttrFilehandle) == 0 {
		return ""
	}
	for bit := 0; bit < nfs4.AttrFilehandle; bit++ {
		if words[0]&(1<<bit) == 0 {
			continue
		}
		switch bit {
		case 0:
			v.Bitmap()
		case 1, 2, 10, 11, 13:
			v.U32()
		case 3, 4:
			v.U64()
		case 5, 6, 7, 9, 14, 15, 16, 17, 18:
			v.U32()
		case 8:
			v.Skip(16)
		case 12:
			n := int(v.U32())
			for i := 0; i < n && i < 1024 && v.Err() == nil; i++ {
				v.Skip(12)
				v.Opaque(v.Len())
			}
		}
	}
	fh := v.Opaque(v.Len())
	if v.Err() != nil {
		return ""
	}
	return string(fh)
}

// Listen makes a loopback listener for a recorder: address must be on
// 127.0.0.1.
func Listen(ctx context.Context, address string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("storm: %q: the recorder listens on 127.0.0.1 only (e.g. 127.0.0.1:2049)", address)
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", address)
}
