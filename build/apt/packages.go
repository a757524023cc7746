package apt

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"nroot/format/control"
)

// Package is one stanza of a Packages index, holding the fields nroot
// needs to resolve, fetch and verify. Relationship fields are kept as
// written and parsed only for the packages a resolution visits, which is
// what makes reading a whole index fast.
type Package struct {
	Name          string
	Version       string
	Architecture  string
	MultiArch     string
	Source        string
	Priority      string
	Section       string
	Essential     bool
	Important     bool // "Important: yes", apt's protected flag
	PreDepends    string
	Depends       string
	Recommends    string
	Provides      string
	Conflicts     string
	Breaks        string
	Replaces      string
	Filename      string
	Size          int64
	InstalledSize int64
	SHA256        string

	// Origin is the index this stanza came from; set by the universe.
	Origin *Index
	local  bool // from a package file given to --include
}

// ID is "name:arch=version", unique within a universe.
func (p *Package) ID() string { return p.Name + ":" + p.Architecture + "=" + p.Version }

// PackagesReader reads a Packages index stanza by stanza.
type PackagesReader struct {
	lr     *control.LineReader
	intern map[string]string
	name   string // the file being read, for errors
}

// NewPackagesReader returns a reader for a Packages index; name labels
// errors.
func NewPackagesReader(r io.Reader, name string) *PackagesReader {
	return &PackagesReader{lr: control.NewLineReader(r, 1<<20, 64<<20), intern: map[string]string{}, name: name}
}

// PackagesError locates a malformed stanza.
type PackagesError struct {
	File string
	Line int
	Msg  string
}

func (e *PackagesError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (r *PackagesReader) errorf(format string, a ...any) error {
	return &PackagesError{File: r.name, Line: r.lr.Line, Msg: fmt.Sprintf(format, a...)}
}

// internBytes returns a shared string for values from a small set
// (architectures, priorities, sections), saving one allocation each.
func (r *PackagesReader) internBytes(b []byte) string {
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	if len(r.intern) > 4096 {
		return string(b)
	}
	s := string(b)
	r.intern[s] = s
	return s
}

// field identifies the stanza fields the reader keeps.
type field int

const (
	fNone field = iota
	fPackage
	fVersion
	fArchitecture
	fMultiArch
	fSource
	fPriority
	fSection
	fEssential
	fImportant
	fPreDepends
	fDepends
	fRecommends
	fProvides
	fConflicts
	fBreaks
	fReplaces
	fFilename
	fSize
	fInstalledSize
	fSHA256
)

var fieldNames = map[string]field{
	"Package": fPackage, "Version": fVersion, "Architecture": fArchitecture,
	"Multi-Arch": fMultiArch, "Source": fSource, "Priority": fPriority,
	"Section": fSection, "Essential": fEssential, "Important": fImportant,
	"Pre-Depends": fPreDepends, "Depends": fDepends, "Recommends": fRecommends,
	"Provides": fProvides, "Conflicts": fConflicts, "Breaks": fBreaks,
	"Replaces": fReplaces, "Filename": fFilename, "Size": fSize,
	"Installed-Size": fInstalledSize, "SHA256": fSHA256,
}

var lowerFieldNames = func() map[string]field {
	m := map[string]field{}
	for n, f := range fieldNames {
		m[string(bytes.ToLower([]byte(n)))] = f
	}
	return m
}()

func lookupField(name []byte) field {
	if f, ok := fieldNames[string(name)]; ok {
		return f
	}
	// deb822 field names are case-insensitive; archives write them in
	// canonical case, so this slower path is for hand-made indices.
	if len(name) > 32 {
		return fNone
	}
	var buf [32]byte
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return lowerFieldNames[string(lower)]
}

// Next returns the next package, or io.EOF after the last.
func (r *PackagesReader) Next() (*Package, error) {
	var p *Package
	var cur field // the field a continuation line extends
	var start int // line of the stanza's first field
	for {
		line, err := r.lr.ReadLine()
		if err == io.EOF {
			if p == nil {
				return nil, io.EOF
			}
			return p, r.check(p, start)
		}
		if err != nil {
			var se *control.SyntaxError
			if errors.As(err, &se) {
				return nil, r.errorf("%s", se.Msg)
			}
			return nil, err
		}
		if len(line) == 0 || isBlank(line) {
			if p != nil {
				return p, r.check(p, start)
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if p == nil {
				return nil, r.errorf("continuation line before any field")
			}
			if cur != fNone {
				r.extend(p, cur, bytes.TrimSpace(line))
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, r.errorf("expected \"Field: value\", got %q", truncate(line))
		}
		if p == nil {
			p = &Package{}
			start = r.lr.Line
		}
		cur = lookupField(line[:colon])
		if cur != fNone {
			if err := r.set(p, cur, bytes.TrimSpace(line[colon+1:])); err != nil {
				return nil, err
			}
		}
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

func (r *PackagesReader) check(p *Package, start int) error {
	switch {
	case p.Name == "":
		return &PackagesError{r.name, start, "stanza without a Package field"}
	case p.Version == "":
		return &PackagesError{r.name, start, fmt.Sprintf("package %s has no Version", p.Name)}
	case p.Architecture == "":
		return &PackagesError{r.name, start, fmt.Sprintf("package %s has no Architecture", p.Name)}
	}
	return nil
}

func (r *PackagesReader) set(p *Package, f field, v []byte) error {
	switch f {
	case fPackage:
		p.Name = string(v)
	case fVersion:
		p.Version = string(v)
	case fArchitecture:
		p.Architecture = r.internBytes(v)
	case fMultiArch:
		p.MultiArch = r.internBytes(v)
	case fSource:
		p.Source = string(v)
	case fPriority:
		p.Priority = r.internBytes(v)
	case fSection:
		p.Section = r.internBytes(v)
	case fEssential:
		p.Essential = bytes.EqualFold(v, []byte("yes"))
	case fImportant:
		p.Important = bytes.EqualFold(v, []byte("yes"))
	case fPreDepends:
		p.PreDepends = string(v)
	case fDepends:
		p.Depends = string(v)
	case fRecommends:
		p.Recommends = string(v)
	case fProvides:
		p.Provides = string(v)
	case fConflicts:
		p.Conflicts = string(v)
	case fBreaks:
		p.Breaks = string(v)
	case fReplaces:
		p.Replaces = string(v)
	case fFilename:
		p.Filename = string(v)
	case fSize, fInstalledSize:
		n, ok := parseUint(v)
		if !ok {
			return r.errorf("bad number %q", truncate(v))
		}
		if f == fSize {
			p.Size = n
		} else {
			p.InstalledSize = n
		}
	case fSHA256:
		p.SHA256 = string(v)
	}
	return nil
}

// extend appends a continuation line to a relationship field, which dpkg
// allows to wrap.
func (r *PackagesReader) extend(p *Package, f field, v []byte) {
	if len(v) == 0 {
		return
	}
	add := func(s *string) {
		if *s == "" {
			*s = string(v)
		} else {
			*s = *s + " " + string(v)
		}
	}
	switch f {
	case fPreDepends:
		add(&p.PreDepends)
	case fDepends:
		add(&p.Depends)
	case fRecommends:
		add(&p.Recommends)
	case fProvides:
		add(&p.Provides)
	case fConflicts:
		add(&p.Conflicts)
	case fBreaks:
		add(&p.Breaks)
	case fReplaces:
		add(&p.Replaces)
	}
}

func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
