package control

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		comments bool
		want     [][]Field
		wantErr  string
	}{
		{name: "two paragraphs", in: "A: 1\nB: two words\n\nC: 3\n",
			want: [][]Field{{{"A", "1"}, {"B", "two words"}}, {{"C", "3"}}}},
		{name: "continuation lines", in: "Description: short\n long line\n .\n more\nX: y\n",
			want: [][]Field{{{"Description", "short\nlong line\n.\nmore"}, {"X", "y"}}}},
		{name: "empty first line value", in: "SHA256:\n abc 1 f\n def 2 g\n",
			want: [][]Field{{{"SHA256", "\nabc 1 f\ndef 2 g"}}}},
		{name: "blank lines with spaces separate", in: "A: 1\n \t\nB: 2\n",
			want: [][]Field{{{"A", "1"}}, {{"B", "2"}}}},
		{name: "CRLF", in: "A: 1\r\nB: 2\r\n\r\nC: 3\r\n",
			want: [][]Field{{{"A", "1"}, {"B", "2"}}, {{"C", "3"}}}},
		{name: "comments when allowed", in: "# top\nTypes: deb\n# inner\nURIs: http://x/\n", comments: true,
			want: [][]Field{{{"Types", "deb"}, {"URIs", "http://x/"}}}},
		{name: "no trailing newline", in: "A: 1", want: [][]Field{{{"A", "1"}}}},
		{name: "missing colon", in: "A: 1\nbroken line\n", wantErr: "line 2: expected"},
		{name: "leading continuation", in: " orphan\n", wantErr: "line 1: continuation line before any field"},
		{name: "blank in field name", in: "A B: 1\n", wantErr: "contains blanks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in))
			r.Comments = tt.comments
			var got [][]Field
			var err error
			for {
				var p *Paragraph
				p, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, p.Fields)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d paragraphs %v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if len(got[i]) != len(tt.want[i]) {
					t.Fatalf("paragraph %d: got %v, want %v", i, got[i], tt.want[i])
				}
				for j := range got[i] {
					if got[i][j] != tt.want[i][j] {
						t.Errorf("paragraph %d field %d: got %q, want %q", i, j, got[i][j], tt.want[i][j])
					}
				}
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	in := "Package: dpkg\nStatus: install ok installed\nDescription: Debian package system\n This package provides dpkg.\n .\n More.\nConffiles:\n /etc/dpkg/dpkg.cfg f4e7\n\nPackage: b\nVersion: 1\n"
	ps, err := ReadAll(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, p := range ps {
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != in {
		t.Fatalf("round trip changed the text:\n%s\nwant:\n%s", out.String(), in)
	}
	p := ps[0]
	if p.Get("status") != "install ok installed" {
		t.Errorf("case-insensitive Get failed")
	}
	p.Set("Status", "purge ok not-installed")
	p.Delete("Conffiles")
	if _, ok := p.Lookup("Conffiles"); ok || p.Get("Status") != "purge ok not-installed" {
		t.Errorf("Set/Delete failed: %v", p.Fields)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("A: 1\nB: 2\n\nC: 3\n"))
	f.Add([]byte("Description: x\n .\n y\n"))
	f.Add([]byte(" bad\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ReadAll(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What parses and the writer accepts must read back the same.
		for _, p := range ps {
			var out bytes.Buffer
			if err := NewWriter(&out).Write(p); err != nil {
				continue
			}
			again, err := ReadAll(&out)
			if err != nil {
				t.Fatalf("re-reading written paragraph: %v\n%q", err, out.String())
			}
			if len(again) != 1 || len(again[0].Fields) != len(p.Fields) {
				t.Fatalf("paragraph changed: %q", out.String())
			}
			for i, f := range p.Fields {
				if again[0].Fields[i] != f {
					t.Fatalf("field %q became %q", f, again[0].Fields[i])
				}
			}
		}
	})
}
