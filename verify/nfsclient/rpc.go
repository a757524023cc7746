package nfsclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// rpcConn is an ONC RPC client over one TCP connection: calls are
// pipelined, matched to replies by XID, and bounded by their context.
// nroot uses go-nfs-client's XDR codec and NFSv3 types but this
// transport of its own: the library's transport retries for minutes and,
// when a connection drops with calls pending, closes reply channels twice
// in a background goroutine, a panic no caller can recover.
type rpcConn struct {
	conn    net.Conn
	wmu     sync.Mutex
	pmu     sync.Mutex
	pending map[uint32]chan []byte
	done    chan struct{}
	err     error
	xid     atomic.Uint32
}

// dialRPC connects to addr, from a privileged source port when this
// process may bind one (exports marked "secure" require it).
func dialRPC(ctx context.Context, addr string) (*rpcConn, error) {
	return dialRPCFrom(ctx, addr, privileged())
}

// dialRPCFrom connects to addr, from a privileged port when lowPort.
func dialRPCFrom(ctx context.Context, addr string, lowPort bool) (*rpcConn, error) {
	var conn net.Conn
	var err error
	busy := lowPort
	if lowPort {
		// Every port from 600 to 1022 once, from a random one: after
		// many connections most may wait out TIME_WAIT.
		start := rand.IntN(423)
		for i := 0; i < 423 && ctx.Err() == nil; i++ {
			d := net.Dialer{LocalAddr: &net.TCPAddr{Port: 600 + (start+i)%423}}
			conn, err = d.DialContext(ctx, "tcp", addr)
			if busy = err != nil && errors.Is(err, syscall.EADDRINUSE); !busy {
				break
			}
		}
	}
	if !lowPort || busy {
		// No privileged port free: an unprivileged one, which an
		// export marked "insecure" takes (a refusal says so).
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := &rpcConn{conn: conn, pending: map[uint32]chan []byte{}, done: make(chan struct{})}
	c.xid.Store(rand.Uint32())
	go c.receive()
	return c, nil
}

// maxRecord bounds one reply.
const maxRecord = 128 << 20

func (c *rpcConn) receive() {
	var hdr [4]byte
	for {
		var rec []byte
		for {
			if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
				c.fail(err)
				return
			}
			v := binary.BigEndian.Uint32(hdr[:])
			n := int(v & 0x7fffffff)
			if len(rec)+n > maxRecord {
				c.fail(fmt.Errorf("rpc: record of %d bytes is too large", len(rec)+n))
				return
			}
			frag := make([]byte, n)
			if _, err := io.ReadFull(c.conn, frag); err != nil {
				c.fail(err)
				return
			}
			rec = append(rec, frag...)
			if v&0x80000000 != 0 {
				break
			}
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		c.pmu.Lock()
		ch := c.pending[xid]
		delete(c.pending, xid)
		c.pmu.Unlock()
		if ch != nil {
			ch <- rec[4:] // buffered: never blocks
		}
	}
}

func (c *rpcConn) fail(err error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

func (c *rpcConn) Close() error {
	c.fail(errors.New("closed"))
	return c.conn.Close()
}

type callHeader struct {
	Xid     uint32
	Msgtype uint32
	Rpcvers uint32
	Prog    uint32
	Vers    uint32
	Proc    uint32
	Cred    rpc.Auth
	Verf    rpc.Auth
}

// rawArgs are arguments already in XDR, sent as they are.
type rawArgs []byte

// Call sends one call and returns a reader of its results.
func (c *rpcConn) Call(ctx context.Context, prog, vers, proc uint32, cred rpc.Auth, args any) (io.ReadSeeker, error) {
	b, err := c.CallRaw(ctx, prog, vers, proc, cred, args)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}

// CallRaw is Call's reply as the bytes of its results, not copied.
func (c *rpcConn) CallRaw(ctx context.Context, prog, vers, proc uint32, cred rpc.Auth, args any) ([]byte, error) {
	xid := c.xid.Add(1)
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0}) // record mark, filled in below
	if err := xdr.Write(&buf, callHeader{xid, 0, 2, prog, vers, proc, cred, rpc.AuthNull}); err != nil {
		return nil, err
	}
	if raw, ok := args.(rawArgs); ok {
		buf.Write(raw)
	} else if args != nil {
		if err := xdr.Write(&buf, args); err != nil {
			return nil, err
		}
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, 0x80000000|uint32(len(b)-4))
	ch := make(chan []byte, 1)
	c.pmu.Lock()
	if c.err != nil {
		err := c.err
		c.pmu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	c.pending[xid] = ch
	c.pmu.Unlock()
	forget := func() {
		c.pmu.Lock()
		delete(c.pending, xid)
		c.pmu.Unlock()
	}
	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	}
	_, err := c.conn.Write(b)
	c.wmu.Unlock()
	if err != nil {
		forget()
		c.fail(err)
		return nil, fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	var rec []byte
	select {
	case rec = <-ch:
	case <-c.done:
		forget()
		return nil, fmt.Errorf("%w: %w", ErrConnLost, c.err)
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("%w: %w", ErrNoAnswer, ctx.Err())
	}
	return parseReply(rec)
}

var errAuth = errors.New("AUTH_ERROR")

// ErrConnLost and ErrNoAnswer say the server went away or fell silent
// in the middle of the work.
var (
	ErrConnLost = errors.New("connection lost")
	ErrNoAnswer = errors.New("no answer")
)

// parseReply checks a reply's status and returns its results.
func parseReply(rec []byte) ([]byte, error) {
	r := bytes.NewReader(rec)
	var hdr struct{ Msgtype, Stat uint32 }
	if err := binary.Read(r, binary.BigEndian, &hdr); err != nil || hdr.Msgtype != 1 {
		return nil, errors.New("rpc: malformed reply")
	}
	switch hdr.Stat {
	case 0: // MSG_ACCEPTED
		var verf rpc.Auth
		if err := readXDR(r, &verf); err != nil {
			return nil, err
		}
		var accept uint32
		if err := binary.Read(r, binary.BigEndian, &accept); err != nil {
			return nil, errors.New("rpc: malformed reply")
		}
		msgs := map[uint32]string{1: "PROG_UNAVAIL: the server does not offer this program", 2: "PROG_MISMATCH: the server does not offer this version", 3: "PROC_UNAVAIL", 4: "GARBAGE_ARGS", 5: "SYSTEM_ERR"}
		if accept != 0 {
			return nil, fmt.Errorf("rpc: %s", msgs[accept])
		}
		return rec[len(rec)-r.Len():], nil
	case 1: // MSG_DENIED
		var reject, detail uint32
		binary.Read(r, binary.BigEndian, &reject)
		binary.Read(r, binary.BigEndian, &detail)
		if reject == 1 {
			return nil, fmt.Errorf("rpc: %w %d (credentials or source port refused)", errAuth, detail)
		}
		return nil, errors.New("rpc: RPC_MISMATCH")
	}
	return nil, errors.New("rpc: malformed reply")
}
