package storm

import (
	"math"
	"testing"
	"time"

	"nroot/verify/nfs4"
)

// compound is an RPC record of one NFSv4.1 COMPOUND call; ops writes its
// operations and returns how many.
func compound(xid uint32, ops func(e *nfs4.Encoder) uint32) []byte {
	var e, body nfs4.Encoder
	for _, v := range []uint32{xid, 0, 2, nfs4.Program, nfs4.Version, nfs4.ProcCompound, 0, 0, 0, 0} {
		e.U32(v)
	}
	e.Opaque(nil) // tag
	e.U32(1)      // minor version
	n := ops(&body)
	e.U32(n)
	e.Fixed(body.Bytes())
	return e.Bytes()
}

// reply is an accepted, successful COMPOUND reply with no results: the
// recorder still follows the call's paths.
func reply(xid uint32) []byte {
	var e nfs4.Encoder
	for _, v := range []uint32{xid, 1, 0, 0, 0, 0, 0} {
		e.U32(v)
	}
	e.Opaque(nil)
	e.U32(0)
	return e.Bytes()
}

func lookup(e *nfs4.Encoder, name string) {
	e.U32(nfs4.OpLookup)
	e.Opaque([]byte(name))
}

// open writes OPEN4args for reading, CLAIM_NULL of name or, with name "",
// CLAIM_FH.
func open(e *nfs4.Encoder, name string) {
	e.U32(nfs4.OpOpen)
	e.U32(0)
	e.U32(1)
	e.U32(0)
	e.U64(7)
	e.Opaque([]byte("owner"))
	e.U32(0) // NOCREATE
	if name == "" {
		e.U32(4)
		return
	}
	e.U32(0)
	e.Opaque([]byte(name))
}

// TestRecordNamesTheCall: a COMPOUND is recorded as the operation a
// replay sends again: OPEN (CLAIM_NULL or CLAIM_FH) beside its ACCESS
// and GETATTR, CLOSE beside its GETATTR, ACCESS beside GETATTR, READ.
func TestRecordNamesTheCall(t *testing.T) {
	tests := []struct {
		name string
		ops  func(e *nfs4.Encoder) uint32
		want Op
	}{
		{"open by name", func(e *nfs4.Encoder) uint32 {
			e.U32(nfs4.OpPutrootfh)
			lookup(e, "etc")
			open(e, "passwd")
			e.U32(nfs4.OpGetfh)
			e.U32(nfs4.OpAccess)
			e.U32(0x1f)
			e.U32(nfs4.OpGetattr)
			e.Bitmap(nfs4.AttrSize)
			return 6
		}, Op{Op: "OPEN", Path: "/etc/passwd"}},
		{"open by handle", func(e *nfs4.Encoder) uint32 {
			e.U32(nfs4.OpPutrootfh)
			lookup(e, "etc")
			lookup(e, "hosts")
			open(e, "")
			e.U32(nfs4.OpGetfh)
			return 5
		}, Op{Op: "OPEN", Path: "/etc/hosts", Claim: "fh"}},
		{"close", func(e *nfs4.Encoder) uint32 {
			e.U32(nfs4.OpPutrootfh)
			lookup(e, "etc")
			lookup(e, "hosts")
			e.U32(nfs4.OpClose)
			e.U32(0)
			e.Fixed(make([]byte, 16))
			e.U32(nfs4.OpGetattr)
			e.Bitmap(nfs4.AttrSize)
			return 5
		}, Op{Op: "CLOSE", Path: "/etc/hosts"}},
		{"access", func(e *nfs4.Encoder) uint32 {
			e.U32(nfs4.OpPutrootfh)
			e.U32(nfs4.OpAccess)
			e.U32(0x1f)
			e.U32(nfs4.OpGetattr)
			e.Bitmap(nfs4.AttrSize)
			return 3
		}, Op{Op: "ACCESS", Path: "/"}},
		{"read", func(e *nfs4.Encoder) uint32 {
			e.U32(nfs4.OpPutrootfh)
			lookup(e, "f")
			e.U32(nfs4.OpRead)
			e.Fixed(make([]byte, 16))
			e.U64(4096)
			e.U32(512)
			return 3
		}, Op{Op: "READ", Path: "/f", Off: 4096, Count: 512}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Recorder{names: map[string]string{}, ws: WorkingSet{Ops: map[string]int{}, Files: map[string]int64{}}}
			p := &pendingCalls{m: map[uint32]*call{}}
			r.onCall(p, compound(9, tt.ops))
			r.onReply(p, reply(9))
			ws := r.WorkingSet()
			if len(ws.Calls) != 1 || ws.Calls[0] != tt.want {
				t.Errorf("recorded %+v, want %+v", ws.Calls, tt.want)
			}
			if ws.CallsTimed != 1 || ws.CallP50 <= 0 || ws.CallP99 != ws.CallP50 {
				t.Errorf("timed %d calls, p50 %g s, p99 %g s; want the one call's time", ws.CallsTimed, ws.CallP50, ws.CallP99)
			}
		})
	}
}

func TestHistQuantile(t *testing.T) {
	tests := []struct {
		name     string
		lat      []time.Duration
		q, want  float64
		maxError float64 // relative
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one", []time.Duration{time.Millisecond}, 0.99, 1e-3, 0.021},
		{"median of three", []time.Duration{time.Millisecond, 2 * time.Millisecond, time.Second}, 0.5, 2e-3, 0.021},
		{"p99 of a tail", append(make([]time.Duration, 98), time.Second, time.Second), 0.99, 1, 0.021},
		{"below a microsecond", []time.Duration{10}, 0.5, 1e-6, 0.021},
		{"past the last bucket", []time.Duration{100 * time.Hour}, 0.5, histBase * math.Pow(histGrowth, histBuckets), 1e-9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Hist
			for _, d := range tt.lat {
				if d == 0 {
					d = 100 * time.Microsecond
				}
				h.Add(d)
			}
			var m Hist
			m.Merge(h)
			got := m.Quantile(tt.q)
			if tt.want == 0 {
				if got != 0 {
					t.Errorf("got %g, want 0", got)
				}
				return
			}
			if got < tt.want*(1-1e-9) || got > tt.want*(1+tt.maxError) {
				t.Errorf("q%.2f = %g, want %g within %g above", tt.q, got, tt.want, tt.maxError)
			}
		})
	}
}
