package nfsclient

import (
	"errors"
	"os"
	"testing"

	"nroot/verify/nfs4"
)

// openReply is the results of PUTFH, OPEN and GETFH; deleg writes the
// open_delegation4.
func openReply(status uint32, deleg func(e *nfs4.Encoder), fh []byte) []byte {
	var e nfs4.Encoder
	e.U32(nfs4.OpPutfh)
	e.U32(0)
	e.U32(nfs4.OpOpen)
	e.U32(status)
	if status != 0 {
		return e.Bytes()
	}
	e.Fixed([]byte{0, 0, 0, 1, 's', 't', 'a', 't', 'e', 'i', 'd', '-', 'x', 'y', 'z', 'w'})
	e.Fixed(make([]byte, 20)) // change_info4
	e.U32(0)                  // rflags
	e.Bitmap()
	deleg(&e)
	e.U32(nfs4.OpGetfh)
	e.U32(0)
	e.Opaque(fh)
	return e.Bytes()
}

func ace(e *nfs4.Encoder) {
	e.U32(0)
	e.U32(0)
	e.U32(0)
	e.Opaque([]byte("OWNER@"))
}

func TestParseOpen4(t *testing.T) {
	sid := make([]byte, 16)
	sid[15] = 9
	tests := []struct {
		name    string
		status  uint32
		deleg   func(e *nfs4.Encoder)
		fh      []byte
		wantDel bool
		wantErr func(error) bool
	}{
		{"no delegation", 0, func(e *nfs4.Encoder) { e.U32(0) }, []byte("fh1"), false, nil},
		{"none, with a reason", 0, func(e *nfs4.Encoder) { e.U32(3); e.U32(1); e.U32(0) }, []byte("fh1"), false, nil},
		{"read delegation", 0, func(e *nfs4.Encoder) { e.U32(1); e.Fixed(sid); e.U32(0); ace(e) }, []byte("fh2"), true, nil},
		{"write delegation", 0, func(e *nfs4.Encoder) {
			e.U32(2)
			e.Fixed(sid)
			e.U32(0)
			e.U32(1)
			e.U64(1 << 20)
			ace(e)
		}, []byte("fh3"), true, nil},
		{"delegation of no known kind", 0, func(e *nfs4.Encoder) { e.U32(7) }, []byte("fh"), false, func(err error) bool { return errors.Is(err, nfs4.ErrMalformed) }},
		{"missing", 2, nil, nil, false, func(err error) bool { return errors.Is(err, os.ErrNotExist) }},
		{"a directory", 21, nil, nil, false, func(err error) bool { return err != nil }},
		{"empty handle", 0, func(e *nfs4.Encoder) { e.U32(0) }, nil, false, func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOpen4(&dec{Decoder: nfs4.NewDecoder(openReply(tt.status, tt.deleg, tt.fh))}, "f")
			if tt.wantErr != nil {
				if !tt.wantErr(err) || o != nil {
					t.Fatalf("open %+v, error %v", o, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(o.FH) != string(tt.fh) || string(o.State[4:11]) != "stateid" || (o.Delegation != nil) != tt.wantDel {
				t.Errorf("%+v", o)
			}
			if tt.wantDel && o.Delegation[15] != 9 {
				t.Errorf("delegation stateid %x", o.Delegation[:])
			}
		})
	}
}

func FuzzParseOpen4(f *testing.F) {
	f.Add(openReply(0, func(e *nfs4.Encoder) { e.U32(0) }, []byte("fh")))
	f.Add(openReply(0, func(e *nfs4.Encoder) { e.U32(1); e.Fixed(make([]byte, 16)); e.U32(0); ace(e) }, []byte("fh")))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseOpen4(&dec{Decoder: nfs4.NewDecoder(b)}, "f")
		if err == nil && (len(o.FH) == 0 || len(o.FH) > nfs4.MaxFH) {
			t.Fatalf("a handle of %d bytes accepted", len(o.FH))
		}
	})
}
