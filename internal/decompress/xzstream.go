package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// xzStream parses one xz stream (the .xz format: stream header, blocks,
// index, stream footer) without decoding it: a block's size is in its
// header when the encoder wrote it (multi-threaded xz, as dracut runs it)
// and otherwise follows from its LZMA2 chunk headers. This is what lets
// the host's xz program decode an image's segment: it is given exactly
// the segment's bytes.
type xzStream struct {
	r         ByteReader
	multi     bool  // more streams, after stream padding, may follow
	state     int   // 0 stream header, 1 block or index, 2 LZMA2 chunks, 3 footer, 4 done
	checkSize int64 // bytes of each block's check
	chunked   int64 // compressed bytes of the current block so far
}

var errXZ = errors.New("xz: malformed stream")

// MaxDict is the largest LZMA dictionary nroot lets a stream ask for,
// in Go as from the host's xz program (--memlimit-decompress): the
// header of a few bytes sets how much the decoder allocates.
const MaxDict = 1 << 30

// ErrDictTooLarge is returned for a stream whose dictionary is over
// MaxDict.
var ErrDictTooLarge = errors.New("dictionary larger than 1 GiB")

// NewXZStream hands on exactly one xz stream from r (with multi, every
// concatenated stream and their padding, to the end of r) without
// decoding it, and refuses blocks whose LZMA2 dictionary is over MaxDict.
func NewXZStream(r ByteReader, multi bool) io.Reader {
	x := &xzStream{r: r, multi: multi}
	return &Units{R: r, Next: x.next}
}

// ErrXZFilter says an xz block uses a filter besides LZMA2 and x86
// (another BCJ filter, delta), which the Go decoder does not have and the
// xz program does.
var ErrXZFilter = errors.New("xz: the block uses a filter other than LZMA2 and x86 (another BCJ filter, delta), which the Go decoder lacks; install the xz program (package xz-utils)")

// lzma2Dict is the dictionary size an LZMA2 filter property byte asks for.
func lzma2Dict(b byte) (int64, error) {
	if b > 40 {
		return 0, errXZ
	}
	if b == 40 {
		return 1<<32 - 1, nil
	}
	return int64(2|b&1) << (b/2 + 11), nil
}

// xzCheckSizes is the size of a block's check by check type.
var xzCheckSizes = [16]int64{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

// maxXZIndex bounds the index kept in memory while it is passed on: a
// record per block, a few bytes each.
const maxXZIndex = 16 << 20

func (x *xzStream) next() ([]byte, int64, error) {
	switch x.state {
	case 0:
		h, err := ReadN(x.r, 12)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		return x.streamHeader(h)
	case 1:
		b, err := x.r.ReadByte()
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		if b == 0 {
			return x.index()
		}
		h := make([]byte, (int(b)+1)*4)
		h[0] = b
		if _, err := io.ReadFull(x.r, h[1:]); err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		flags := h[1]
		if flags&0x3c != 0 {
			return nil, 0, errXZ
		}
		rest := bytes.NewReader(h[2 : len(h)-4])
		compressed := int64(-1)
		if flags&0x40 != 0 {
			v, err := binary.ReadUvarint(rest)
			if err != nil || v == 0 || v > 1<<62 {
				return nil, 0, errXZ
			}
			compressed = int64(v)
		}
		if flags&0x80 != 0 {
			v, err := binary.ReadUvarint(rest)
			if err != nil || v > 1<<62 {
				return nil, 0, errXZ
			}
		}
		var last uint64
		for range int(flags&3) + 1 {
			id, err := binary.ReadUvarint(rest)
			if err != nil {
				return nil, 0, errXZ
			}
			n, err := binary.ReadUvarint(rest)
			if err != nil || n > uint64(rest.Len()) {
				return nil, 0, errXZ
			}
			if id == 0x21 {
				p, err := rest.ReadByte()
				if err != nil || n != 1 {
					return nil, 0, errXZ
				}
				d, err := lzma2Dict(p)
				if err != nil {
					return nil, 0, err
				}
				if d > MaxDict {
					return nil, 0, fmt.Errorf("xz: block asks for a %d MiB dictionary: %w", d>>20, ErrDictTooLarge)
				}
			} else {
				rest.Seek(int64(n), io.SeekCurrent)
			}
			last = id
		}
		if compressed >= 0 {
			return h, int64(len(h)) + compressed + pad4(compressed) + x.checkSize, nil
		}
		// Without the size, the data must be LZMA2 (the last filter)
		// to be walked chunk by chunk.
		if last != 0x21 {
			return nil, 0, errXZ
		}
		x.state, x.chunked = 2, 0
		return h, int64(len(h)), nil
	case 2:
		c, err := x.r.ReadByte()
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		var h []byte
		var data int64
		switch {
		case c == 0: // end of the LZMA2 data: padding and check follow
			x.chunked++
			x.state = 1
			return []byte{0}, 1 + pad4(x.chunked) + x.checkSize, nil
		case c == 1 || c == 2: // uncompressed chunk
			b, err := ReadN(x.r, 2)
			if err != nil {
				return nil, 0, io.ErrUnexpectedEOF
			}
			h, data = append([]byte{c}, b...), int64(binary.BigEndian.Uint16(b))+1
		case c >= 0x80: // LZMA chunk, with properties from 0xc0
			n := 4
			if c >= 0xc0 {
				n = 5
			}
			b, err := ReadN(x.r, n)
			if err != nil {
				return nil, 0, io.ErrUnexpectedEOF
			}
			h, data = append([]byte{c}, b...), int64(binary.BigEndian.Uint16(b[2:4]))+1
		default:
			return nil, 0, errXZ
		}
		x.chunked += int64(len(h)) + data
		return h, int64(len(h)) + data, nil
	case 3:
		f, err := ReadN(x.r, 12)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		if !bytes.Equal(f[10:], []byte("YZ")) {
			return nil, 0, errXZ
		}
		x.state = 4
		return f, 12, nil
	case 4:
		if !x.multi {
			return nil, 0, io.EOF
		}
		// Stream padding (zeros, four at a time) or the next stream.
		b, err := x.r.ReadByte()
		if err == io.EOF {
			return nil, 0, io.EOF
		}
		if err != nil {
			return nil, 0, err
		}
		switch b {
		case 0:
			z, err := ReadN(x.r, 3)
			if err != nil || !bytes.Equal(z, []byte{0, 0, 0}) {
				return nil, 0, errXZ
			}
			return []byte{0, 0, 0, 0}, 4, nil
		case 0xfd:
			h, err := ReadN(x.r, 11)
			if err != nil {
				return nil, 0, io.ErrUnexpectedEOF
			}
			x.state = 0
			return x.streamHeader(append([]byte{b}, h...))
		}
		return nil, 0, errXZ
	}
	return nil, 0, io.EOF
}

// streamHeader checks a stream header and starts its blocks.
func (x *xzStream) streamHeader(h []byte) ([]byte, int64, error) {
	if !bytes.Equal(h[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || h[6] != 0 || h[7] > 0x0f {
		return nil, 0, errXZ
	}
	x.checkSize = xzCheckSizes[h[7]]
	x.state = 1
	return h, 12, nil
}

// index reads the index whose indicator byte was just read: the number
// of records, the records, padding to 4 bytes and a CRC32.
func (x *xzStream) index() ([]byte, int64, error) {
	buf := []byte{0}
	// Varints read byte by byte, so the bytes passed on are the file's.
	uvarint := func() error {
		for range 9 {
			b, err := x.r.ReadByte()
			if err != nil {
				return io.ErrUnexpectedEOF
			}
			buf = append(buf, b)
			if b < 0x80 {
				return nil
			}
		}
		return errXZ
	}
	if err := uvarint(); err != nil {
		return nil, 0, err
	}
	count, _ := binary.Uvarint(buf[1:])
	for i := uint64(0); i < count; i++ {
		// unpadded size, uncompressed size
		if err := uvarint(); err != nil {
			return nil, 0, err
		}
		if err := uvarint(); err != nil {
			return nil, 0, err
		}
		if len(buf) > maxXZIndex {
			return nil, 0, errors.New("xz: index larger than 16 MiB")
		}
	}
	tail := pad4(int64(len(buf))) + 4
	x.state = 3
	return buf, int64(len(buf)) + tail, nil
}
