package apt

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"nroot/build/lockfile"
)

func TestParseSourceArg(t *testing.T) {
	tests := []struct {
		arg, want, wantErr string
	}{
		{arg: "http://m.invalid/debian", want: "deb http://m.invalid/debian trixie main"},
		{arg: "deb http://m.invalid/debian trixie-updates main contrib", want: "deb http://m.invalid/debian trixie-updates main contrib"},
		{arg: "deb https://m.invalid/ubuntu noble", want: "deb https://m.invalid/ubuntu noble main"},
		{arg: "ftp://m.invalid/debian", wantErr: "not an http"},
		{arg: "deb [arch=amd64] http://m.invalid/debian trixie main", wantErr: "not supported"},
		{arg: "deb http://m.invalid/debian", wantErr: "expected"},
		{arg: "a b", wantErr: "expected a URI"},
	}
	for _, tt := range tests {
		s, err := ParseSourceArg(tt.arg, "trixie", []string{"main"})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.arg, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s.String() != tt.want {
			t.Errorf("%q: got %v, %v; want %s", tt.arg, s, err, tt.want)
		}
	}
}

func TestSecurityFor(t *testing.T) {
	if got := securityFor("http://m.invalid/debian/"); got != "http://m.invalid/debian-security" {
		t.Errorf("securityFor = %q", got)
	}
}

func TestLockRoundTrip(t *testing.T) {
	u := universe(t, []string{"amd64"}, stanza("a", "1", "Depends: b")+stanza("b", "2"))
	u.Dists = []*Dist{{Source: &Source{URI: "http://mirror.invalid/debian", Suite: "test", Components: []string{"main"}},
		Release: &Release{Origin: "Debian", Codename: "test"}, Keyring: mustNamed(t, "debian"), InReleaseSHA256: strings.Repeat("a", 64)}}
	for _, p := range u.byName {
		p[0].Origin.Source = u.Dists[0].Source
	}
	res, err := u.Resolve(Request{Variant: "custom", Include: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	plan := NewPlan(u, res, Config{Variant: "custom", Include: []string{"a"}})
	var buf bytes.Buffer
	if err := lockfile.Write(&buf, plan); err != nil {
		t.Fatal(err)
	}
	back, err := lockfile.Read(bytes.NewReader(buf.Bytes()), "test.lock")
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Packages) != 2 || back.Packages[0].Name != "a" || back.Packages[1].Reason != "a" || back.Packages[0].URL() != "http://mirror.invalid/debian/pool/a.deb" {
		t.Fatalf("read back %+v", back.Packages)
	}
	bad := []struct{ from, to, wantErr string }{
		{`"lock_version": 1`, `"lock_version": 7`, "lock_version 7"},
		{`"filename": "pool/a.deb"`, `"filename": "../../etc/passwd"`, "relative path inside the mirror"},
		{`"sha256": "` + strings.Repeat("0", 64), `"sha256": "` + strings.Repeat("z", 64), "not a SHA256"},
		{"\"uri\": \"http://mirror.invalid/debian\",\n      \"size\"", "\"uri\": \"gopher://mirror.invalid/debian\",\n      \"size\"", "not an http"},
		{`"variant"`, `"surprise": 1, "variant"`, "unknown field"},
	}
	for _, b := range bad {
		text := strings.Replace(buf.String(), b.from, b.to, 1)
		if text == buf.String() {
			t.Fatalf("test did not change the lock: %s", b.from)
		}
		if _, err := lockfile.Read(strings.NewReader(text), "test.lock"); err == nil || !strings.Contains(err.Error(), b.wantErr) {
			t.Errorf("%s: err = %v, want %q", b.to, err, b.wantErr)
		}
	}
}

// Sources takes source lines as they are, without the network, and
// refuses a configuration it cannot use. (One bare URL is opened to add
// its pockets: TestPockets.)
func TestSourcesFromArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
		err  string
	}{
		{"one-line entries", Config{Suite: "trixie", Components: []string{"main", "contrib"}, Mirrors: []string{
			"deb http://mirror.invalid/debian trixie main contrib", "deb http://mirror.invalid/debian-security trixie-security main"}},
			[]string{"deb http://mirror.invalid/debian trixie main contrib", "deb http://mirror.invalid/debian-security trixie-security main"}, ""},
		{"no suite", Config{Mirrors: []string{"http://mirror.invalid/debian"}}, nil, "no suite"},
		{"empty mirror", Config{Suite: "trixie", Mirrors: []string{" "}}, nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcs, err := Sources(context.Background(), tc.cfg, Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range srcs {
				got = append(got, s.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
