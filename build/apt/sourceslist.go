package apt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"nroot/build/hostapt"
	"nroot/format/control"
	"nroot/internal/usage"
)

// MaxSourcesList bounds a sources.list given as MIRROR or on stdin.
const MaxSourcesList = 1 << 20

// maxSourceEntries bounds the entries one sources.list may give.
const maxSourceEntries = 256

// Sources-list formats, as mmdebstrap names them.
const (
	OneLine = "one-line"
	Deb822  = "deb822"
)

// ignoredSourceOptions are the options of a source entry nroot accepts
// and does not use: it verifies against its bundled keyrings or
// --keyring, and takes the architectures from --architectures.
var ignoredSourceOptions = map[string]bool{
	"signed-by": true, "arch": true, "architectures": true, "lang": true, "languages": true,
	"target": true, "targets": true, "pdiffs": true, "by-hash": true,
}

// GuessSourcesFormat says whether a sources.list is one-line or deb822,
// as mmdebstrap guesses it: the first line starting "deb " or "deb-src "
// says one-line, the first "Field:" line deb822; "" when neither is seen.
func GuessSourcesFormat(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "deb ") || strings.HasPrefix(line, "deb-src ") {
			return OneLine
		}
		if i := strings.IndexByte(line, ':'); i > 0 && !strings.ContainsAny(line[:i], "# \t") {
			return Deb822
		}
	}
	return ""
}

// ParseSourcesList reads a sources.list given by the user (name says
// where from, for errors): one-line or deb822 as format says, or
// guessed when format is "". It returns its enabled "deb" entries;
// deb-src entries are skipped. An entry nroot cannot follow (a flat
// repository, an option such as trusted=yes) is a usage error naming
// name and what to give instead.
func ParseSourcesList(data []byte, format, name string) ([]*Source, error) {
	if len(data) > MaxSourcesList {
		return nil, &usage.Error{Option: "MIRROR", Value: name, Why: fmt.Sprintf("a sources.list of more than %d bytes", MaxSourcesList)}
	}
	if format == "" {
		format = GuessSourcesFormat(data)
	}
	var out []*Source
	var err error
	switch format {
	case OneLine:
		out, err = parseOneLine(data, name)
	case Deb822:
		out, err = parseDeb822(data, name)
	default:
		return nil, &usage.Error{Option: "MIRROR", Value: name, Why: "cannot tell the sources.list format: give one-line \"deb URI SUITE COMPONENT...\" lines, or deb822 stanzas (Types:, URIs:, Suites:, Components:)"}
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &usage.Error{Option: "MIRROR", Value: name, Why: "the sources.list has no enabled deb entry (deb-src and Enabled: no entries are skipped): add one"}
	}
	return out, nil
}

func parseOneLine(data []byte, name string) ([]*Source, error) {
	var out []*Source
	for n, line := range strings.Split(string(data), "\n") {
		where := fmt.Sprintf("%s:%d", name, n+1)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "deb-src" {
			continue
		}
		if f[0] != "deb" {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "a one-line entry starts with deb or deb-src"}
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			var opts []string
			closed := false
			for len(f) > 0 && !closed {
				o := f[0]
				f = f[1:]
				closed = strings.HasSuffix(o, "]")
				o = strings.TrimSuffix(strings.TrimPrefix(o, "["), "]")
				if o != "" {
					opts = append(opts, o)
				}
			}
			if !closed {
				return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "[options] not closed with ]"}
			}
			for _, o := range opts {
				if err := checkSourceOption(o, where); err != nil {
					return nil, err
				}
			}
		}
		if len(f) < 2 {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "expected \"deb URI SUITE COMPONENT...\""}
		}
		s, err := newSource(f[0], f[1], f[2:], where)
		if err != nil {
			return nil, err
		}
		if out = append(out, s); len(out) > maxSourceEntries {
			return nil, &usage.Error{Option: "MIRROR", Value: name, Why: fmt.Sprintf("more than %d entries", maxSourceEntries)}
		}
	}
	return out, nil
}

func parseDeb822(data []byte, name string) ([]*Source, error) {
	cr := control.NewReader(bytes.NewReader(data))
	cr.Comments = true
	var out []*Source
	for n := 1; ; n++ {
		p, err := cr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		where := fmt.Sprintf("%s stanza %d", name, n)
		if err != nil {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "not a deb822 sources stanza (one-line \"deb URI SUITE COMPONENT...\" entries go in a .list file)", Err: err}
		}
		if strings.EqualFold(strings.TrimSpace(p.Get("Enabled")), "no") {
			continue
		}
		types := strings.Fields(p.Get("Types"))
		if len(types) == 0 {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "no Types: field (give Types: deb)"}
		}
		for _, field := range []string{"Trusted", "Allow-Insecure", "Allow-Weak", "Allow-Downgrade-To-Insecure", "Check-Valid-Until", "Valid-Until-Min", "Valid-Until-Max", "Check-Date", "Date-Max-Future"} {
			if p.Get(field) != "" {
				return nil, &usage.Error{Option: "MIRROR", Value: where, Why: field + ": nroot checks every archive it reads; use --keyring, --no-check-valid-until or --allow-older-release"}
			}
		}
		if !strings.Contains(" "+strings.Join(types, " ")+" ", " deb ") {
			continue // deb-src only
		}
		uris, suites, comps := strings.Fields(p.Get("URIs")), strings.Fields(p.Get("Suites")), strings.Fields(p.Get("Components"))
		if len(uris) == 0 || len(suites) == 0 {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "a deb stanza needs URIs: and Suites:"}
		}
		for _, u := range uris {
			for _, s := range suites {
				src, err := newSource(u, s, comps, where)
				if err != nil {
					return nil, err
				}
				if out = append(out, src); len(out) > maxSourceEntries {
					return nil, &usage.Error{Option: "MIRROR", Value: name, Why: fmt.Sprintf("more than %d entries", maxSourceEntries)}
				}
			}
		}
	}
}

func checkSourceOption(o, where string) error {
	k, _, _ := strings.Cut(o, "=")
	k = strings.TrimRight(k, "+-")
	if ignoredSourceOptions[strings.ToLower(k)] {
		return nil
	}
	return &usage.Error{Option: "MIRROR", Value: where, Why: fmt.Sprintf("option %q is not supported; nroot checks every archive against its keyrings (use --keyring) and takes --architectures", o)}
}

func newSource(uri, suite string, comps []string, where string) (*Source, error) {
	if err := hostapt.CheckURI(uri); err != nil {
		return nil, &usage.Error{Option: "MIRROR", Value: where, Why: "give an http://, https://, file:// or copy:// URI", Err: err}
	}
	if strings.HasSuffix(suite, "/") {
		return nil, &usage.Error{Option: "MIRROR", Value: where, Why: fmt.Sprintf("suite %q is a flat repository, which nroot does not read; give a suite with dists/", suite)}
	}
	if !suiteToken(suite) {
		return nil, &usage.Error{Option: "MIRROR", Value: where, Why: fmt.Sprintf("suite %q is not a suite's name", suite)}
	}
	for _, c := range comps {
		if !token.MatchString(c) {
			return nil, &usage.Error{Option: "MIRROR", Value: where, Why: fmt.Sprintf("component %q is not a component's name", c)}
		}
	}
	return &Source{URI: uri, Suite: suite, Components: comps}, nil
}

// suiteToken is what a suite in a sources.list may be: a name as the
// archive's dists/ has it (buster/updates included).
func suiteToken(s string) bool {
	if s == "" || len(s) > 100 || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "/") || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".+_~-/", r)) {
			return false
		}
	}
	return true
}
