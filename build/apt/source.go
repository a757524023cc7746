package apt

import (
	"fmt"
	"strings"

	"nroot/build/hostapt"
)

// Source is one APT source: a mirror URI, a suite and its components.
type Source struct {
	URI        string   `json:"uri"`
	Suite      string   `json:"suite"`
	Components []string `json:"components"`
}

// String renders the source as a one-line sources.list entry.
func (s *Source) String() string {
	return fmt.Sprintf("deb %s %s %s", s.URI, s.Suite, strings.Join(s.Components, " "))
}

// ParseSourceArg reads a MIRROR argument the way mmdebstrap does: a URI,
// or a one-line "deb URI SUITE COMPONENT..." entry. A bare URI takes the
// suite and components given.
func ParseSourceArg(arg, suite string, components []string) (*Source, error) {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return nil, fmt.Errorf("mirror: empty argument")
	}
	if f[0] == "deb" {
		f = f[1:]
		// Options such as [arch=amd64 signed-by=...] are not supported.
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			return nil, fmt.Errorf("mirror %q: [options] in source lines are not supported; use --keyring and --architectures", arg)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("mirror %q: expected \"deb URI SUITE [COMPONENT...]\"", arg)
		}
		if err := hostapt.CheckURI(f[0]); err != nil {
			return nil, err
		}
		comps := f[2:]
		if len(comps) == 0 {
			comps = components
		}
		return &Source{URI: f[0], Suite: f[1], Components: comps}, nil
	}
	if len(f) != 1 {
		return nil, fmt.Errorf("mirror %q: expected a URI or a \"deb URI SUITE COMPONENT...\" line", arg)
	}
	if err := hostapt.CheckURI(f[0]); err != nil {
		return nil, err
	}
	return &Source{URI: f[0], Suite: suite, Components: components}, nil
}

// securityFor guesses the security archive beside a Debian mirror: the
// archive convention is a sibling directory named debian-security.
func securityFor(mirror string) string {
	m := strings.TrimRight(mirror, "/")
	if strings.HasSuffix(m, "/debian") {
		return m + "-security"
	}
	return ""
}
