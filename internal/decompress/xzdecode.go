package decompress

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// xzReader is nroot's Go xz decoder: the .xz container (streams, block
// headers, checks, index, footers) is read here, each block's LZMA2 data
// is decoded by the lzma package, and the x86 branch filter (xz --x86,
// which nroot node --initrd=small uses on amd64) is undone after it when
// the block has one. Every stream's index and checks are verified; a
// dictionary over MaxDict is refused before anything is allocated, and
// a block that records its size gets a dictionary no larger than it.
type xzReader struct {
	r       ByteReader
	state   int // 0 stream header, 1 blocks, 2 after a stream's footer
	flags   [2]byte
	check   byte
	block   *xzBlock
	records []xzRecord
	err     error
	// dictBytes is the dictionaries allocated so far, decoded the bytes
	// handed out: a block may not take the first past dictBudget.
	dictBytes, decoded int64
}

// dictPerByte is how many bytes of dictionary the blocks of a stream may
// allocate, beyond MaxDict, per byte they have decoded. A block whose
// header records no size gets the dictionary it asks for, allocated (and
// zeroed) whole, so a few bytes of empty blocks asking for 1 GiB each
// would otherwise cost a second and a GiB apiece. xz's own blocks are
// far inside it: a multi-threaded stream records its sizes, and a
// single-threaded one with --block-size of 1 MiB at -9 allocates 64 MiB
// a block.
const dictPerByte = 256

// ErrXZCheck is a block whose CRC32, CRC64 or SHA-256 does not match its
// data.
var ErrXZCheck = errors.New("xz: the block's check does not match its data")

// xzRecord is one block as the index lists it.
type xzRecord struct{ unpadded, uncompressed uint64 }

// xzBlock is the block being decoded.
type xzBlock struct {
	out          io.Reader // LZMA2, then the x86 filter
	in           *countingReader
	hash         hash.Hash
	headerLen    int64
	compressed   int64 // from the header; -1 when not recorded
	uncompressed int64
	n            int64 // bytes handed out so far
}

const (
	xzIDX86   = 0x04
	xzIDLZMA2 = 0x21
)

var crc64Table = crc64.MakeTable(crc64.ECMA)

// newXZReader decodes every concatenated xz stream of r, and the stream
// padding between them, to the end of r.
func newXZReader(r ByteReader) *xzReader { return &xzReader{r: r} }

func (x *xzReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, x.err
	}
	for x.err == nil {
		if x.block == nil {
			x.err = x.next()
			continue
		}
		n, err := x.readBlock(p)
		x.err = err
		if n > 0 {
			return n, nil
		}
	}
	return 0, x.err
}

// next reads up to the next block's data: a stream header, a block
// header, or an index and footer and what follows them.
func (x *xzReader) next() error {
	switch x.state {
	case 0:
		h, err := ReadN(x.r, 12)
		if err != nil {
			return truncated(err)
		}
		return x.streamHeader(h)
	case 1:
		b, err := x.r.ReadByte()
		if err != nil {
			return truncated(err)
		}
		if b == 0 {
			return x.indexAndFooter()
		}
		return x.blockHeader(b)
	default:
		// Stream padding, four zero bytes at a time, or another stream.
		h, err := readAfterStream(x.r)
		if err != nil || h == nil {
			return err
		}
		return x.streamHeader(h)
	}
}

func (x *xzReader) streamHeader(h []byte) error {
	check, err := parseXZStreamHeader(h)
	if err != nil {
		return err
	}
	switch check {
	case 0, 1, 4, 10:
	default:
		return fmt.Errorf("xz: check type %d, which the Go decoder lacks: %w", check, errXZ)
	}
	x.flags, x.check, x.records, x.state = [2]byte{h[6], h[7]}, check, x.records[:0], 1
	return nil
}

func (x *xzReader) newHash() hash.Hash {
	switch x.check {
	case 1:
		return crc32.NewIEEE()
	case 4:
		return crc64.New(crc64Table)
	case 10:
		return sha256.New()
	}
	return nil
}

// blockHeader reads a block header whose size byte b was just read and
// sets up the block's decoders.
func (x *xzReader) blockHeader(b byte) error {
	h, bh, err := readXZBlockHeader(x.r, b)
	if err != nil {
		return err
	}
	if bh.other {
		return ErrXZFilter
	}
	blk := &xzBlock{headerLen: int64(len(h)), compressed: bh.compressed, uncompressed: bh.uncompressed, hash: x.newHash()}
	dict := bh.dict
	// Within one block no match reaches back past its start, so a
	// dictionary as large as the block decodes it the same: xz records
	// 8 MiB at its default level for a control archive of a few KiB.
	if blk.uncompressed >= 0 && blk.uncompressed < dict {
		dict = blk.uncompressed
	}
	dict = max(dict, lzma.MinDictCap)
	x.dictBytes += dict
	if x.dictBytes > MaxDict+dictPerByte*x.decoded {
		return fmt.Errorf("xz: blocks ask for %d MiB of dictionaries after %d bytes decoded: %w", x.dictBytes>>20, x.decoded, ErrDictTooLarge)
	}
	blk.in = &countingReader{r: x.r}
	lz, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(blk.in)
	if err != nil {
		return fmt.Errorf("%w: %v", errXZ, err) // a dictionary the checks above let through
	}
	blk.out = lz
	if bh.x86 {
		blk.out = &x86Reader{r: lz, pos: bh.x86Start}
	}
	x.block = blk
	return nil
}

// readBlock hands on the block's data and, at its end, checks its sizes,
// padding and check.
func (x *xzReader) readBlock(p []byte) (int, error) {
	blk := x.block
	n, err := blk.out.Read(p)
	blk.n += int64(n)
	x.decoded += int64(n)
	if blk.hash != nil {
		blk.hash.Write(p[:n])
	}
	if blk.uncompressed >= 0 && blk.n > blk.uncompressed || blk.compressed >= 0 && blk.in.n > blk.compressed {
		return n, fmt.Errorf("xz: block larger than its header says: %w", errXZ)
	}
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		return n, fmt.Errorf("xz: block data: %w", err)
	}
	if blk.uncompressed >= 0 && blk.n != blk.uncompressed || blk.compressed >= 0 && blk.in.n != blk.compressed {
		return n, fmt.Errorf("xz: block smaller than its header says: %w", errXZ)
	}
	pad, err := ReadN(x.r, int(pad4(blk.in.n)))
	if err != nil || !bytes.Equal(pad, make([]byte, len(pad))) {
		return n, fmt.Errorf("xz: block padding: %w", errXZ)
	}
	size := xzCheckSizes[x.check]
	sum, err := ReadN(x.r, int(size))
	if err != nil {
		return n, truncated(err)
	}
	if blk.hash != nil && !bytes.Equal(sum, checkBytes(x.check, blk.hash)) {
		return n, ErrXZCheck
	}
	x.records = append(x.records, xzRecord{uint64(blk.headerLen + blk.in.n + size), uint64(blk.n)})
	if len(x.records) > maxXZIndex/2 {
		return n, fmt.Errorf("xz: over %d blocks: %w", maxXZIndex/2, errXZ)
	}
	x.block = nil
	return n, nil
}

// checkBytes is a block's check as the stream stores it: CRC32 and
// CRC64 little-endian, SHA-256 as its digest.
func checkBytes(check byte, h hash.Hash) []byte {
	switch check {
	case 1:
		return binary.LittleEndian.AppendUint32(nil, h.(hash.Hash32).Sum32())
	case 4:
		return binary.LittleEndian.AppendUint64(nil, h.(hash.Hash64).Sum64())
	}
	return h.Sum(nil)
}

// indexAndFooter reads the index whose indicator byte was just read,
// checks it against the blocks decoded, and reads the stream footer.
func (x *xzReader) indexAndFooter() error {
	i := 0
	buf, err := readXZIndex(x.r, func(unpadded, uncompressed uint64) error {
		if i >= len(x.records) || unpadded != x.records[i].unpadded || uncompressed != x.records[i].uncompressed {
			return fmt.Errorf("xz: index does not match the blocks: %w", errXZ)
		}
		i++
		return nil
	})
	if err != nil {
		return err
	}
	if i != len(x.records) {
		return fmt.Errorf("xz: index lists %d blocks, the stream has %d: %w", i, len(x.records), errXZ)
	}
	f, err := ReadN(x.r, 12)
	if err != nil {
		return truncated(err)
	}
	backward := (uint64(binary.LittleEndian.Uint32(f[4:8])) + 1) * 4
	if !bytes.Equal(f[10:], []byte("YZ")) || crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]) ||
		!bytes.Equal(f[8:10], x.flags[:]) || backward != uint64(len(buf)) {
		return fmt.Errorf("xz: stream footer: %w", errXZ)
	}
	x.state = 2
	return nil
}

// truncated is a read error inside a stream: the end of the input is
// io.ErrUnexpectedEOF, anything else (what a stream walker beneath
// found) is passed on.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// countingReader counts the bytes read through it, byte by byte as the
// LZMA2 decoder reads its chunk headers, so that it stops exactly at
// the end of the block's data.
type countingReader struct {
	r ByteReader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// x86Reader undoes xz's x86 branch filter (BCJ): the relative targets
// of CALL and JMP (E8, E9) that the encoder made absolute are made
// relative again. It is XZ Embedded's bcj_x86 (public domain), over a
// buffer whose last four bytes wait for the next read, as an
// instruction may straddle it.
type x86Reader struct {
	r        io.Reader
	pos      uint32 // stream position of buf[0]
	mask     uint32
	buf      []byte
	start    int // buf[start:ready] is filtered, not yet handed out
	ready, n int // buf[ready:n] is not yet filtered
	err      error
}

func (x *x86Reader) Read(p []byte) (int, error) {
	if x.buf == nil {
		x.buf = make([]byte, 64<<10)
	}
	for stalls := 0; ; {
		if x.start < x.ready {
			n := copy(p, x.buf[x.start:x.ready])
			x.start += n
			return n, nil
		}
		if x.err != nil {
			return 0, x.err
		}
		x.n = copy(x.buf, x.buf[x.ready:x.n])
		x.start, x.ready = 0, 0
		m, err := x.r.Read(x.buf[x.n:])
		x.n += m
		if m == 0 && err == nil {
			if stalls++; stalls > 100 {
				return 0, io.ErrNoProgress
			}
			continue
		}
		done := bcjX86(x.buf[:x.n], x.pos, &x.mask)
		if err != nil {
			// The last bytes, too few to hold an instruction, are
			// left as they are.
			x.err, done = err, x.n
		}
		x.ready = done
		x.pos += uint32(done)
	}
}

// bcjX86 filters buf, which starts at stream position pos, and returns
// how many of its bytes are final; mask carries state to the next call.
func bcjX86(buf []byte, pos uint32, mask *uint32) int {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	msb := func(b byte) bool { return b == 0x00 || b == 0xff }
	if len(buf) <= 4 {
		return 0
	}
	size := len(buf) - 4
	prevPos := -1
	prevMask := *mask
	i := 0
	for ; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || msb(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !msb(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - (pos + uint32(i) + 5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !msb(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= -(dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
	if d := i - prevPos; d > 3 {
		*mask = 0
	} else {
		*mask = prevMask << (d - 1)
	}
	return i
}
