// Package hostapt reads the build host's APT configuration: its sources
// (deb822 and one-line) and the mirror nroot uses when none is given.
package hostapt

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

	"nroot/format/control"
)

// CheckURI accepts an http:// or https:// URL with a host, or a local
// mirror as apt names one: file:///PATH (used in place) or copy:///PATH.
func CheckURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("mirror %q: not a URL: give http://HOST/PATH, https://HOST/PATH or file:///PATH", s)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host != "" {
			return nil
		}
	case "file", "copy":
		if u.Host == "" && strings.HasPrefix(u.Path, "/") && u.RawQuery == "" {
			return nil
		}
		return fmt.Errorf("mirror %q: a local mirror is %s:///ABSOLUTE/PATH", s, u.Scheme)
	}
	return fmt.Errorf("mirror %q: not an http://, https://, file:// or copy:// URL", s)
}

// Entry is one "deb" entry of the host's APT configuration.
type Entry struct {
	URI        string
	Suites     []string
	Components []string
	File       string
}

// SourceFiles are where the host's APT sources live.
var SourceFiles = []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list"}

// Sources reads the host's APT sources, deb822 and one-line, keeping
// enabled "deb" entries over http(s).
func Sources(patterns []string) ([]Entry, error) {
	var out []Entry
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var es []Entry
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

func parseDeb822Sources(data []byte, file string) ([]Entry, error) {
	cr := control.NewReader(bytes.NewReader(data))
	cr.Comments = true
	var out []Entry
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
			if CheckURI(u) != nil {
				continue
			}
			out = append(out, Entry{URI: u, Suites: strings.Fields(p.Get("Suites")), Components: strings.Fields(p.Get("Components")), File: file})
		}
	}
}

func parseOneLineSources(data []byte, file string) []Entry {
	var out []Entry
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
		if len(f) < 2 || CheckURI(f[0]) != nil {
			continue
		}
		out = append(out, Entry{URI: f[0], Suites: []string{f[1]}, Components: f[2:], File: file})
	}
	return out
}

// IsSecuritySuite says whether a suite name is a security suite.
func IsSecuritySuite(s string) bool {
	return strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates")
}

// MirrorEnv is the environment variable that names the mirror.
const MirrorEnv = "NROOT_MIRROR"

// FindMirror returns the mirror to use and where it came from: the given
// one, then $NROOT_MIRROR, then the first non-security entry of the host's
// APT sources. The security mirror is the host's, when it lists one.
func FindMirror(given string, host []Entry) (mirror, security, from string, err error) {
	for _, e := range host {
		for _, s := range e.Suites {
			if IsSecuritySuite(s) && security == "" {
				security = e.URI
			}
		}
	}
	if given != "" {
		return given, security, "command line", nil
	}
	if m := os.Getenv(MirrorEnv); m != "" {
		if err := CheckURI(m); err != nil {
			return "", "", "", fmt.Errorf("%s: %w", MirrorEnv, err)
		}
		return m, security, MirrorEnv, nil
	}
	for _, e := range host {
		if len(e.Suites) > 0 && !IsSecuritySuite(e.Suites[0]) {
			return e.URI, security, e.File, nil
		}
	}
	return "", "", "", fmt.Errorf("no mirror: give one as an argument (e.g. http://MIRROR/debian), set %s, or configure APT sources on this host (%s)", MirrorEnv, strings.Join(SourceFiles, ", "))
}
