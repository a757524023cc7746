package apt

import (
	"slices"
	"strings"
	"testing"
)

func universe(t *testing.T, archs []string, packages string) *Universe {
	t.Helper()
	u := NewUniverse(archs)
	if _, err := u.Add(&Index{Source: &Source{URI: "http://mirror.invalid/debian", Suite: "test"}}, strings.NewReader(packages)); err != nil {
		t.Fatal(err)
	}
	return u
}

// stanza builds a Packages stanza from "Field: value" lines.
func stanza(name, version string, fields ...string) string {
	s := "Package: " + name + "\nVersion: " + version + "\n"
	arch := "amd64"
	for _, f := range fields {
		if strings.HasPrefix(f, "Architecture:") {
			arch = ""
		}
	}
	if arch != "" {
		s += "Architecture: " + arch + "\n"
	}
	for _, f := range fields {
		s += f + "\n"
	}
	return s + "Filename: pool/" + name + ".deb\nSize: 1\nSHA256: " + strings.Repeat("0", 64) + "\n\n"
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name     string
		packages string
		archs    []string
		req      Request
		want     string // sorted names, or the error text
		wantErr  bool
	}{
		{
			name: "first installable alternative",
			packages: stanza("a", "1", "Depends: missing | c | b") +
				stanza("b", "1") + stanza("c", "1"),
			req:  Request{Variant: "custom", Include: []string{"a"}},
			want: "a c",
		},
		{
			name: "alternative already selected wins",
			packages: stanza("a", "1", "Depends: c | b") + stanza("z", "1", "Depends: b") +
				stanza("b", "1") + stanza("c", "1"),
			req:  Request{Variant: "custom", Include: []string{"a", "z", "b"}},
			want: "a b z",
		},
		{
			name: "versioned constraint skips too-old alternative",
			packages: stanza("a", "1", "Depends: b (>= 2) | c") +
				stanza("b", "1.5") + stanza("c", "1"),
			req:  Request{Variant: "custom", Include: []string{"a"}},
			want: "a c",
		},
		{
			name:     "highest version is the candidate",
			packages: stanza("a", "1", "Depends: b (>= 1:0)") + stanza("b", "2") + stanza("b", "1:0.5") + stanza("b", "10"),
			req:      Request{Variant: "custom", Include: []string{"a"}},
			want:     "a b=1:0.5",
		},
		{
			name: "virtual package with one provider",
			packages: stanza("a", "1", "Depends: mail-transport-agent") +
				stanza("exim4", "4", "Provides: mail-transport-agent"),
			req:  Request{Variant: "custom", Include: []string{"a"}},
			want: "a exim4",
		},
		{
			name: "versioned provides meets versioned dependency",
			packages: stanza("a", "1", "Depends: libfoo (>= 2)") +
				stanza("old-foo", "1", "Provides: libfoo") +
				stanza("new-foo", "1", "Provides: libfoo (= 3)"),
			req:  Request{Variant: "custom", Include: []string{"a"}},
			want: "a new-foo",
		},
		{
			name: "provider by priority",
			packages: stanza("a", "1", "Depends: awk") +
				stanza("gawk", "1", "Provides: awk", "Priority: optional") +
				stanza("mawk", "1", "Provides: awk", "Priority: required"),
			req:  Request{Variant: "custom", Include: []string{"a"}},
			want: "a mawk",
		},
		{
			name: "conflicting alternative is skipped",
			packages: stanza("a", "1", "Depends: b | c") + stanza("d", "1", "Conflicts: b") +
				stanza("b", "1") + stanza("c", "1"),
			req:  Request{Variant: "custom", Include: []string{"d", "a"}},
			want: "a c d",
		},
		{
			name:     "breaks between seeds is refused",
			packages: stanza("a", "1") + stanza("b", "1", "Breaks: a (<< 2)"),
			req:      Request{Variant: "custom", Include: []string{"a", "b"}},
			want:     "b 1 conflicts with a 1",
			wantErr:  true,
		},
		{
			name:     "unsatisfiable version prints the chain",
			packages: stanza("top", "1", "Depends: a") + stanza("a", "1", "Depends: b (>= 2)") + stanza("b", "1.5"),
			req:      Request{Variant: "custom", Include: []string{"top"}},
			want:     "a depends on b (>= 2) but only 1.5 is available (via top -> a)",
			wantErr:  true,
		},
		{
			name:     "missing package",
			packages: stanza("a", "1", "Depends: nothere"),
			req:      Request{Variant: "custom", Include: []string{"a"}},
			want:     "a depends on nothere but it is not available",
			wantErr:  true,
		},
		{
			name: "arch qualifiers and Multi-Arch",
			packages: stanza("a", "1", "Depends: perl:any, python3:any, tool") +
				stanza("perl", "1", "Multi-Arch: allowed") +
				stanza("python3", "1", "Multi-Arch: allowed") +
				stanza("tool", "1", "Architecture: i386", "Multi-Arch: foreign"),
			archs: []string{"amd64", "i386"},
			req:   Request{Variant: "custom", Include: []string{"a"}},
			want:  "a perl python3 tool:i386",
		},
		{
			name: "foreign arch without Multi-Arch does not satisfy",
			packages: stanza("a", "1", "Depends: lib") +
				stanza("lib", "1", "Architecture: i386"),
			archs:   []string{"amd64", "i386"},
			req:     Request{Variant: "custom", Include: []string{"a"}},
			want:    "no architecture of it can satisfy a:amd64=1",
			wantErr: true,
		},
		{
			name: "essential, then priority, as mmdebstrap stages",
			packages: stanza("dash", "1", "Essential: yes", "Priority: required") +
				stanza("mawk", "1", "Priority: required", "Provides: awk") +
				stanza("base", "1", "Essential: yes", "Depends: awk") +
				stanza("gawk", "1", "Priority: optional", "Provides: awk") +
				stanza("vim", "1", "Priority: important") +
				stanza("ed", "1", "Priority: standard"),
			req:  Request{Variant: "minbase"},
			want: "base dash mawk",
		},
		{
			name: "standard variant",
			packages: stanza("dash", "1", "Essential: yes", "Priority: required") +
				stanza("vim", "1", "Priority: important") +
				stanza("ed", "1", "Priority: standard") + stanza("x", "1", "Priority: optional"),
			req:  Request{Variant: "standard"},
			want: "dash ed vim",
		},
		{
			name: "exclude drops a seed and an alternative",
			packages: stanza("a", "1", "Depends: b | c") + stanza("b", "1") + stanza("c", "1") +
				stanza("vim", "1", "Priority: important"),
			req:  Request{Variant: "important", Include: []string{"a"}, Exclude: []string{"b", "vim"}},
			want: "a c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archs := tt.archs
			if archs == nil {
				archs = []string{"amd64"}
			}
			res, err := universe(t, archs, tt.packages).Resolve(tt.req)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(res.Packages); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// describe lists packages sorted, with the version when more than one
// exists and the architecture when foreign.
func describe(ps []*Package) string {
	var out []string
	for _, p := range ps {
		s := p.Name
		if p.Architecture != "amd64" && p.Architecture != "all" {
			s += ":" + p.Architecture
		}
		if strings.Contains(p.Version, ":") {
			s += "=" + p.Version
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestResolveIsDeterministic(t *testing.T) {
	pk := stanza("a", "1", "Depends: v") + stanza("p1", "1", "Provides: v") + stanza("p2", "1", "Provides: v") + stanza("p3", "1", "Provides: v")
	first := describe(mustResolve(t, universe(t, []string{"amd64"}, pk)).Packages)
	for range 20 {
		if got := describe(mustResolve(t, universe(t, []string{"amd64"}, pk)).Packages); got != first {
			t.Fatalf("run gave %q, first gave %q", got, first)
		}
	}
}

func mustResolve(t *testing.T, u *Universe) *Resolution {
	t.Helper()
	res, err := u.Resolve(Request{Variant: "custom", Include: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParseProvides(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"awk", "awk="},
		{"libfoo (= 1.2-3), mail-transport-agent", "libfoo=1.2-3 mail-transport-agent="},
		{"python3-foo:any (= 2), x (>= 1)", "python3-foo=2 x="},
		{" , ,", ""},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range parseProvides(tt.in) {
			got = append(got, p.name+"="+p.version)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("parseProvides(%q) = %q, want %q", tt.in, g, tt.want)
		}
	}
}

func TestMergedUsrPrefersUsrIsMerged(t *testing.T) {
	pk := stanza("init-system-helpers", "1", "Essential: yes", "Depends: usrmerge | usr-is-merged") +
		stanza("usrmerge", "1", "Depends: perl") + stanza("perl", "1") + stanza("usr-is-merged", "1")
	for _, tt := range []struct {
		merged bool
		want   string
	}{{false, "init-system-helpers perl usrmerge"}, {true, "init-system-helpers usr-is-merged"}} {
		res, err := universe(t, []string{"amd64"}, pk).Resolve(Request{Variant: "essential", MergedUsr: tt.merged})
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(res.Packages); got != tt.want {
			t.Errorf("MergedUsr=%v: got %q, want %q", tt.merged, got, tt.want)
		}
	}
}
