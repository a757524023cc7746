package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// lzop's file format (lzop.c): a header, then blocks of a 4-byte
// uncompressed size (0 ends the stream), a 4-byte compressed size, the
// checksums its flags ask for, and the data.
const (
	lzoAdler32D   = 0x0001
	lzoAdler32C   = 0x0002
	lzoExtraField = 0x0040
	lzoCRC32D     = 0x0100
	lzoCRC32C     = 0x0200
	lzoFilter     = 0x0800
	lzoMaxBlock   = 64 << 20 // lzop writes 256 KiB blocks; 64 MiB is its own limit
)

var lzoMagic = []byte{0x89, 'L', 'Z', 'O', 0, '\r', '\n', 0x1a, '\n'}

var errLZO = errors.New("lzo: malformed lzop stream")

// ErrNoLZOP says an lzo stream needs the lzop program, which this host
// does not have.
var ErrNoLZOP = errors.New("lzo needs the lzop program (package lzop): no Go decoder is well kept enough to use")

// lzoStream walks one lzop stream without decoding it.
type lzoStream struct {
	r     ByteReader
	state int // 0 header, 1 blocks, 2 done
	flags uint32
}

// NewLZOStream hands on exactly one lzop stream from r, so that the lzop
// program decodes an image's segment and not the segments after it.
func NewLZOStream(r ByteReader) io.Reader {
	l := &lzoStream{r: r}
	return &Units{R: r, Next: l.next}
}

func (l *lzoStream) next() ([]byte, int64, error) {
	switch l.state {
	case 0:
		h, err := l.header()
		if err != nil {
			return nil, 0, err
		}
		l.state = 1
		return h, int64(len(h)), nil
	case 1:
		b, err := ReadN(l.r, 4)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		usize := binary.BigEndian.Uint32(b)
		if usize == 0 {
			l.state = 2
			return b, 4, nil
		}
		c, err := ReadN(l.r, 4)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		csize := binary.BigEndian.Uint32(c)
		if usize > lzoMaxBlock || csize > lzoMaxBlock || csize == 0 {
			return nil, 0, errLZO
		}
		h := append(b, c...)
		sums := 0
		if l.flags&(lzoAdler32D|lzoCRC32D) != 0 {
			sums++
		}
		if csize < usize && l.flags&(lzoAdler32C|lzoCRC32C) != 0 {
			sums++
		}
		if sums > 0 {
			s, err := ReadN(l.r, 4*sums)
			if err != nil {
				return nil, 0, io.ErrUnexpectedEOF
			}
			h = append(h, s...)
		}
		return h, int64(len(h)) + int64(csize), nil
	}
	return nil, 0, io.EOF
}

// header reads the file header, as lzop writes it for its version.
func (l *lzoStream) header() ([]byte, error) {
	var h bytes.Buffer
	read := func(n int) ([]byte, error) {
		b, err := ReadN(l.r, n)
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		h.Write(b)
		return b, nil
	}
	m, err := read(len(lzoMagic))
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(m, lzoMagic) {
		return nil, errLZO
	}
	v, err := read(4) // version, library version
	if err != nil {
		return nil, err
	}
	version := binary.BigEndian.Uint16(v)
	if version >= 0x0940 {
		if _, err := read(2); err != nil { // version needed to extract
			return nil, err
		}
	}
	if _, err := read(1); err != nil { // method
		return nil, err
	}
	if version >= 0x0940 {
		if _, err := read(1); err != nil { // level
			return nil, err
		}
	}
	f, err := read(4)
	if err != nil {
		return nil, err
	}
	l.flags = binary.BigEndian.Uint32(f)
	if l.flags&lzoFilter != 0 {
		if _, err := read(4); err != nil {
			return nil, err
		}
	}
	n := 8 // mode, mtime low
	if version >= 0x0940 {
		n += 4 // mtime high
	}
	if _, err := read(n); err != nil {
		return nil, err
	}
	nl, err := read(1)
	if err != nil {
		return nil, err
	}
	if _, err := read(int(nl[0]) + 4); err != nil { // name, header checksum
		return nil, err
	}
	if l.flags&lzoExtraField != 0 {
		x, err := read(4)
		if err != nil {
			return nil, err
		}
		size := binary.BigEndian.Uint32(x)
		if size > 1<<20 {
			return nil, fmt.Errorf("%w: extra field of %d bytes", errLZO, size)
		}
		if _, err := read(int(size) + 4); err != nil {
			return nil, err
		}
	}
	return h.Bytes(), nil
}

// NewLZOReader decodes one lzop stream (given exactly, as NewLZOStream
// gives it) with the host's lzop program.
func NewLZOReader(r io.Reader) (io.ReadCloser, error) {
	p := lzopProgram()
	if p == "" {
		return nil, ErrNoLZOP
	}
	return startProgram(p, []string{"--decompress", "--stdout", "--quiet"}, r)
}
