package deb

import (
	"strings"
	"testing"
	"time"
)

func TestFnmatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"/usr/share/doc/*", "/usr/share/doc/bash/copyright", true}, // '*' crosses '/'
		{"/usr/share/doc/*", "/usr/share/doc", false},
		{"/usr/share/doc/*", "/usr/share/doc/", true},
		{"/usr/*/READ*", "/usr/share/doc/package/README", true}, // dpkg(1)'s example
		{"/usr/share/locale/*", "/usr/share/locale/de/LC_MESSAGES/sed.mo", true},
		{"/usr/share/man/man?/*", "/usr/share/man/man1/sed.1.gz", true},
		{"/usr/share/man/man?/*", "/usr/share/man/man10/x", false},
		{"/usr/share/locale/[a-d]*", "/usr/share/locale/de", true},
		{"/usr/share/locale/[!a-d]*", "/usr/share/locale/de", false},
		{"/usr/share/locale/[^a-d]*", "/usr/share/locale/fr", true},
		{"/x/[]]", "/x/]", true},
		{"/x/[!]]", "/x/a", true},
		{"/x/[[:digit:]]*", "/x/1a", true},
		{"/x/[[:digit:]]*", "/x/a1", false},
		{"/x/[", "/x/[", true}, // an unclosed '[' is itself
		{"/x/\\*", "/x/*", true},
		{"/x/\\*", "/x/a", false},
		{"/x/a\\", "/x/a\\", true},
		{"*", "", true},
		{"", "", true},
		{"", "/a", false},
		{"/a*b*c", "/aXbYc", true},
		{"/a*b*c", "/aXbYcZ", false},
		{"/a?c", "/abc", true},
		{"/a?c", "/ac", false},
	}
	for _, tt := range tests {
		if got := fnmatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// TestPathFilter: the last matching pattern wins, and directories an
// include may need are kept, with the usual doc, man and locale set.
func TestPathFilter(t *testing.T) {
	var f PathFilter
	for _, o := range []string{
		"path-exclude=/usr/share/doc/*",
		"--path-include=/usr/share/doc/*/copyright",
		"path-exclude /usr/share/man/*", // not an option: no '='
		"path-exclude=/usr/share/locale/*",
		"path-include=/usr/share/locale/locale.alias",
	} {
		err := f.AddOption(o)
		if strings.Contains(o, " ") {
			if err == nil {
				t.Errorf("%q: accepted", o)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", o, err)
		}
	}
	if err := f.AddOption("force-unsafe-io"); err != ErrNotPathOption {
		t.Errorf("force-unsafe-io: %v, want ErrNotPathOption", err)
	}
	if err := f.Add("usr/share/*", false); err == nil {
		t.Error("a relative pattern was accepted")
	}
	tests := []struct {
		path string
		dir  bool
		skip bool
	}{
		{"/usr/share/doc", true, false},
		{"/usr/share/doc/sed", true, false}, // kept for its copyright
		{"/usr/share/doc/sed/copyright", false, false},
		{"/usr/share/doc/sed/NEWS.gz", false, true},
		{"/usr/share/doc/sed/examples", true, false}, // dpkg errs on keeping directories
		{"/usr/share/doc/libfoo", false, true},       // a file where a directory might be
		{"/usr/share/man/man1/sed.1.gz", false, false},
		{"/usr/share/locale/de/LC_MESSAGES/sed.mo", false, true},
		{"/usr/share/locale/de", true, true}, // the include names one file: no wildcard, no prefix
		{"/usr/share/locale/locale.alias", false, false},
		{"/usr/bin/sed", false, false},
	}
	for _, tt := range tests {
		if got := f.Skip(tt.path, tt.dir); got != tt.skip {
			t.Errorf("Skip(%q, dir=%v) = %v, want %v", tt.path, tt.dir, got, tt.skip)
		}
	}
	// An include naming one file keeps its parents, as dpkg makes them.
	var one PathFilter
	one.AddOption("path-exclude=/usr/share/doc/*")
	one.AddOption("path-include=/usr/share/doc/dpkg/copyright")
	for _, tt := range []struct {
		path string
		dir  bool
		skip bool
	}{
		{"/usr/share/doc", true, false},
		{"/usr/share/doc/dpkg", true, false},
		{"/usr/share/doc/dpkg/copyright", false, false},
		{"/usr/share/doc/dpkg/changelog.gz", false, true},
		{"/usr/share/doc/dpkg-dev", true, true},
		{"/usr/share/doc/dp", true, true},
	} {
		if got := one.Skip(tt.path, tt.dir); got != tt.skip {
			t.Errorf("include of one file: Skip(%q, dir=%v) = %v, want %v", tt.path, tt.dir, got, tt.skip)
		}
	}
	var none *PathFilter
	if none.Skip("/usr/share/doc/x", false) {
		t.Error("a nil filter skipped a path")
	}
}

func FuzzFnmatch(f *testing.F) {
	f.Add("/usr/share/doc/*/copyright", "/usr/share/doc/sed/copyright")
	f.Add("[[:alpha:]!]*\\", "a!b")
	f.Add(strings.Repeat("*a", 30)+"b", strings.Repeat("a", 200))
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 512 || len(name) > 512 {
			return
		}
		start := time.Now()
		got := fnmatch(pattern, name)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("fnmatch(%q, %q) took %v", pattern, name, d)
		}
		// A pattern with no special bytes matches only itself.
		if !strings.ContainsAny(pattern, `*?[\`) && got != (pattern == name) {
			t.Fatalf("fnmatch(%q, %q) = %v", pattern, name, got)
		}
		// "*" followed by the name's own suffix always matches.
		if !strings.ContainsAny(name, `*?[\`) && !fnmatch("*"+name, name) {
			t.Fatalf("fnmatch(%q, %q) = false", "*"+name, name)
		}
	})
}
