package apt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"nroot/control"
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
		if err := checkURI(f[0]); err != nil {
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
	if err := checkURI(f[0]); err != nil {
		return nil, err
	}
	return &Source{URI: f[0], Suite: suite, Components: components}, nil
}

func checkURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("mirror %q: not an http:// or https:// URL", s)
	}
	return nil
}

// HostEntry is one "deb" entry of the host's APT configuration.
type HostEntry struct {
	URI        string
	Suites     []string
	Components []string
	File       string
}

// HostSourceFiles are where the host's APT sources live.
var HostSourceFiles = []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list"}

// HostSources reads the host's APT sources, deb822 and one-line, keeping
// enabled "deb" entries over http(s).
func HostSources(patterns []string) ([]HostEntry, error) {
	var out []HostEntry
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var es []HostEntry
			if strings.HasSuffix(f, ".sources") {
				es, err = parseDeb822Sources(data, f)
			} else {
				es = parseOneLineSources(data, f)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, es...)
		}
	}
	return out, nil
}

func parseDeb822Sources(data []byte, file string) ([]HostEntry, error) {
	cr := control.NewReader(bytes.NewReader(data))
	cr.Comments = true
	var out []HostEntry
	for {
		p, err := cr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if !strings.Contains(" "+p.Get("Types")+" ", " deb ") || strings.EqualFold(p.Get("Enabled"), "no") {
			continue
		}
		for _, u := range strings.Fields(p.Get("URIs")) {
			if checkURI(u) != nil {
				continue
			}
			out = append(out, HostEntry{URI: u, Suites: strings.Fields(p.Get("Suites")), Components: strings.Fields(p.Get("Components")), File: file})
		}
	}
}

func parseOneLineSources(data []byte, file string) []HostEntry {
	var out []HostEntry
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 || checkURI(f[0]) != nil {
			continue
		}
		out = append(out, HostEntry{URI: f[0], Suites: []string{f[1]}, Components: f[2:], File: file})
	}
	return out
}

// isSecuritySuite says whether a suite name is a security suite.
func isSecuritySuite(s string) bool {
	return strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates")
}

// MirrorEnv is the environment variable that names the mirror.
const MirrorEnv = "NROOT_MIRROR"

// FindMirror returns the mirror to use and where it came from: the given
// one, then $NROOT_MIRROR, then the first non-security entry of the host's
// APT sources. The security mirror is the host's, when it lists one.
func FindMirror(given string, host []HostEntry) (mirror, security, from string, err error) {
	for _, e := range host {
		for _, s := range e.Suites {
			if isSecuritySuite(s) && security == "" {
				security = e.URI
			}
		}
	}
	if given != "" {
		return given, security, "command line", nil
	}
	if m := os.Getenv(MirrorEnv); m != "" {
		if err := checkURI(m); err != nil {
			return "", "", "", fmt.Errorf("%s: %w", MirrorEnv, err)
		}
		return m, security, MirrorEnv, nil
	}
	for _, e := range host {
		if len(e.Suites) > 0 && !isSecuritySuite(e.Suites[0]) {
			return e.URI, security, e.File, nil
		}
	}
	return "", "", "", fmt.Errorf("no mirror: give one as an argument (e.g. http://MIRROR/debian), set %s, or configure APT sources on this host (%s)", MirrorEnv, strings.Join(HostSourceFiles, ", "))
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
