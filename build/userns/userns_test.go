package userns

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSubIDs(t *testing.T) {
	tests := []struct {
		name, file string
		want       Range
		err        error // nil, ErrNoSubIDs, or errMalformed
	}{
		{"the user's line", "root:1000000:65536\nbuild:100000:65536\n", Range{1, 100000, 65536}, nil},
		{"a line naming the uid", "1000:200000:70000\n", Range{1, 200000, 70000}, nil},
		{"the first range that is large enough", "build:100000:1000\nbuild:300000:65536\n", Range{1, 300000, 65536}, nil},
		{"comments and blank lines are skipped", "# ranges\n\n  build:5:65536  \n", Range{1, 5, 65536}, nil},
		{"another user's range is not taken", "other:100000:65536\n", Range{}, ErrNoSubIDs},
		{"a name that only starts the same", "builder:100000:65536\n", Range{}, ErrNoSubIDs},
		{"too small a range says how small", "build:100000:1000\n", Range{}, ErrNoSubIDs},
		{"an empty file", "", Range{}, ErrNoSubIDs},
		{"a count that is not a number", "build:100000:lots\n", Range{}, errMalformed},
		{"a range past the last ID", "build:4294967000:65536\n", Range{}, errMalformed},
		{"a count of zero", "build:100000:0\n", Range{}, errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubIDs(strings.NewReader(tt.file), "build", 1000, MinIDs)
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("error %v", err)
			case tt.err == errMalformed && (err == nil || errors.Is(err, ErrNoSubIDs)):
				t.Fatalf("error %v, want a malformed line", err)
			case tt.err == ErrNoSubIDs && !errors.Is(err, ErrNoSubIDs):
				t.Fatalf("error %v, want ErrNoSubIDs", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// errMalformed marks a case that must fail for its line, not for want of
// a range.
var errMalformed = errors.New("malformed")

func TestMapArgs(t *testing.T) {
	got := mapArgs("/usr/bin/newuidmap", 42, []Range{{0, 1000, 1}, {1, 100000, 65536}})
	want := []string{"/usr/bin/newuidmap", "42", "0", "1000", "1", "1", "100000", "65536"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzSubIDs(f *testing.F) {
	f.Add("build:100000:65536\n", "build")
	f.Add("1000:1:4294967294\n#x\n", "x")
	f.Add("build:100000:1\nbuild:4294901760:65535\n", "build")
	f.Fuzz(func(t *testing.T, file, name string) {
		r, err := SubIDs(strings.NewReader(file), name, 1000, MinIDs)
		if err != nil {
			return
		}
		if r.Inside != 1 || r.Count < MinIDs || uint64(r.Outside)+uint64(r.Count) > 1<<32-1 {
			t.Fatalf("range %+v from %q", r, file)
		}
	})
}
