package image

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"nroot/internal/fsroot"
)

func TestPackageName(t *testing.T) {
	tests := []struct {
		arg, want string
		ok        bool
	}{
		{"hello", "hello", true},
		{"hello=2.10-3", "hello", true},
		{"hello/bookworm-backports", "hello", true},
		{"libc6:i386", "libc6", true},
		{"libc6:i386=2.36-9", "libc6", true},
		{"linux-image-6.1.0-57-amd64", "linux-image-6.1.0-57-amd64", true},
		{"g++", "", false},         // apt may read it as "install g"
		{"exim4-", "", false},      // remove
		{"?name(foo)", "", false},  // a pattern
		{"./local.deb", "", false}, // a file
		{"Hello", "", false},       // not a Debian package name
		{"x", "", false},           // too short
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := packageName(tt.arg)
		if got != tt.want || ok != tt.ok {
			t.Errorf("packageName(%q) = %q, %v; want %q, %v", tt.arg, got, ok, tt.want, tt.ok)
		}
	}
}

// TestImageSourcesComplete: the early check reads every source apt
// would, or says it cannot (errIncomplete), never a part of them.
func TestImageSourcesComplete(t *testing.T) {
	many := strings.Repeat("deb http://h/debian bookworm main\n", maxSources+1)
	tests := []struct {
		name  string
		files map[string]string
		n     int
		err   error
	}{
		{"one-line and deb822", map[string]string{
			"etc/apt/sources.list":                 "deb http://h/debian bookworm main\n# deb http://h/x y z\ndeb-src http://h/debian bookworm main\n",
			"etc/apt/sources.list.d/sec.sources":   "Types: deb\nURIs: http://h/sec\nSuites: bookworm-security bookworm-updates\nComponents: main\n",
			"etc/apt/sources.list.d/off.sources":   "Types: deb\nURIs: http://h/off\nSuites: x\nComponents: main\nEnabled: no\n",
			"etc/apt/sources.list.d/extra.list":    "deb http://h/extra bookworm main contrib\n",
			"etc/apt/sources.list.d/ignored.other": "deb [signed-by=/k] http://h/y z main\n",
		}, 4, nil},
		{"a one-line entry with options", map[string]string{"etc/apt/sources.list": "deb [signed-by=/k] http://h/debian bookworm main\n"}, 0, errIncomplete},
		{"a one-line entry without a suite", map[string]string{"etc/apt/sources.list": "deb http://h/debian\n"}, 0, errIncomplete},
		{"more sources than read", map[string]string{"etc/apt/sources.list": many}, 0, errIncomplete},
		{"more files than read", func() map[string]string {
			m := map[string]string{}
			for i := 0; i <= maxSourcesFiles; i++ {
				m[fmt.Sprintf("etc/apt/sources.list.d/%d.list", i)] = ""
			}
			return m
		}(), 0, errIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := fsroot.Open(fixture(t, nil, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			srcs, err := imageSources(r)
			if !errors.Is(err, tt.err) || (err == nil && len(srcs) != tt.n) {
				t.Fatalf("imageSources = %d sources, %v; want %d, %v", len(srcs), err, tt.n, tt.err)
			}
		})
	}
}
