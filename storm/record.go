package storm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
	accepted int   // client connections
	dialErr  error // the last failure to reach upstream
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
	ops []callOp
}

type callOp struct {
	code  uint32
	name  string // LOOKUP, OPEN with CLAIM_NULL: the component
	fh    string // PUTFH
	off   uint64
	count uint32
}

type pendingCalls struct {
	mu sync.Mutex
	m  map[uint32]*call
}

// xr reads XDR, remembering the first error; every length is checked
// against what is left.
type xr struct {
	b   []byte
	err error
}

func (x *xr) u32() uint32 {
	if x.err != nil || len(x.b) < 4 {
		x.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(x.b)
	x.b = x.b[4:]
	return v
}

func (x *xr) u64() uint64 { return uint64(x.u32())<<32 | uint64(x.u32()) }

func (x *xr) fail() {
	if x.err == nil {
		x.err = errors.New("short record")
	}
	x.b = nil
}

func (x *xr) skip(n int) {
	if x.err != nil || n < 0 || n > len(x.b) {
		x.fail()
		return
	}
	x.b = x.b[n:]
}

func (x *xr) opaque() []byte {
	n := int(x.u32())
	if x.err != nil || n > len(x.b) {
		x.fail()
		return nil
	}
	v := x.b[:n]
	x.skip((n + 3) &^ 3)
	return v
}

func (x *xr) bitmap() []uint32 {
	n := int(x.u32())
	if n > 8 {
		x.fail()
		return nil
	}
	w := make([]uint32, n)
	for i := range w {
		w[i] = x.u32()
	}
	return w
}

func (x *xr) fattrSkip() { x.bitmap(); x.opaque() }

var opNames = map[uint32]string{3: "ACCESS", 4: "CLOSE", 7: "DELEGPURGE", 8: "DELEGRETURN", 9: "GETATTR", 10: "GETFH", 15: "LOOKUP", 16: "LOOKUPP",
	17: "NVERIFY", 18: "OPEN", 19: "OPENATTR", 21: "OPEN_DOWNGRADE", 22: "PUTFH", 23: "PUTPUBFH", 24: "PUTROOTFH", 25: "READ", 26: "READDIR",
	27: "READLINK", 31: "RESTOREFH", 32: "SAVEFH", 33: "SECINFO", 37: "VERIFY", 38: "WRITE", 41: "BIND_CONN_TO_SESSION", 42: "EXCHANGE_ID",
	43: "CREATE_SESSION", 44: "DESTROY_SESSION", 45: "FREE_STATEID", 46: "GET_DIR_DELEGATION", 47: "GETDEVICEINFO", 50: "LAYOUTGET",
	52: "SECINFO_NO_NAME", 53: "SEQUENCE", 55: "TEST_STATEID", 57: "DESTROY_CLIENTID", 58: "RECLAIM_COMPLETE", 65: "READ_PLUS"}

func opName(code uint32) string {
	if n, ok := opNames[code]; ok {
		return n
	}
	return fmt.Sprintf("OP%d", code)
}

// parseCall decodes an RPC call; it returns the xid and, for an NFSv4
// COMPOUND, its operations (as many as could be decoded).
func parseCall(rec []byte) (uint32, *call, bool) {
	x := &xr{b: rec}
	xid := x.u32()
	if x.u32() != 0 || x.u32() != 2 { // CALL, RPC version 2
		return 0, nil, false
	}
	prog, vers, proc := x.u32(), x.u32(), x.u32()
	x.u32()
	x.opaque() // credentials
	x.u32()
	x.opaque() // verifier
	if x.err != nil || prog != 100003 || vers != 4 || proc != 1 {
		return xid, nil, x.err == nil
	}
	x.opaque() // tag
	x.u32()    // minor version
	n := x.u32()
	if n > 128 {
		n = 128
	}
	c := &call{}
	for i := uint32(0); i < n && x.err == nil; i++ {
		op := callOp{code: x.u32()}
		if !op.parseArgs(x) {
			c.ops = append(c.ops, op)
			break // arguments nroot does not decode: the rest cannot be found
		}
		if x.err != nil {
			break
		}
		c.ops = append(c.ops, op)
	}
	return xid, c, true
}

// parseArgs skips (and keeps what matters of) an operation's arguments;
// false for an operation it cannot decode.
func (op *callOp) parseArgs(x *xr) bool {
	switch op.code {
	case 10, 16, 23, 24, 27, 31, 32: // no arguments
	case 3, 52: // ACCESS, SECINFO_NO_NAME
		x.u32()
	case 4: // CLOSE
		x.skip(20)
	case 7, 57: // DELEGPURGE, DESTROY_CLIENTID
		x.u64()
	case 8, 45: // DELEGRETURN, FREE_STATEID
		x.skip(16)
	case 9: // GETATTR
		x.bitmap()
	case 15, 33: // LOOKUP, SECINFO
		op.name = string(x.opaque())
	case 17, 37: // NVERIFY, VERIFY
		x.fattrSkip()
	case 18: // OPEN
		x.skip(12)
		x.u64()
		x.opaque()
		if x.u32() == 1 { // OPEN4_CREATE
			switch x.u32() {
			case 0, 1:
				x.fattrSkip()
			case 2:
				x.skip(8)
			case 3:
				x.skip(8)
				x.fattrSkip()
			default:
				return false
			}
		}
		switch x.u32() {
		case 0, 3: // CLAIM_NULL, CLAIM_DELEGATE_PREV
			op.name = string(x.opaque())
		case 1:
			x.u32()
		case 2:
			x.skip(16)
			op.name = string(x.opaque())
		case 4, 6:
		case 5:
			x.skip(16)
		default:
			return false
		}
	case 19: // OPENATTR
		x.u32()
	case 21: // OPEN_DOWNGRADE
		x.skip(28)
	case 22: // PUTFH
		op.fh = string(x.opaque())
	case 25, 65: // READ, READ_PLUS
		x.skip(16)
		op.off = x.u64()
		op.count = x.u32()
	case 26: // READDIR
		x.skip(24)
		x.bitmap()
	case 38: // WRITE
		x.skip(28)
		x.opaque()
	case 41: // BIND_CONN_TO_SESSION
		x.skip(24)
	case 44: // DESTROY_SESSION
		x.skip(16)
	case 47: // GETDEVICEINFO
		x.skip(24)
		x.bitmap()
	case 53: // SEQUENCE
		x.skip(32)
	case 55: // TEST_STATEID
		n := int(x.u32())
		x.skip(16 * n)
	case 58: // RECLAIM_COMPLETE
		x.u32()
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
	p.mu.Lock()
	if len(p.m) < 65536 {
		p.m[xid] = c
	}
	p.mu.Unlock()
}

// onReply pairs a reply with its call, learns file handles' names from
// GETFH and READDIR, and records the COMPOUND.
func (r *Recorder) onReply(p *pendingCalls, rec []byte) {
	x := &xr{b: rec}
	xid := x.u32()
	p.mu.Lock()
	c := p.m[xid]
	delete(p.m, xid)
	p.mu.Unlock()
	if c == nil || x.u32() != 1 || x.u32() != 0 { // REPLY, MSG_ACCEPTED
		return
	}
	x.u32()
	x.opaque() // verifier
	if x.u32() != 0 || x.err != nil {
		return // not SUCCESS
	}
	x.u32()    // COMPOUND status
	x.opaque() // tag
	nres := int(x.u32())
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
		r.ws.Ops[opName(op.code)]++
		// Follow the current file handle's path through the call.
		switch op.code {
		case 24:
			cur = "/"
		case 22:
			cur = r.names[op.fh]
			known = known && cur != ""
		case 15:
			if cur != "" {
				cur = path.Join(cur, op.name)
			}
			setMain(Op{Op: "LOOKUP", Path: cur})
		case 16:
			if cur != "" {
				cur = path.Dir(cur)
			}
		case 18:
			if op.name != "" && cur != "" {
				cur = path.Join(cur, op.name)
			}
			setMain(Op{Op: "OPEN", Path: cur})
		case 32:
			saved = cur
		case 31:
			cur = saved
		case 9:
			setMain(Op{Op: "GETATTR", Path: cur})
		case 3:
			setMain(Op{Op: "ACCESS", Path: cur})
		case 26:
			setMain(Op{Op: "READDIR", Path: cur})
		case 27:
			setMain(Op{Op: "READLINK", Path: cur})
		case 25, 65:
			setMain(Op{Op: "READ", Path: cur, Off: op.off, Count: op.count})
		}
		// Its result, while the reply can be followed.
		if i >= nres || x.err != nil {
			continue
		}
		if x.u32() != op.code {
			x.fail()
			continue
		}
		if x.u32() != 0 {
			x.fail() // an error ends the COMPOUND
			continue
		}
		switch op.code {
		case 53:
			x.skip(36)
		case 10:
			if fh := string(x.opaque()); x.err == nil && cur != "" && len(r.names) < 1<<20 {
				r.names[fh] = cur
			}
		case 9:
			x.fattrSkip()
		case 3:
			x.skip(8)
		case 25:
			x.u32()
			n := len(x.opaque())
			r.ws.Bytes += int64(n)
			if cur != "" {
				r.ws.Files[cur] += int64(n)
			}
		case 27:
			x.opaque()
		case 26:
			r.readdirNames(x, cur)
		case 18:
			x.skip(40)
			x.bitmap()
			skipDelegation(x)
		case 4:
			x.skip(16)
		case 22, 24, 15, 16, 31, 32:
		default:
			x.fail() // results nroot does not decode: stop here
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
	if len(r.ws.Calls) < maxCalls {
		r.ws.Calls = append(r.ws.Calls, main)
	}
}

// setup are the operations that make or end a session.
var setup = map[uint32]bool{41: true, 42: true, 43: true, 44: true, 57: true, 58: true}

// rank orders the operations a COMPOUND is named after.
var rank = map[string]int{"ACCESS": 1, "GETATTR": 2, "LOOKUP": 3, "OPEN": 4, "READLINK": 5, "READDIR": 6, "READ": 7}

// skipDelegation skips an open_delegation4.
func skipDelegation(x *xr) {
	typ := x.u32()
	switch typ {
	case 0: // none
	case 1, 2: // read, write: stateid, recall, (write: space limit), ACE
		x.skip(20)
		if typ == 2 {
			switch x.u32() {
			case 1:
				x.u64()
			case 2:
				x.skip(8)
			default:
				x.fail()
			}
		}
		x.skip(12)
		x.opaque()
	case 3: // none, with a reason (NFSv4.1)
		if why := x.u32(); why == 1 || why == 2 {
			x.u32()
		}
	default:
		x.fail()
	}
}

// readdirNames learns each entry's handle from a READDIR reply that
// carries the filehandle attribute.
func (r *Recorder) readdirNames(x *xr, dir string) {
	x.skip(8)
	for n := 0; n < 100000 && x.u32() != 0 && x.err == nil; n++ {
		x.u64()
		name := string(x.opaque())
		words := x.bitmap()
		vals := &xr{b: x.opaque()}
		if fh := fhAttr(words, vals); fh != "" && dir != "" && len(r.names) < 1<<20 {
			r.names[fh] = path.Join(dir, name)
		}
	}
	x.u32() // eof
}

// fhAttr finds FATTR4_FILEHANDLE (bit 19) in a fattr4's values, skipping
// the attributes before it, all of known size.
func fhAttr(words []uint32, v *xr) string {
	if len(words) == 0 || words[0]&(1<<19) == 0 {
		return ""
	}
	for bit := 0; bit < 19; bit++ {
		if words[0]&(1<<bit) == 0 {
			continue
		}
		switch bit {
		case 0:
			v.bitmap()
		case 1, 2, 10, 11, 13:
			v.u32()
		case 3, 4:
			v.u64()
		case 5, 6, 7, 9, 14, 15, 16, 17, 18:
			v.u32()
		case 8:
			v.skip(16)
		case 12:
			n := int(v.u32())
			for i := 0; i < n && i < 1024 && v.err == nil; i++ {
				v.skip(12)
				v.opaque()
			}
		}
	}
	fh := v.opaque()
	if v.err != nil {
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
