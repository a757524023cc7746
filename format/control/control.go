// Package control reads and writes Debian control-format (deb822)
// paragraphs: Release files, Packages indices, dpkg status and .deb
// control files, one paragraph at a time.
package control

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Field is one "Name: value" pair. A multi-line value keeps its lines
// joined by "\n", each continuation line without its leading blank.
type Field struct {
	Name  string
	Value string
}

// Paragraph is an ordered list of fields.
type Paragraph struct {
	Fields []Field
	Line   int // line number of the paragraph's first field, from 1
}

// Get returns a field's value, matching the name case-insensitively as
// deb822 requires, and "" when the field is absent.
func (p *Paragraph) Get(name string) string {
	v, _ := p.Lookup(name)
	return v
}

// Lookup is Get that also says whether the field is present.
func (p *Paragraph) Lookup(name string) (string, bool) {
	for _, f := range p.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Set replaces a field's value or appends the field.
func (p *Paragraph) Set(name, value string) {
	for i, f := range p.Fields {
		if strings.EqualFold(f.Name, name) {
			p.Fields[i].Value = value
			return
		}
	}
	p.Fields = append(p.Fields, Field{name, value})
}

// Delete removes a field.
func (p *Paragraph) Delete(name string) {
	out := p.Fields[:0]
	for _, f := range p.Fields {
		if !strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	p.Fields = out
}

// MaxLine bounds one line, so a hostile file cannot make the reader grow
// without limit.
const MaxLine = 16 << 20

// LineReader reads the lines of a deb822 file without their line
// endings, each at most Max bytes: the one line reader of control files,
// sources files and Packages indices.
type LineReader struct {
	br   *bufio.Reader
	Line int // lines read so far
	Max  int
}

// NewLineReader reads r through a buffer of size bytes, with lines of at
// most max bytes.
func NewLineReader(r io.Reader, size, max int) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, size), Max: max}
}

// ReadLine returns the next line without "\n" or "\r\n"; it may alias
// the reader's buffer until the next call. A read error is never dropped
// with a last partial line.
func (l *LineReader) ReadLine() ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = l.br.ReadSlice('\n')
			buf = append(buf, line...)
			if len(buf) > l.Max {
				return nil, &SyntaxError{l.Line + 1, fmt.Sprintf("line longer than %d bytes", l.Max)}
			}
		}
		line = buf
	}
	if err != nil && (len(line) == 0 || err != io.EOF) {
		return nil, err
	}
	l.Line++
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// Reader reads paragraphs from a control file.
type Reader struct {
	lr *LineReader
	// Comments allows '#' comment lines, as in deb822 sources files.
	Comments bool
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{lr: NewLineReader(r, 256<<10, MaxLine)}
}

// SyntaxError reports a malformed line.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Next returns the next paragraph, or io.EOF after the last.
func (r *Reader) Next() (*Paragraph, error) {
	var p *Paragraph
	var cont []byte // value being built for the last field when continued
	flush := func() {
		if cont != nil {
			p.Fields[len(p.Fields)-1].Value = string(cont)
			cont = nil
		}
	}
	for {
		line, err := r.lr.ReadLine()
		if err == io.EOF {
			if p == nil {
				return nil, io.EOF
			}
			flush()
			return p, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if p != nil {
				flush()
				return p, nil
			}
			continue
		}
		if r.Comments && line[0] == '#' {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if p == nil || len(p.Fields) == 0 {
				return nil, &SyntaxError{r.lr.Line, "continuation line before any field"}
			}
			if cont == nil {
				cont = []byte(p.Fields[len(p.Fields)-1].Value)
			}
			cont = append(cont, '\n')
			cont = append(cont, line[1:]...)
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, &SyntaxError{r.lr.Line, fmt.Sprintf("expected \"Field: value\", got %q", truncate(line))}
		}
		if p == nil {
			p = &Paragraph{Line: r.lr.Line}
		}
		flush()
		name := string(bytes.TrimSpace(line[:colon]))
		if name == "" {
			return nil, &SyntaxError{r.lr.Line, "empty field name"}
		}
		if strings.ContainsAny(name, " \t\r") || name[0] == '#' || name[0] == '-' {
			return nil, &SyntaxError{r.lr.Line, fmt.Sprintf("field name %q contains blanks", name)}
		}
		p.Fields = append(p.Fields, Field{Name: name, Value: string(bytes.TrimSpace(line[colon+1:]))})
	}
}

func truncate(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// ReadAll reads every paragraph.
func ReadAll(r io.Reader) ([]*Paragraph, error) {
	cr := NewReader(r)
	var out []*Paragraph
	for {
		p, err := cr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
}

// Writer writes paragraphs separated by blank lines.
type Writer struct {
	w       io.Writer
	started bool
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one paragraph. It refuses fields that would not read back
// as written: a bad name, or a value with a blank continuation line
// (write "." for an empty line, as dpkg does).
func (w *Writer) Write(p *Paragraph) error {
	for _, f := range p.Fields {
		if f.Name == "" || strings.ContainsAny(f.Name, ": \t\r\n") || f.Name[0] == '#' || f.Name[0] == '-' {
			return fmt.Errorf("control: invalid field name %q", f.Name)
		}
		lines := strings.Split(f.Value, "\n")
		if strings.ContainsRune(lines[0], '\r') || strings.TrimSpace(lines[0]) != lines[0] {
			return fmt.Errorf("control: field %s: first line has surrounding blanks or a CR", f.Name)
		}
		for _, l := range lines[1:] {
			if strings.TrimSpace(l) == "" {
				return fmt.Errorf("control: field %s: blank continuation line (use \".\")", f.Name)
			}
			if strings.ContainsRune(l, '\r') {
				return fmt.Errorf("control: field %s: CR in value", f.Name)
			}
		}
	}
	if len(p.Fields) == 0 {
		return fmt.Errorf("control: empty paragraph")
	}
	var b strings.Builder
	if w.started {
		b.WriteByte('\n')
	}
	w.started = true
	for _, f := range p.Fields {
		b.WriteString(f.Name)
		b.WriteByte(':')
		lines := strings.Split(f.Value, "\n")
		if lines[0] != "" {
			b.WriteByte(' ')
			b.WriteString(lines[0])
		}
		b.WriteByte('\n')
		for _, l := range lines[1:] {
			b.WriteByte(' ')
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w.w, b.String())
	return err
}
