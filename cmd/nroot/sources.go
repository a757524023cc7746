package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"nroot/build/apt"
)

// stdin is where MIRROR - reads a sources.list from; a variable for tests.
var stdin io.Reader = os.Stdin

// sourceArgs reads the MIRROR arguments that are sources.list files, as
// mmdebstrap does: "-" is a sources.list on stdin, and the path of an
// existing file one there (named .list: one-line, .sources: deb822,
// else guessed). Each entry becomes a "deb URI SUITE COMPONENT..."
// argument; other arguments (URLs, one-line entries) stay as they are.
func sourceArgs(mirrors []string) ([]string, error) {
	var out []string
	readStdin := false
	for _, m := range mirrors {
		var data []byte
		var format, name string
		switch fi, err := os.Stat(m); {
		case m == "-":
			if readStdin {
				return nil, usageErr("MIRROR -: standard input is read once; give - once")
			}
			readStdin = true
			if data, err = io.ReadAll(io.LimitReader(stdin, apt.MaxSourcesList+1)); err != nil {
				return nil, fmt.Errorf("MIRROR -: reading standard input: %w", err)
			}
			name = "standard input"
		case err == nil && fi.Mode().IsRegular() && !strings.Contains(m, "://"):
			f, err := os.Open(m)
			if err != nil {
				return nil, usageErr("MIRROR %s: %w", m, err)
			}
			data, err = io.ReadAll(io.LimitReader(f, apt.MaxSourcesList+1))
			f.Close()
			if err != nil {
				return nil, usageErr("MIRROR %s: %w", m, err)
			}
			name = m
			switch {
			case strings.HasSuffix(m, ".list"):
				format = apt.OneLine
			case strings.HasSuffix(m, ".sources"):
				format = apt.Deb822
			}
		default:
			out = append(out, m)
			continue
		}
		srcs, err := apt.ParseSourcesList(data, format, name)
		if err != nil {
			return nil, err
		}
		for _, s := range srcs {
			out = append(out, s.String())
		}
	}
	return out, nil
}

// suiteFromSources is the suite of the first source entry among MIRROR
// arguments, for an empty SUITE: mmdebstrap takes the suite from the
// sources then.
func suiteFromSources(mirrors []string) string {
	for _, m := range mirrors {
		if f := strings.Fields(m); len(f) >= 3 && f[0] == "deb" && !strings.HasPrefix(f[1], "[") {
			return f[2]
		}
	}
	return ""
}

// includeValue is --include as mmdebstrap reads it: an apt pattern
// (starting with ?, ~, ! or "(") is one entry, kept whole; anything else
// is split at commas and whitespace.
type includeValue struct{ list *[]string }

func (v includeValue) String() string { return strings.Join(*v.list, ",") }
func (v includeValue) Type() string   { return "strings" }
func (v includeValue) Set(s string) error {
	if apt.IsIncludePattern(strings.TrimSpace(s)) {
		*v.list = append(*v.list, strings.TrimSpace(s))
		return nil
	}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		*v.list = append(*v.list, f)
	}
	return nil
}

// wordsValue is a list option as mmdebstrap reads --components and
// --architectures: split at commas and whitespace ("main contrib" and
// main,contrib are the same), repeatable; the first use replaces the
// default.
type wordsValue struct {
	list *[]string
	set  bool
}

func newWordsValue(list *[]string, def []string) *wordsValue {
	*list = def
	return &wordsValue{list: list}
}

func (v *wordsValue) String() string { return "[" + strings.Join(*v.list, ",") + "]" }
func (v *wordsValue) Type() string   { return "strings" }
func (v *wordsValue) Set(s string) error {
	if !v.set {
		*v.list, v.set = nil, true
	}
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(words) == 0 {
		return fmt.Errorf("%q names nothing; give one or more names, comma- or space-separated", s)
	}
	*v.list = append(*v.list, words...)
	return nil
}
