package initrd

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"

	"nroot/internal/decompress"
)

// Compression names a segment's compression.
type Compression string

// Compressions an image segment may have.
const (
	None      Compression = "none"
	Gzip      Compression = "gzip"
	XZ        Compression = "xz"
	Zstd      Compression = "zstd"
	LZ4       Compression = "lz4"        // frame format
	LZ4Legacy Compression = "lz4-legacy" // the kernel's legacy format, as lz4 -l writes
	Bzip2     Compression = "bzip2"
	LZMA      Compression = "lzma"
	LZO       Compression = "lzo"
)

// detect names the compression whose magic starts b.
func detect(b []byte) (Compression, bool) {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return Gzip, true
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return XZ, true
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd, true
	case bytes.HasPrefix(b, []byte{0x04, 0x22, 0x4d, 0x18}):
		return LZ4, true
	case bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}):
		return LZ4Legacy, true
	case bytes.HasPrefix(b, []byte("BZh")):
		return Bzip2, true
	case bytes.HasPrefix(b, []byte{0x89, 'L', 'Z', 'O', 0}):
		return LZO, true
	case len(b) >= 3 && b[0] == 0x5d && b[1] == 0 && b[2] == 0:
		return LZMA, true
	}
	return "", false
}

// byteReader is what the decoders are given: reading through ReadByte
// lets them stop exactly at the end of their stream, so the next segment
// starts where it should.
type byteReader = decompress.ByteReader

// openSegment returns a reader of the decompressed segment that stops at
// the end of the compressed stream, consuming no byte beyond it.
func openSegment(c Compression, r byteReader) (io.Reader, func(), error) {
	switch c {
	case Gzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		z.Multistream(false)
		return z, func() { z.Close() }, nil
	case XZ:
		// Exactly the stream, for the host's xz program when there is
		// one (liblzma, on every CPU), for the Go decoder otherwise.
		z, err := decompress.NewParallelXZReader(decompress.NewXZStream(r, false))
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case Zstd:
		fr := &decompress.Units{R: r, Next: (&zstdFrames{r: r}).next}
		z, err := zstd.NewReader(fr, zstd.WithDecoderConcurrency(zstdConcurrency()), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	case LZ4:
		fr := &decompress.Units{R: r, Next: (&lz4Frame{r: r}).next}
		return lz4.NewReader(fr), func() {}, nil
	case LZ4Legacy:
		return &lz4Legacy{r: r}, func() {}, nil
	case Bzip2:
		return bzip2.NewReader(r), func() {}, nil
	case LZO:
		// lsinitrd and 3cpio read lzo through lzop too.
		z, err := decompress.NewLZOReader(decompress.NewLZOStream(r))
		if err != nil {
			return nil, nil, err
		}
		return z, func() { z.Close() }, nil
	case LZMA:
		// The 13-byte header sets the dictionary the decoder
		// allocates: capped as xz streams are.
		z, err := lzma.ReaderConfig{DictCap: decompress.MaxDict}.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return z, func() {}, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression %s", c)
}

// zstdConcurrency is how many blocks the zstd decoder keeps in flight.
// With more than one CPU, the stream decoder decodes the literals and
// sequences of later blocks while earlier ones are executed; on two
// CPUs a bookworm image (190 MB of modules) lists in 0.13 s with 16
// blocks in flight against 0.19 s decoding synchronously, for about
// 20 MB more memory. On one CPU the pipeline only adds work.
func zstdConcurrency() int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return min(8*n, 16)
	}
	return 1
}

// zstdFrames parses the zstd frames (and skippable frames) at the start
// of a stream, block header by block header, for decompress.Units that
// reports EOF after the last, because the zstd decoder reads ahead of
// its input.
type zstdFrames struct {
	r     byteReader
	state int // 0: expect a frame; 1: in blocks; 2: done
	last  bool
	check bool
}

var errZstdFrame = errors.New("zstd: malformed frame")

// next parses the next unit's header.
func (z *zstdFrames) next() ([]byte, int64, error) {
	switch z.state {
	case 0, 2:
		// A frame starts only with a zstd or skippable magic; anything
		// else is the next segment, left unread.
		b, err := peekBytes(z.r, 4)
		if err != nil || len(b) < 4 {
			return nil, 0, io.EOF
		}
		magic := binary.LittleEndian.Uint32(b)
		if magic&0xFFFFFFF0 == 0x184D2A50 {
			hdr, err := decompress.ReadN(z.r, 8)
			if err != nil {
				return nil, 0, io.ErrUnexpectedEOF
			}
			// Skippable frame: pass its header and content through.
			return hdr, 8 + int64(binary.LittleEndian.Uint32(hdr[4:])), nil
		}
		if magic != 0xFD2FB528 {
			if z.state == 0 {
				return nil, 0, errZstdFrame
			}
			return nil, 0, io.EOF
		}
		hdr, err := decompress.ReadN(z.r, 5)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		fhd := hdr[4]
		fcsFlag, single, dictFlag := fhd>>6, fhd&0x20 != 0, fhd&3
		z.check = fhd&4 != 0
		n := 0
		if !single {
			n++
		}
		n += []int{0, 1, 2, 4}[dictFlag]
		switch fcsFlag {
		case 0:
			if single {
				n++
			}
		case 1:
			n += 2
		case 2:
			n += 4
		case 3:
			n += 8
		}
		rest, err := decompress.ReadN(z.r, n)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		z.state, z.last = 1, false
		hdr = append(hdr, rest...)
		return hdr, int64(len(hdr)), nil
	case 1:
		if z.last {
			z.state = 2
			if z.check {
				b, err := decompress.ReadN(z.r, 4)
				if err != nil {
					return nil, 0, io.ErrUnexpectedEOF
				}
				return b, 4, nil
			}
			return nil, 0, nil
		}
		b, err := decompress.ReadN(z.r, 3)
		if err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		v := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		z.last = v&1 != 0
		typ, size := (v>>1)&3, int64(v>>3)
		switch typ {
		case 1: // RLE: one byte
			size = 1
		case 3:
			return nil, 0, errZstdFrame
		}
		// Pass the block header on, then its content.
		return b, 3 + size, nil
	}
	return nil, 0, io.EOF
}

// peekBytes reads up to n bytes ahead without consuming them, when the
// reader can peek.
func peekBytes(r byteReader, n int) ([]byte, error) {
	if p, ok := r.(interface{ Peek(int) ([]byte, error) }); ok {
		return p.Peek(n)
	}
	return nil, errors.New("reader cannot peek")
}

// lz4Frame parses exactly one LZ4 frame, for decompress.Units.
type lz4Frame struct {
	r     byteReader
	state int // 0 header, 1 blocks, 2 done
	flg   byte
}

func (f *lz4Frame) next() ([]byte, int64, error) {
	switch f.state {
	case 0:
		hdr := make([]byte, 6)
		if _, err := io.ReadFull(f.r, hdr); err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		f.flg = hdr[4]
		n := 1 // header checksum
		if f.flg&0x08 != 0 {
			n += 8
		}
		if f.flg&0x01 != 0 {
			n += 4
		}
		rest := make([]byte, n)
		if _, err := io.ReadFull(f.r, rest); err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		f.state = 1
		hdr = append(hdr, rest...)
		return hdr, int64(len(hdr)), nil
	case 1:
		b := make([]byte, 4)
		if _, err := io.ReadFull(f.r, b); err != nil {
			return nil, 0, io.ErrUnexpectedEOF
		}
		size := binary.LittleEndian.Uint32(b) & 0x7FFFFFFF
		if size == 0 { // end mark
			f.state = 2
			if f.flg&0x04 != 0 {
				c := make([]byte, 4)
				if _, err := io.ReadFull(f.r, c); err != nil {
					return nil, 0, io.ErrUnexpectedEOF
				}
				b = append(b, c...)
			}
			return b, int64(len(b)), nil
		}
		if size > 4<<20+16 {
			return nil, 0, errors.New("lz4: block larger than 4 MiB")
		}
		extra := int64(0)
		if f.flg&0x10 != 0 {
			extra = 4
		}
		return b, 4 + int64(size) + extra, nil
	}
	return nil, 0, io.EOF
}

// lz4Legacy decodes the kernel's legacy LZ4 format: a magic, then chunks
// of [little-endian compressed size][block], each at most 8 MiB
// uncompressed. The stream ends at EOF or where the next size is not a
// plausible chunk (the next segment, or padding).
type lz4Legacy struct {
	r       byteReader
	started bool
	out     []byte
	buf     []byte
	done    bool
}

const lz4LegacyChunk = 8 << 20

func (l *lz4Legacy) Read(p []byte) (int, error) {
	for len(l.out) == 0 {
		if l.done {
			return 0, io.EOF
		}
		if err := l.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}

func (l *lz4Legacy) next() error {
	if !l.started {
		magic := make([]byte, 4)
		if _, err := io.ReadFull(l.r, magic); err != nil {
			return io.ErrUnexpectedEOF
		}
		l.started = true
	}
	b, err := peekBytes(l.r, 4)
	if err != nil || len(b) < 4 {
		l.done = true
		return nil
	}
	size := binary.LittleEndian.Uint32(b)
	if size == 0x184C2102 { // a new legacy stream continues this one
		io.ReadFull(l.r, make([]byte, 4))
		return nil
	}
	if size == 0 || size > uint32(lz4.CompressBlockBound(lz4LegacyChunk)) {
		l.done = true
		return nil
	}
	io.ReadFull(l.r, make([]byte, 4))
	if cap(l.buf) < int(size) {
		l.buf = make([]byte, size)
	}
	in := l.buf[:size]
	if _, err := io.ReadFull(l.r, in); err != nil {
		return io.ErrUnexpectedEOF
	}
	out := make([]byte, lz4LegacyChunk)
	n, err := lz4.UncompressBlock(in, out)
	if err != nil {
		return fmt.Errorf("lz4 legacy chunk: %w", err)
	}
	l.out = out[:n]
	return nil
}
