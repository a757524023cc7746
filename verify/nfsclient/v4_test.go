package nfsclient

import (
	"bytes"
	"errors"
	"nroot/verify/nfs4"
	"testing"
)

// readdirPage encodes a READDIR4resok with the given names, each with a
// type and a file handle.
func readdirPage(names []string, eof bool) []byte {
	var e enc
	e.Fixed(make([]byte, 8))
	for i, n := range names {
		e.U32(1)
		e.U64(uint64(i + 3))
		e.Opaque([]byte(n))
		var attrs enc
		attrs.U32(1) // regular file
		attrs.Opaque([]byte{1, 2, 3, 4})
		e.Bitmap(nfs4.AttrType, nfs4.AttrFilehandle)
		e.Opaque(attrs.Bytes())
	}
	e.U32(0)
	if eof {
		e.U32(1)
	} else {
		e.U32(0)
	}
	return e.Bytes()
}

func TestParseReaddir4(t *testing.T) {
	for _, c := range []struct {
		name    string
		page    []byte
		max     int
		entries int
		eof     bool
		err     error
	}{
		{"two entries, end", readdirPage([]string{"etc", "usr"}, true), 10, 2, true, nil},
		{"more to come", readdirPage([]string{"a"}, false), 10, 1, false, nil},
		{"beyond the limit", readdirPage([]string{"a", "b", "c"}, true), 2, 2, false, ErrWalkLimit},
		{"a name with a slash", readdirPage([]string{"../etc"}, true), 10, 0, false, nil},
		{"dot", readdirPage([]string{"."}, true), 10, 0, false, nil},
		{"cut short", readdirPage([]string{"etc"}, true)[:30], 10, 0, false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &dec{Decoder: nfs4.NewDecoder(c.page)}
			got, cookie, eof, err := parseReaddir4(d, c.max)
			switch {
			case c.err != nil && !errors.Is(err, c.err):
				t.Fatalf("err %v, want %v", err, c.err)
			case c.name == "two entries, end" || c.name == "more to come":
				if err != nil || len(got) != c.entries || eof != c.eof || got[0].Attr.Type != 1 || !bytes.Equal(got[0].FH, []byte{1, 2, 3, 4}) || cookie == 0 {
					t.Fatalf("%d entries %+v, eof %v, cookie %d, err %v", len(got), got, eof, cookie, err)
				}
			case c.err == nil && err == nil:
				t.Fatalf("accepted: %+v", got)
			}
		})
	}
}

func TestFattr4RefusesAnUnaskedAttribute(t *testing.T) {
	var e enc
	e.Bitmap(nfs4.AttrType, 2) // FATTR4_FH_EXPIRE_TYPE: not asked for
	e.Opaque(make([]byte, 8))
	d := &dec{Decoder: nfs4.NewDecoder(e.Bytes())}
	d.fattr()
	if d.Err() == nil {
		t.Fatal("an attribute nroot did not ask for was decoded")
	}
}

func FuzzParseReaddir4(f *testing.F) {
	f.Add(readdirPage([]string{"etc", "usr"}, true))
	f.Add(readdirPage([]string{"a"}, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &dec{Decoder: nfs4.NewDecoder(b)}
		entries, _, _, err := parseReaddir4(d, 1000)
		if len(entries) > 1000 {
			t.Fatalf("%d entries past the limit", len(entries))
		}
		for _, e := range entries {
			if len(e.FH) > nfs4.MaxFH || e.Name == "" {
				t.Fatalf("accepted %+v (err %v)", e, err)
			}
		}
	})
}
