// Package initrd reads, checks and writes initramfs images: sequences of
// cpio archives, uncompressed or compressed, the way the kernel and
// dracut lay them out. The API streams like archive/tar.
package initrd

import (
	"bufio"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
)

// Segment describes one archive of an image, once read to its end.
type Segment struct {
	Index            int         `json:"index"`
	Offset           int64       `json:"offset"`
	CompressedSize   int64       `json:"compressed_size"`
	UncompressedSize int64       `json:"uncompressed_size"`
	Compression      Compression `json:"compression"`
	Entries          int         `json:"entries"`
}

// counter counts the bytes taken from the image, lets decoders read byte
// by byte without over-reading, and takes back the few bytes a decoder
// reads past its stream's end to find that it ended.
type counter struct {
	raw  *countingReader
	br   *bufio.Reader // over raw
	back []byte        // pushed-back bytes, served first (last element first)
	hist [8]byte
	h    int // bytes in hist
}

func newCounter(r io.Reader) *counter {
	raw := &countingReader{r: r}
	return &counter{raw: raw, br: bufio.NewReaderSize(raw, 256<<10)}
}

// pos is the offset in the image of the next byte to be read.
func (c *counter) pos() int64 {
	return c.raw.n - int64(c.br.Buffered()) - int64(len(c.back))
}

// direct is what a decoder that never reads past its stream's end may
// read from: the buffered reader itself when nothing is pushed back, so
// that decoders with a fast path for *bufio.Reader (flate) take it. The
// position stays exact; the history for unread is not kept.
func (c *counter) direct() byteReader {
	if len(c.back) == 0 {
		c.h = 0
		return c.br
	}
	return c
}

// remember keeps the last len(hist) bytes read, for unread.
func (c *counter) remember(p []byte) {
	k := len(p)
	if k >= len(c.hist) {
		copy(c.hist[:], p[k-len(c.hist):])
		c.h = len(c.hist)
		return
	}
	copy(c.hist[:], c.hist[k:])
	copy(c.hist[len(c.hist)-k:], p)
	c.h = min(c.h+k, len(c.hist))
}

func (c *counter) rememberByte(b byte) {
	copy(c.hist[:], c.hist[1:])
	c.hist[len(c.hist)-1] = b
	c.h = min(c.h+1, len(c.hist))
}

func (c *counter) Read(p []byte) (int, error) {
	if len(c.back) > 0 {
		b, _ := c.ReadByte()
		p[0] = b
		return 1, nil
	}
	n, err := c.br.Read(p)
	c.remember(p[:n])
	return n, err
}

func (c *counter) ReadByte() (byte, error) {
	var b byte
	if k := len(c.back); k > 0 {
		b, c.back = c.back[k-1], c.back[:k-1]
	} else {
		var err error
		if b, err = c.br.ReadByte(); err != nil {
			return 0, err
		}
	}
	c.rememberByte(b)
	return b, nil
}

// unread pushes back the last k bytes read (k <= 8).
func (c *counter) unread(k int) {
	if k > c.h {
		k = c.h
	}
	for i := 0; i < k; i++ {
		c.back = append(c.back, c.hist[len(c.hist)-1-i])
	}
	c.h -= k
	copy(c.hist[k:], c.hist[:len(c.hist)-k])
}

func (c *counter) Peek(n int) ([]byte, error) {
	if len(c.back) == 0 {
		return c.br.Peek(n)
	}
	out := make([]byte, 0, n)
	for i := len(c.back) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, c.back[i])
	}
	if len(out) < n {
		more, err := c.br.Peek(n - len(out))
		out = append(out, more...)
		if len(out) < n {
			return out, err
		}
	}
	return out, nil
}

// overread turns the error a decoder gives when it reads past the end
// of its stream into io.EOF, giving back the bytes it read: ulikunitz/xz
// reads one byte to check nothing follows a single stream, Go's bzip2
// reads two looking for a concatenated stream.
type overread struct {
	r   io.Reader
	src *counter
	is  func(error) bool // the decoder's complaint about what follows
	k   int
}

func (o *overread) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF && o.is(err) {
		o.src.unread(o.k)
		return n, io.EOF
	}
	return n, err
}

// countingReader counts the bytes read through it: from the image under
// the buffer, and of each segment's cpio stream.
type countingReader struct {
	r io.Reader
	n int64
}

func (s *countingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

// FormatError locates a problem in an image.
type FormatError struct {
	Offset  int64 // in the image, or of the segment for compressed data
	Segment int   // -1 before the first segment
	Msg     string
}

func (e *FormatError) Error() string {
	if e.Segment < 0 {
		return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("segment %d at offset %d: %s", e.Segment, e.Offset, e.Msg)
}

// Reader reads every entry of every segment of an image, in order.
type Reader struct {
	src      *counter
	segs     []Segment
	cur      *countingReader // the current segment's cpio stream, nil between segments
	closeDec func()
	remain   int64 // body bytes of the current entry not yet read
	pad      int64 // padding after the body
	hdr      *Header
	crc      uint32
	err      error
}

// NewReader returns a reader of the image r.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: newCounter(r)}
}

// Segments returns the segments read so far; complete after Next has
// returned io.EOF.
func (r *Reader) Segments() []Segment { return r.segs }

func (r *Reader) seg() *Segment { return &r.segs[len(r.segs)-1] }

func (r *Reader) fail(msg string, a ...any) error {
	e := &FormatError{Msg: fmt.Sprintf(msg, a...), Segment: -1}
	if len(r.segs) > 0 {
		e.Segment, e.Offset = r.seg().Index, r.seg().Offset
	} else {
		e.Offset = r.src.pos()
	}
	r.err = e
	return e
}

// Next advances to the next entry, skipping the rest of the current one.
// TRAILER!!! entries are not returned. At the end of the image it
// returns io.EOF.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.skipBody(); err != nil {
		return nil, err
	}
	for {
		if r.cur == nil {
			ok, err := r.startSegment()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, io.EOF
			}
		}
		h, err := r.readEntry()
		if err != nil {
			return nil, err
		}
		if h != nil {
			return h, nil
		}
	}
}

// startSegment skips padding and opens the next segment; false at the
// end of the image.
func (r *Reader) startSegment() (bool, error) {
	for {
		b, err := r.src.Peek(1)
		if err != nil && err != io.EOF {
			return false, r.fail("reading the image: %v", err)
		}
		if len(b) == 0 {
			if len(r.segs) == 0 {
				return false, r.fail("no cpio archive: the image is empty or only zero padding")
			}
			return false, nil
		}
		if b[0] != 0 {
			break
		}
		r.src.ReadByte()
	}
	off := r.src.pos()
	magic, _ := r.src.Peek(6)
	seg := Segment{Index: len(r.segs), Offset: off}
	if len(magic) == 6 && string(magic[:5]) == "07070" && (magic[5] == '1' || magic[5] == '2' || magic[5] == '7') {
		seg.Compression = None
		r.segs = append(r.segs, seg)
		r.cur = &countingReader{r: r.src}
		r.closeDec = func() {}
		return true, nil
	}
	c, ok := detect(magic)
	if !ok {
		r.segs = append(r.segs, seg)
		return false, r.fail("unknown data (starts % x): not a cpio archive or a known compression", magic)
	}
	seg.Compression = c
	r.segs = append(r.segs, seg)
	in := byteReader(r.src)
	if c == Gzip {
		in = r.src.direct()
	}
	dec, closeDec, err := openSegment(c, in)
	if err != nil {
		return false, r.fail("%s: %v", c, err)
	}
	switch c {
	case Bzip2:
		dec = &overread{r: dec, src: r.src, is: bzip2Continuation, k: 2}
	}
	r.cur, r.closeDec = &countingReader{r: dec}, closeDec
	return true, nil
}

// bzip2Continuation is Go's bzip2 reader finding no second stream after
// the first: its typed error with the value the package documents.
func bzip2Continuation(err error) bool {
	var se bzip2.StructuralError
	return errors.As(err, &se) && se == "bad magic value in continuation file"
}

// endSegment records the segment's sizes and returns to the image.
func (r *Reader) endSegment() {
	s := r.seg()
	s.CompressedSize = r.src.pos() - s.Offset
	s.UncompressedSize = r.cur.n
	r.closeDec()
	r.cur = nil
}

// readEntry reads the next header of the current segment; nil, nil when
// the segment ended.
func (r *Reader) readEntry() (*Header, error) {
	seg := r.seg()
	var magic [6]byte
	n, err := readMagic(r.cur, magic[:])
	// The clean end of a compressed stream, right after the trailer or
	// after zero padding shorter than a magic (dracut pads its archive
	// to a block; which bytes are left depends on the names before it).
	if err == io.EOF && seg.Compression != None && allZero(magic[:n]) {
		r.endSegment()
		return nil, nil
	}
	if err == io.EOF && n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, r.fail("%s", readFailure(err))
	}
	// Within a compressed stream, archives may follow one another with
	// zero padding between them.
	if seg.Compression != None && magic == [6]byte{} {
		var one [1]byte
		for {
			n, err := r.cur.Read(one[:])
			if n == 0 && err == io.EOF {
				r.endSegment()
				return nil, nil
			}
			if err != nil && err != io.EOF {
				return nil, r.fail("padding: %v", err)
			}
			if n == 1 && one[0] != 0 {
				break
			}
		}
		magic[0] = one[0]
		if _, err := io.ReadFull(r.cur, magic[1:]); err != nil {
			return nil, r.fail("%s", readFailure(err))
		}
	}
	h, nameLen, err := readHeader(r.cur, string(magic[:]))
	if err != nil {
		return nil, r.fail("entry %d: %v", seg.Entries, err)
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(r.cur, name); err != nil {
		return nil, r.fail("entry %d: name: %s", seg.Entries, readFailure(err))
	}
	if name[nameLen-1] != 0 {
		return nil, r.fail("entry %d: name not NUL-terminated", seg.Entries)
	}
	h.Name = string(name[:nameLen-1])
	hdrLen := int64(110)
	if h.Format == FormatODC {
		hdrLen = 76
	}
	if h.Format != FormatODC {
		if _, err := io.CopyN(io.Discard, r.cur, pad4(hdrLen+int64(nameLen))); err != nil {
			return nil, r.fail("entry %s: %s", h.Name, readFailure(err))
		}
	}
	h.Segment, h.Offset, h.Compression = seg.Index, seg.Offset, seg.Compression
	r.remain, r.pad, r.hdr, r.crc = h.Size, 0, h, 0
	if h.Format != FormatODC {
		r.pad = pad4(h.Size)
	}
	if h.Name == Trailer {
		if err := r.skipBody(); err != nil {
			return nil, err
		}
		if seg.Compression == None {
			r.endSegment()
		}
		return nil, nil
	}
	seg.Entries++
	if h.IsSymlink() {
		if h.Size > MaxSymlink {
			return nil, r.fail("symlink %s: target of %d bytes", h.Name, h.Size)
		}
		t := make([]byte, h.Size)
		if _, err := io.ReadFull(r, t); err != nil {
			return nil, err
		}
		h.Linkname = string(t)
	}
	return h, nil
}

// Read reads the current entry's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.cur.Read(p)
	r.remain -= int64(n)
	if r.hdr.Format == FormatCRC {
		for _, b := range p[:n] {
			r.crc += uint32(b)
		}
	}
	if r.remain == 0 && r.hdr.Format == FormatCRC && r.hdr.IsRegular() && r.crc != r.hdr.Checksum {
		return n, r.fail("entry %s: checksum %08x, header says %08x", r.hdr.Name, r.crc, r.hdr.Checksum)
	}
	if err == io.EOF && r.remain > 0 {
		return n, r.fail("entry %s: truncated data (%d bytes missing)", r.hdr.Name, r.remain)
	}
	if err != nil && err != io.EOF {
		return n, r.fail("entry %s: %v", r.hdr.Name, err)
	}
	return n, nil
}

func (r *Reader) skipBody() error {
	if r.hdr == nil {
		return nil
	}
	if r.remain > 0 {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
	if r.pad > 0 {
		if _, err := io.CopyN(io.Discard, r.cur, r.pad); err != nil {
			return r.fail("entry %s: truncated padding", r.hdr.Name)
		}
		r.pad = 0
	}
	r.hdr = nil
	return nil
}

// readMagic reads len(b) bytes as io.ReadFull does, but returns the
// reader's own error where it stops: io.EOF for the stream's clean end,
// whatever the decoder says for a damaged one.
func readMagic(r io.Reader, b []byte) (int, error) {
	n, empty := 0, 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			if n == len(b) && err == io.EOF {
				return n, nil
			}
			return n, err
		}
		if k == 0 {
			if empty++; empty > 100 {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
