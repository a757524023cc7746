package apt

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"nroot/internal/usage"
)

// TestParseSourcesList: a sources.list given as MIRROR or on stdin gives
// its enabled deb entries, one-line or deb822, and what nroot cannot
// follow is a usage error naming the place.
func TestParseSourcesList(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               []string // Source.String() of each
		says               string   // the error, when it fails
	}{
		{"one line", "", "deb http://m/debian bookworm main\n", []string{"deb http://m/debian bookworm main"}, ""},
		{"one line with comments and deb-src", OneLine, "# mine\ndeb-src http://m/debian bookworm main\ndeb http://m/debian bookworm main contrib # x\n\n", []string{"deb http://m/debian bookworm main contrib"}, ""},
		{"signed-by and arch are not used", "", "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m/debian bookworm main\n", []string{"deb http://m/debian bookworm main"}, ""},
		{"trusted=yes is refused", "", "deb [trusted=yes] http://m/debian bookworm main\n", nil, "trusted=yes"},
		{"old security suite", "", "deb http://m/debian-security buster/updates main\n", []string{"deb http://m/debian-security buster/updates main"}, ""},
		{"deb822", "", "Types: deb\nURIs: http://m/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
			[]string{"deb http://m/debian bookworm main", "deb http://m/debian bookworm-updates main"}, ""},
		{"deb822 disabled and deb-src stanzas", Deb822, "Types: deb-src\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://m/debian\nSuites: trixie\nComponents: main\n\nTypes: deb deb-src\nURIs: http://m/debian\nSuites: sid\nComponents: main\n",
			[]string{"deb http://m/debian sid main"}, ""},
		{"deb822 without Types", Deb822, "URIs: http://m/debian\nSuites: bookworm\n", nil, "Types"},
		{"deb822 Trusted", Deb822, "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\nTrusted: yes\n", nil, "Trusted"},
		{"flat repository", "", "deb http://m/repo ./\n", nil, "flat repository"},
		{"a path is no URI", "", "deb /srv/mirror bookworm main\n", nil, "URI"},
		{"not a sources.list", "", "hello\n", nil, "format"},
		{"no entry", OneLine, "# nothing\n", nil, "no enabled deb entry"},
		{"one-line entries in a deb822 file", Deb822, "deb http://m/debian bookworm main\n", nil, "go in a .list file"},
		{"a bad line", OneLine, "deb http://m/debian bookworm main\nrpm http://m/x\n", nil, "f:2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSourcesList([]byte(tt.data), tt.format, "f")
			if tt.says != "" {
				if err == nil || !strings.Contains(err.Error(), tt.says) || !usage.Is(err) {
					t.Fatalf("error %v, want a usage error saying %q", err, tt.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, s := range got {
				lines = append(lines, s.String())
			}
			if !reflect.DeepEqual(lines, tt.want) {
				t.Errorf("got %q, want %q", lines, tt.want)
			}
		})
	}
}

// TestParseIncludePattern: the patterns that name packages exactly give
// those names; every other pattern is refused in one usage error that
// names --include.
func TestParseIncludePattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"?exact-name(base-files)", []string{"base-files"}},
		{"?or(?exact-name(a0),?exact-name(libc6))", []string{"a0", "libc6"}},
		{"?or( ?exact-name(a0) , ?or(?exact-name(b0), ?exact-name(c++0)) )", []string{"a0", "b0", "c++0"}},
		{"?exact-name(a0)|?exact-name(b0)", []string{"a0", "b0"}},
		{"(?exact-name(a0)|?exact-name(b0))", []string{"a0", "b0"}},
		{"~prequired|~pimportant", nil},
		{"?name(^a)", nil},
		{"!?exact-name(a0)", nil},
		{"?exact-name(A0)", nil},
		{"?exact-name(a0", nil},
		{"?or(?exact-name(a0)", nil},
		{"?or()", nil},
		{"?exact-name(a0) trailing", nil},
		{strings.Repeat("?or(", 40) + "?exact-name(a0)" + strings.Repeat(")", 40), nil},
	}
	for _, tt := range tests {
		got, err := ParseIncludePattern(tt.pattern)
		if tt.want == nil {
			var ue *usage.Error
			if !errors.As(err, &ue) || ue.Option != "--include" || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: %v, want a one-line usage error naming --include", tt.pattern, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %q, %v; want %q", tt.pattern, got, err, tt.want)
		}
	}
}

func FuzzParseSourcesList(f *testing.F) {
	f.Add([]byte("deb [arch=amd64] http://m/debian bookworm main\n"), "")
	f.Add([]byte("Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n"), Deb822)
	f.Add([]byte("deb-src http://m/d sid main\n"), OneLine)
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		srcs, err := ParseSourcesList(data, format, "f")
		if err != nil {
			if !usage.Is(err) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		if len(srcs) == 0 || len(srcs) > maxSourceEntries {
			t.Fatalf("%d entries", len(srcs))
		}
		for _, s := range srcs {
			// Each entry reads back as the MIRROR argument it becomes.
			back, err := ParseSourceArg(s.String(), "", []string{"main"})
			if err != nil || back.URI != s.URI || back.Suite != s.Suite {
				t.Fatalf("%q reads back as %+v, %v", s.String(), back, err)
			}
		}
	})
}

func FuzzParseIncludePattern(f *testing.F) {
	f.Add("?or(?exact-name(a0),?exact-name(b0))")
	f.Add("?exact-name(a0)|(?exact-name(b0))")
	f.Add("~prequired")
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseIncludePattern(s)
		if err != nil {
			if !usage.Is(err) {
				t.Fatalf("not a usage error: %v", err)
			}
			return
		}
		if len(names) == 0 {
			t.Fatalf("%q selects nothing and no error", s)
		}
		for _, n := range names {
			if !validPackageName(n) || !strings.Contains(s, n) {
				t.Fatalf("%q gives %q", s, n)
			}
		}
	})
}
