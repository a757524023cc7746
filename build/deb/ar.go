// Package deb reads Debian binary packages as streams: the ar container,
// the control archive and the data archive, and unpacks the data safely
// below a root directory.
package deb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ArHeader describes one member of an ar archive.
type ArHeader struct {
	Name string
	Size int64
}

// ArReader reads the members of an ar archive in order, like tar.Reader.
type ArReader struct {
	r       *bufio.Reader
	remain  int64 // bytes of the current member not yet read
	pad     bool  // the current member is followed by a padding byte
	started bool
}

var arMagic = []byte("!<arch>\n")

// NewArReader checks the ar magic and returns a reader for the members.
func NewArReader(r io.Reader) (*ArReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("not an ar archive: %w", noEOF(err))
	}
	if !bytes.Equal(magic, arMagic) {
		return nil, errors.New("not an ar archive (bad magic)")
	}
	return &ArReader{r: br}, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Next skips to the next member and returns its header, or io.EOF.
func (a *ArReader) Next() (*ArHeader, error) {
	if a.remain > 0 {
		if _, err := io.CopyN(io.Discard, a.r, a.remain); err != nil {
			return nil, fmt.Errorf("ar: truncated member: %w", noEOF(err))
		}
		a.remain = 0
	}
	if a.pad {
		if _, err := a.r.ReadByte(); err != nil {
			return nil, fmt.Errorf("ar: truncated padding: %w", noEOF(err))
		}
		a.pad = false
	}
	var h [60]byte
	n, err := io.ReadFull(a.r, h[:])
	if err == io.EOF && n == 0 {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("ar: truncated header: %w", noEOF(err))
	}
	if h[58] != '`' || h[59] != '\n' {
		return nil, errors.New("ar: bad member header")
	}
	name := strings.TrimRight(string(h[0:16]), " ")
	name = strings.TrimSuffix(name, "/") // GNU ar terminates names with /
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("ar: member %q: bad size %q", name, strings.TrimSpace(string(h[48:58])))
	}
	a.remain = size
	a.pad = size%2 == 1
	return &ArHeader{Name: name, Size: size}, nil
}

// Read reads the current member's content.
func (a *ArReader) Read(p []byte) (int, error) {
	if a.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > a.remain {
		p = p[:a.remain]
	}
	n, err := a.r.Read(p)
	a.remain -= int64(n)
	if err == io.EOF && a.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
