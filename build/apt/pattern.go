package apt

import (
	"fmt"
	"strings"

	"nroot/internal/usage"
)

// IsIncludePattern says an --include entry is an apt pattern, as
// mmdebstrap tells one apart: it starts with ?, ~, ! or (. Such an entry
// is one pattern, never split at commas.
func IsIncludePattern(s string) bool { return s != "" && strings.ContainsRune("?~!(", rune(s[0])) }

// maxPatternLen and maxPatternDepth bound an --include pattern.
const (
	maxPatternLen   = 64 << 10
	maxPatternDepth = 32
)

// ParseIncludePattern reads an apt pattern given to --include into the
// package names it selects. nroot resolves without apt, so it takes the
// patterns that name packages exactly: ?exact-name(NAME), and ?or(...)
// or "|" of such patterns. Any other pattern is a usage error that says
// to list the packages by name.
func ParseIncludePattern(s string) ([]string, error) {
	if len(s) > maxPatternLen {
		return nil, &usage.Error{Option: "--include", Value: s[:64] + "...", Why: fmt.Sprintf("a pattern of more than %d bytes", maxPatternLen)}
	}
	p := &patternParser{s: s}
	names, err := p.or(0)
	if err == nil && p.skipSpace() < len(s) {
		err = fmt.Errorf("unexpected %q at offset %d", s[p.i:], p.i)
	}
	if err != nil {
		return nil, &usage.Error{Option: "--include", Value: s, Why: "nroot takes the apt patterns that name packages exactly, ?exact-name(NAME) and ?or(...) or | of them; list other packages by name (comma-separated), and use --variant for a priority set (~prequired, ~pimportant)", Err: err}
	}
	return names, nil
}

type patternParser struct {
	s string
	i int
}

func (p *patternParser) skipSpace() int {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
	return p.i
}

func (p *patternParser) eat(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

// or is term ('|' term)*.
func (p *patternParser) or(depth int) ([]string, error) {
	if depth > maxPatternDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxPatternDepth)
	}
	names, err := p.term(depth)
	if err != nil {
		return nil, err
	}
	for p.eat("|") {
		more, err := p.term(depth)
		if err != nil {
			return nil, err
		}
		names = append(names, more...)
	}
	return names, nil
}

// term is ?exact-name(NAME), ?or(or, ...) or (or).
func (p *patternParser) term(depth int) ([]string, error) {
	switch {
	case p.eat("?exact-name("):
		p.skipSpace()
		start := p.i
		for p.i < len(p.s) && isPackageNameByte(p.s[p.i]) {
			p.i++
		}
		name := p.s[start:p.i]
		if !validPackageName(name) {
			return nil, fmt.Errorf("?exact-name(%s): not a package name", name)
		}
		if !p.eat(")") {
			return nil, fmt.Errorf("?exact-name(%s: no closing )", name)
		}
		return []string{name}, nil
	case p.eat("?or("):
		var names []string
		for {
			more, err := p.or(depth + 1)
			if err != nil {
				return nil, err
			}
			names = append(names, more...)
			if p.eat(")") {
				return names, nil
			}
			if !p.eat(",") {
				return nil, fmt.Errorf("?or( at offset %d: expected , or )", p.i)
			}
		}
	case p.eat("("):
		names, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, fmt.Errorf("( at offset %d: no closing )", p.i)
		}
		return names, nil
	}
	rest := p.s[p.i:]
	if len(rest) > 40 {
		rest = rest[:40] + "..."
	}
	return nil, fmt.Errorf("%q is not supported", rest)
}

func isPackageNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// validPackageName is Debian policy's package name: lower case letters,
// digits, + - and ., at least two, starting with a letter or digit.
func validPackageName(s string) bool {
	if len(s) < 2 || len(s) > 128 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isPackageNameByte(s[i]) {
			return false
		}
	}
	return true
}
