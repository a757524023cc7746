package main

import (
	"slices"
	"strings"
	"testing"

	"nroot/build/rootfs"
)

func TestExpandAbbrev(t *testing.T) {
	root := newRoot()
	for _, tc := range []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{[]string{"bootstrap", "--comp=main", "bookworm"}, []string{"bootstrap", "--components=main", "bookworm"}, ""},
		{[]string{"bootstrap", "--vari", "minbase"}, []string{"bootstrap", "--variant", "minbase"}, ""},
		// A value is never read as an option, though it starts with --.
		{[]string{"bootstrap", "--incl", "--comp"}, []string{"bootstrap", "--include", "--comp"}, ""},
		{[]string{"bootstrap", "--", "--comp"}, []string{"bootstrap", "--", "--comp"}, ""},
		{[]string{"bootstrap", "--nosuch"}, []string{"bootstrap", "--nosuch"}, ""},
		{[]string{"bootstrap", "-", "x"}, []string{"bootstrap", "-", "x"}, ""},
		{[]string{"bootstrap", "--s"}, nil, "option --s is ambiguous"},
		{[]string{"bootstrap", "--=x"}, []string{"bootstrap", "--=x"}, ""},
		// Two spellings of one option are one fit, as in Getopt::Long.
		{[]string{"bootstrap", "--hook-di", "d"}, []string{"bootstrap", "--hook-directory", "d"}, ""},
		{[]string{"bootstrap", "--logf=x"}, []string{"bootstrap", "--log=x"}, ""},
		{[]string{"bootstrap", "--ver"}, nil, "it could be --verbose, --version"},
		// Only commands that take abbreviations get them.
		{[]string{"resolve", "--comp=main"}, []string{"resolve", "--comp=main"}, ""},
	} {
		got, err := expandAbbrev(root, tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}

// FuzzExpandAbbrev: any arguments give the same number back, each the
// same or the option its prefix names, spelled out, or one line of error.
func FuzzExpandAbbrev(f *testing.F) {
	root := newRoot()
	f.Add("bootstrap\x00--comp=main\x00--vari\x00minbase\x00bookworm")
	f.Add("bootstrap\x00--s\x00--\x00--x")
	f.Add("bootstrap\x00--=\x00--incl")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		got, err := expandAbbrev(root, args)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of more than one line: %q", err)
			}
			return
		}
		if len(got) != len(args) {
			t.Fatalf("%q became %q", args, got)
		}
		for i, a := range args {
			if got[i] == a {
				continue
			}
			name, value, hasValue := strings.Cut(a[2:], "=")
			gname, gvalue, ghasValue := strings.Cut(got[i][2:], "=")
			if !strings.HasPrefix(a, "--") || gname == "" || name == "" || value != gvalue || hasValue != ghasValue {
				t.Fatalf("%q became %q", a, got[i])
			}
		}
	})
}

func TestNoValidUntil(t *testing.T) {
	for opt, want := range map[string]bool{
		`Acquire::Check-Valid-Until "false"`:  true,
		`Acquire::Check-Valid-Until "false";`: true,
		`acquire::check-valid-until=0`:        true,
		`Acquire::Check-Valid-Until "true"`:   false,
		`Acquire::Check-Date "false"`:         false,
		`/etc/apt/apt.conf.d/99snapshot`:      false,
	} {
		if got := noValidUntil([]string{opt}); got != want {
			t.Errorf("%s: %v, want %v", opt, got, want)
		}
	}
}

// TestHookVerbosity: MMDEBSTRAP_VERBOSITY as mmdebstrap sets it, 3 with
// --debug, at which mmdebstrap's own hook scripts trace with set -x.
func TestHookVerbosity(t *testing.T) {
	for _, tc := range []struct {
		g     globals
		debug bool
		want  int
	}{
		{globals{quiet: true}, false, 0},
		{globals{}, false, 1},
		{globals{verbose: true}, false, 2},
		{globals{verbose: true}, true, 3},
	} {
		var o rootfs.Options
		hookRun(&o, &tc.g, "root", tc.debug)
		if o.Verbosity != tc.want {
			t.Errorf("%+v debug=%v: verbosity %d, want %d", tc.g, tc.debug, o.Verbosity, tc.want)
		}
	}
}
