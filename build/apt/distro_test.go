package apt

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"nroot/internal/fetch"
)

func TestSuiteDistribution(t *testing.T) {
	tests := []struct{ suite, want string }{
		{"bookworm", Debian},
		{"trixie-security", Debian},
		{"stable", Debian},
		{"sid", Debian},
		{"noble", Ubuntu},
		{"jammy-updates", Ubuntu},
		{"Noble", Ubuntu},
		{"buster/updates", Debian},
		{"kali-rolling", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := SuiteDistribution(tt.suite); got != tt.want {
			t.Errorf("SuiteDistribution(%q) = %q, want %q", tt.suite, got, tt.want)
		}
	}
}

func TestCodenameFor(t *testing.T) {
	tests := []struct{ name, codename, suite, asked, want string }{
		{"debian pocket has its own codename", "bookworm-updates", "stable-updates", "bookworm-updates", "bookworm-updates"},
		{"debian alias", "trixie", "stable", "stable", "trixie"},
		{"debian security alias", "trixie-security", "stable-security", "stable-security", "trixie-security"},
		{"ubuntu updates share the codename", "noble", "noble-updates", "noble-updates", "noble-updates"},
		{"ubuntu security", "jammy", "jammy-security", "jammy-security", "jammy-security"},
		{"ubuntu release", "noble", "noble", "noble", "noble"},
		{"no codename", "", "sid", "sid", "sid"},
	}
	for _, tt := range tests {
		r := &Release{Codename: tt.codename, Suite: tt.suite}
		if got := r.CodenameFor(tt.asked); got != tt.want {
			t.Errorf("%s: CodenameFor(%q) = %q, want %q", tt.name, tt.asked, got, tt.want)
		}
	}
}

// TestArchiveMismatch asks an archive that serves only one distribution's
// suites for the other's, and expects one line naming both.
func TestArchiveMismatch(t *testing.T) {
	serving := func(suites ...string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, s := range suites {
				if strings.HasPrefix(r.URL.Path, "/dists/"+s+"/") {
					w.Write([]byte("Origin: x\n"))
					return
				}
			}
			http.NotFound(w, r)
		}))
	}
	debian, ubuntu, other := serving("sid", "bookworm"), serving("noble", "jammy"), serving("kali-rolling")
	defer debian.Close()
	defer ubuntu.Close()
	defer other.Close()
	tests := []struct {
		name, suite, mirror, archive string
	}{
		{"ubuntu suite, debian mirror", "noble", debian.URL, Debian},
		{"debian suite, ubuntu mirror", "trixie", ubuntu.URL, Ubuntu},
		{"ubuntu suite, unknown mirror", "jammy", other.URL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Fetcher: fetch.NewFetcher(t.TempDir())}
			o.Fetcher.Retries = 0
			_, err := Resolve(context.Background(), Config{Suite: tt.suite, Mirrors: []string{tt.mirror}}, o)
			var am *ArchiveMismatchError
			if !errors.As(err, &am) {
				t.Fatalf("err = %v, want an ArchiveMismatchError", err)
			}
			if am.Archive != tt.archive || am.Want != SuiteDistribution(tt.suite) {
				t.Errorf("archive %q want %q, distribution %q", am.Archive, tt.archive, am.Want)
			}
			msg := err.Error()
			for _, w := range []string{tt.suite, tt.mirror, "mirror URL", am.Want} {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not name %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
		})
	}
}
