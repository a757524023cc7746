package nfs4

import (
	"errors"
	"testing"
)

// TestRoundTrip: what the Encoder writes, the Decoder reads back.
func TestRoundTrip(t *testing.T) {
	var e Encoder
	e.U32(7)
	e.U64(1 << 40)
	e.Opaque([]byte("etc"))
	e.Fixed(make([]byte, 8))
	e.Bitmap(AttrType, AttrMode, AttrTimeModify)
	e.Opaque(nil)
	if e.Len()%4 != 0 {
		t.Fatalf("%d bytes, not a multiple of 4", e.Len())
	}
	d := NewDecoder(e.Bytes())
	if v := d.U32(); v != 7 {
		t.Errorf("U32 = %d", v)
	}
	if v := d.U64(); v != 1<<40 {
		t.Errorf("U64 = %d", v)
	}
	if b := d.Opaque(16); string(b) != "etc" {
		t.Errorf("Opaque = %q", b)
	}
	d.Skip(8)
	w := d.Bitmap()
	if n := NewDecoder(e.Bytes()[12:]).SkipOpaque(3); n != 3 {
		t.Errorf("SkipOpaque = %d, want 3", n)
	}
	if len(w) != 2 || w[0] != 1<<AttrType || w[1] != 1<<(AttrMode-32)|1<<(AttrTimeModify-32) {
		t.Errorf("Bitmap = %#x", w)
	}
	if b := d.Opaque(0); b == nil || len(b) != 0 {
		t.Errorf("empty Opaque = %v", b)
	}
	if d.Err() != nil || d.Len() != 0 {
		t.Errorf("err %v, %d bytes left", d.Err(), d.Len())
	}
}

// TestDecoderRefuses: a length past the data, past its bound, a bitmap
// too long, a short read: each is ErrMalformed, it sticks, and what
// follows reads as zero.
func TestDecoderRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(*Decoder)
	}{
		{"short u32", []byte{0, 0}, func(d *Decoder) { d.U32() }},
		{"opaque past the data", []byte{0, 0, 0, 9, 'a'}, func(d *Decoder) { d.Opaque(64) }},
		{"opaque past its bound", []byte{0, 0, 0, 4, 'a', 'b', 'c', 'd'}, func(d *Decoder) { d.Opaque(3) }},
		{"a huge length", []byte{0xff, 0xff, 0xff, 0xff}, func(d *Decoder) { d.Opaque(1 << 30) }},
		{"bitmap of 9 words", append([]byte{0, 0, 0, 9}, make([]byte, 36)...), func(d *Decoder) { d.Bitmap() }},
		{"skipped opaque past the data", []byte{0, 0, 0, 9, 'a'}, func(d *Decoder) { d.SkipOpaque(64) }},
		{"skipped opaque past its bound", []byte{0, 0, 0, 4, 'a', 'b', 'c', 'd'}, func(d *Decoder) { d.SkipOpaque(3) }},
		{"skip past the end", []byte{1, 2, 3, 4}, func(d *Decoder) { d.Skip(8) }},
		{"negative skip", []byte{1, 2, 3, 4}, func(d *Decoder) { d.Skip(-1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(tt.in)
			tt.read(d)
			if !errors.Is(d.Err(), ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", d.Err())
			}
			if v := d.U32(); v != 0 || d.Len() != 0 {
				t.Errorf("read %d after the error, %d bytes left", v, d.Len())
			}
		})
	}
}

func TestNames(t *testing.T) {
	for code, want := range map[uint32]string{OpLookup: "LOOKUP", OpSecinfo: "SECINFO", OpReadPlus: "READ_PLUS", 99: "OP99"} {
		if got := OpName(code); got != want {
			t.Errorf("OpName(%d) = %q, want %q", code, got, want)
		}
	}
	if StatusName(ErrDelay) != "NFS4ERR_DELAY" || StatusName(12345) != "status 12345" {
		t.Errorf("StatusName: %q %q", StatusName(ErrDelay), StatusName(12345))
	}
}

// FuzzDecoder reads hostile bytes as a COMPOUND reply's first values:
// never a panic, never more read than was given.
func FuzzDecoder(f *testing.F) {
	var e Encoder
	e.U32(0)
	e.Opaque([]byte("tag"))
	e.U32(1)
	e.Bitmap(AttrType)
	f.Add(e.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b)
		total := 0
		for i := 0; i < 64 && d.Err() == nil; i++ {
			switch i % 4 {
			case 0:
				d.U32()
			case 1:
				total += len(d.Opaque(1 << 20))
			case 2:
				d.Bitmap()
			case 3:
				total += len(d.Bytes(int(d.U32() % 64)))
			}
		}
		if total > len(b) || d.Len() > len(b) {
			t.Fatalf("read %d of %d bytes", total, len(b))
		}
	})
}
