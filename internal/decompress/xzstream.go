package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
		h, bh, err := readXZBlockHeader(x.r, b)
		if err != nil {
			return nil, 0, err
		}
		if bh.compressed >= 0 {
			return h, int64(len(h)) + bh.compressed + pad4(bh.compressed) + x.checkSize, nil
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
		h, err := readAfterStream(x.r)
		if err != nil {
			return nil, 0, err
		}
		if h == nil {
			return []byte{0, 0, 0, 0}, 4, nil
		}
		x.state = 0
		return x.streamHeader(h)
	}
	return nil, 0, io.EOF
}

// streamHeader checks a stream header and starts its blocks.
func (x *xzStream) streamHeader(h []byte) ([]byte, int64, error) {
	check, err := parseXZStreamHeader(h)
	if err != nil {
		return nil, 0, err
	}
	x.checkSize = xzCheckSizes[check]
	x.state = 1
	return h, 12, nil
}

// index reads the index whose indicator byte was just read, and passes
// it on whole.
func (x *xzStream) index() ([]byte, int64, error) {
	buf, err := readXZIndex(x.r, func(_, _ uint64) error { return nil })
	if err != nil {
		return nil, 0, err
	}
	x.state = 3
	return buf, int64(len(buf)), nil
}

// parseXZStreamHeader checks a stream header (magic, flags, CRC32) and
// returns its check type.
func parseXZStreamHeader(h []byte) (byte, error) {
	if len(h) != 12 || !bytes.Equal(h[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || h[6] != 0 || h[7] > 0x0f {
		return 0, errXZ
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:12]) {
		return 0, fmt.Errorf("xz: stream header CRC32: %w", errXZ)
	}
	return h[7], nil
}

// xzBlockHeader is what an xz block header says.
type xzBlockHeader struct {
	compressed, uncompressed int64 // -1 when the header does not record it
	dict                     int64 // the LZMA2 filter's dictionary
	x86                      bool  // the x86 filter before LZMA2
	x86Start                 uint32
	other                    bool // another filter (delta, another BCJ), or more than one before LZMA2
}

// readXZBlockHeader reads the block header whose size byte b was just
// read, and returns its bytes and what it says. The last filter must be
// LZMA2 (xz writes no other), and its dictionary no larger than MaxDict.
func readXZBlockHeader(r io.Reader, b byte) ([]byte, xzBlockHeader, error) {
	bh := xzBlockHeader{compressed: -1, uncompressed: -1, dict: -1}
	h := make([]byte, (int(b)+1)*4)
	h[0] = b
	if _, err := io.ReadFull(r, h[1:]); err != nil {
		return nil, bh, truncated(err)
	}
	if crc32.ChecksumIEEE(h[:len(h)-4]) != binary.LittleEndian.Uint32(h[len(h)-4:]) {
		return nil, bh, fmt.Errorf("xz: block header CRC32: %w", errXZ)
	}
	flags := h[1]
	if flags&0x3c != 0 {
		return nil, bh, errXZ
	}
	rest := bytes.NewReader(h[2 : len(h)-4])
	vli := func() (uint64, error) {
		v, err := readXZVLI(rest)
		if err == io.EOF { // the header ends inside an integer
			err = errXZ
		}
		if err != nil {
			return 0, fmt.Errorf("xz: block header: %w", err)
		}
		return v, nil
	}
	if flags&0x40 != 0 {
		v, err := vli()
		if err != nil {
			return nil, bh, err
		}
		if v == 0 || v > 1<<62 {
			return nil, bh, errXZ
		}
		bh.compressed = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := vli()
		if err != nil {
			return nil, bh, err
		}
		if v > 1<<62 {
			return nil, bh, errXZ
		}
		bh.uncompressed = int64(v)
	}
	nfilters := int(flags&3) + 1
	for i := range nfilters {
		id, err := vli()
		if err != nil {
			return nil, bh, err
		}
		n, err := vli()
		if err != nil {
			return nil, bh, err
		}
		if n > uint64(rest.Len()) {
			return nil, bh, errXZ
		}
		props := make([]byte, n)
		io.ReadFull(rest, props)
		last := i == nfilters-1
		switch {
		case id == xzIDLZMA2 && last && n == 1:
			d, err := lzma2Dict(props[0])
			if err != nil {
				return nil, bh, err
			}
			if d > MaxDict {
				return nil, bh, fmt.Errorf("xz: block asks for a %d MiB dictionary: %w", d>>20, ErrDictTooLarge)
			}
			bh.dict = d
		case id == xzIDLZMA2 || last:
			return nil, bh, errXZ
		case id == xzIDX86 && nfilters == 2 && (n == 0 || n == 4):
			bh.x86 = true
			if n == 4 {
				bh.x86Start = binary.LittleEndian.Uint32(props)
			}
		default:
			bh.other = true
		}
	}
	for rest.Len() > 0 {
		if c, _ := rest.ReadByte(); c != 0 {
			return nil, bh, errXZ
		}
	}
	return h, bh, nil
}

// errXZVLI is an xz variable-length integer that liblzma's
// lzma_vli_decode refuses: over 9 bytes (63 bits), or of several bytes
// the last of which is zero (a longer form of a shorter one).
var errXZVLI = fmt.Errorf("%w: an integer is over 9 bytes or ends in a zero byte", errXZ)

// xzVLIMaxBytes is the longest xz integer: 9 bytes of 7 bits, 63 bits.
const xzVLIMaxBytes = 9

// readXZVLI reads one xz variable-length integer (block header sizes,
// filter IDs and property sizes, the index's count and records): 7 bits
// a byte, least significant first, the top bit set on every byte but
// the last. As in liblzma, each value has one encoding, its shortest:
// 0x80 0x00 for 0 is refused. A read error is returned as it is.
func readXZVLI(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := range xzVLIMaxBytes {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, errXZVLI
			}
			return v, nil
		}
	}
	return 0, errXZVLI
}

// byteRecorder keeps the bytes read through it.
type byteRecorder struct {
	r   io.ByteReader
	buf []byte
}

func (b *byteRecorder) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		b.buf = append(b.buf, c)
	}
	return c, err
}

// readXZIndex reads an index whose indicator byte was just read (the
// number of records, the records, padding to 4 bytes and a CRC32),
// handing each record to rec, and returns its bytes. Integers are read
// byte by byte, so the bytes are the file's.
func readXZIndex(r ByteReader, rec func(unpadded, uncompressed uint64) error) ([]byte, error) {
	seen := &byteRecorder{r: r, buf: []byte{0}}
	vli := func() (uint64, error) {
		v, err := readXZVLI(seen)
		if err != nil {
			return 0, fmt.Errorf("xz: index: %w", truncated(err))
		}
		return v, nil
	}
	count, err := vli()
	if err != nil {
		return nil, err
	}
	for range count {
		unpadded, err := vli()
		if err != nil {
			return nil, err
		}
		uncompressed, err := vli()
		if err != nil {
			return nil, err
		}
		if len(seen.buf) > maxXZIndex {
			return nil, fmt.Errorf("xz: index larger than 16 MiB: %w", errXZ)
		}
		if err := rec(unpadded, uncompressed); err != nil {
			return nil, err
		}
	}
	buf := seen.buf
	pad, err := ReadN(r, int(pad4(int64(len(buf)))))
	if err != nil {
		return nil, truncated(err)
	}
	if !bytes.Equal(pad, make([]byte, len(pad))) {
		return nil, fmt.Errorf("xz: index padding: %w", errXZ)
	}
	buf = append(buf, pad...)
	sum, err := ReadN(r, 4)
	if err != nil {
		return nil, truncated(err)
	}
	if crc32.ChecksumIEEE(buf) != binary.LittleEndian.Uint32(sum) {
		return nil, fmt.Errorf("xz: index CRC32: %w", errXZ)
	}
	return append(buf, sum...), nil
}

// readAfterStream reads what may follow a stream's footer: four zero
// bytes of stream padding (nil), or the next stream's 12-byte header
// (checked by the caller), or io.EOF at the end of r.
func readAfterStream(r ByteReader) ([]byte, error) {
	b, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if b == 0 {
		z, err := ReadN(r, 3)
		if err != nil || !bytes.Equal(z, []byte{0, 0, 0}) {
			return nil, fmt.Errorf("xz: stream padding: %w", errXZ)
		}
		return nil, nil
	}
	h, err := ReadN(r, 11)
	if err != nil {
		return nil, truncated(err)
	}
	return append([]byte{b}, h...), nil
}
