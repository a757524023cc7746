package rootfs

import (
	"errors"
	"strings"
	"testing"
)

// TestAptoptsRefused: --aptopt lines that would change what apt resolves,
// trusts or fetches through are refused, naming the option and what to do
// instead; the others are written for apt in the image, completed with ";".
func TestAptoptsRefused(t *testing.T) {
	for _, tc := range []struct {
		opt, says string // says: "" is accepted
	}{
		{`Acquire::Retries "3"`, ""},
		{`APT::Install-Recommends "false"`, ""},
		{`Acquire::Check-Valid-Until "false"`, ""},
		{`APT::Install-Recommends "true"`, "nroot's own flags"},
		{`APT::Default-Release "trixie"`, "nroot's own flags"},
		{`Dir "/srv"`, "nroot's own flags"},
		{`Acquire::http::Proxy "http://proxy:3128"`, "http_proxy"},
		{`acquire::https::proxy::deb.example "DIRECT"`, "https_proxy"},
	} {
		c, err := newCustom(Options{AptOpts: []string{tc.opt}})
		if tc.says == "" {
			if err != nil || len(c.aptCfg) != 1 || !strings.HasSuffix(c.aptCfg[0], ";") {
				t.Errorf("%s: %v %v", tc.opt, c, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "--aptopt") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line with --aptopt and %q", tc.opt, err, tc.says)
		}
	}
}
