package storm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"nroot/verify/nfs4"
	"testing"
)

// TestLoopbackClientDials: whatever a request asks for, the storm's
// client dials 127.0.0.1 alone. Any other address is refused after the
// socket is made and before it connects, so the test sends nothing.
func TestLoopbackClientDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := loopbackClient(1).Transport.(*http.Transport).DialContext
	tests := []struct {
		addr string
		want error
	}{
		{ln.Addr().String(), nil},
		{"127.0.0.2:80", ErrNotLoopback},
		{"192.0.2.1:80", ErrNotLoopback},
		{"[::1]:80", ErrNotLoopback},
	}
	for _, tt := range tests {
		c, err := dial(context.Background(), "tcp", tt.addr)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("dial %s: %v, want %v", tt.addr, err, tt.want)
		}
	}
}

// FuzzParseCall decodes hostile RPC records as the recorder does: never
// a panic, at most nfs4.MaxCompoundOp operations kept.
func FuzzParseCall(f *testing.F) {
	var e nfs4.Encoder
	for _, v := range []uint32{1, 0, 2, nfs4.Program, nfs4.Version, nfs4.ProcCompound, 0, 0, 0, 0} {
		e.U32(v)
	}
	e.Opaque(nil)
	e.U32(1)
	e.U32(2)
	e.U32(nfs4.OpPutrootfh)
	e.U32(nfs4.OpLookup)
	e.Opaque([]byte("etc"))
	f.Add(e.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, c, ok := parseCall(b); ok && c != nil && len(c.ops) > 128 {
			t.Fatalf("%d operations kept", len(c.ops))
		}
		r := &Recorder{names: map[string]string{}, ws: WorkingSet{Ops: map[string]int{}, Files: map[string]int64{}}}
		r.onReply(&pendingCalls{m: map[uint32]*call{0: {ops: []callOp{{code: nfs4.OpPutrootfh}, {code: nfs4.OpReaddir}}}}}, b)
	})
}
