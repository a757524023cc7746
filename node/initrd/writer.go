package initrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Writer writes a newc cpio archive, like tar.Writer: WriteHeader, then
// the data, then Close for the trailer. Unlike github.com/cavaliergopher/cpio
// it keeps inode, device and rdev numbers and writes a symlink's target
// as its data.
type Writer struct {
	w      io.Writer
	n      int64 // bytes written, for padding
	remain int64
	pad    int64
	closed bool
}

// NewWriter returns a writer of one cpio archive to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return err
}

// WriteHeader starts an entry. For a symlink, Linkname is written as its
// data and Size is ignored.
func (w *Writer) WriteHeader(h *Header) error {
	if w.remain > 0 {
		return fmt.Errorf("cpio: %d bytes of the previous entry missing", w.remain)
	}
	if err := w.write(make([]byte, w.pad)); err != nil {
		return err
	}
	w.pad = 0
	size := h.Size
	if h.IsSymlink() {
		size = int64(len(h.Linkname))
	}
	if len(h.Name) == 0 || len(h.Name)+1 > MaxName {
		return fmt.Errorf("cpio: bad name %q", h.Name)
	}
	if size < 0 || size > 0xFFFFFFFF {
		return fmt.Errorf("cpio: %s: size %d does not fit newc", h.Name, size)
	}
	mtime := h.ModTime.Unix()
	if mtime < 0 {
		mtime = 0
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		uint32(h.Ino), h.Mode, uint32(h.UID), uint32(h.GID), uint32(h.NLink), uint32(mtime), uint32(size),
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor, uint32(len(h.Name)+1), 0)
	if err := w.write([]byte(hdr + h.Name + "\x00")); err != nil {
		return err
	}
	if err := w.write(make([]byte, pad4(w.n))); err != nil {
		return err
	}
	w.remain = size
	w.pad = pad4(size)
	if h.IsSymlink() {
		_, err := w.Write([]byte(h.Linkname))
		return err
	}
	return nil
}

// Write writes the current entry's data.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		return 0, errors.New("cpio: write longer than the header's size")
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.remain -= int64(n)
	return n, err
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.WriteHeader(&Header{Name: Trailer, NLink: 1}); err != nil {
		return err
	}
	return w.write(make([]byte, w.pad))
}

// compressor wraps w in the named compression, as dracut and the kernel
// read it: xz with CRC32 checks, lz4 in the legacy format.
func compressor(c Compression, w io.Writer) (io.WriteCloser, error) {
	switch c {
	case None, "":
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.BestCompression)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	case XZ:
		return xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 8 << 20}.NewWriter(w)
	case LZ4Legacy, LZ4:
		return &lz4LegacyWriter{w: w}, nil
	}
	return nil, fmt.Errorf("cannot write %s", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// lz4LegacyWriter writes the kernel's legacy LZ4 format: the magic, then
// 8 MiB chunks each compressed as one block with its size before it.
type lz4LegacyWriter struct {
	w       io.Writer
	buf     []byte
	started bool
}

func (l *lz4LegacyWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), lz4LegacyChunk-len(l.buf))
		l.buf = append(l.buf, p[:k]...)
		p = p[k:]
		if len(l.buf) == lz4LegacyChunk {
			if err := l.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (l *lz4LegacyWriter) flush() error {
	if !l.started {
		if _, err := l.w.Write([]byte{0x02, 0x21, 0x4c, 0x18}); err != nil {
			return err
		}
		l.started = true
	}
	if len(l.buf) == 0 {
		return nil
	}
	out := make([]byte, lz4.CompressBlockBound(len(l.buf)))
	var c lz4.CompressorHC
	n, err := c.CompressBlock(l.buf, out)
	if err != nil {
		return err
	}
	if n == 0 { // incompressible: the legacy format has no stored blocks
		return errors.New("lz4: incompressible chunk")
	}
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(n))
	if _, err := l.w.Write(size[:]); err != nil {
		return err
	}
	_, err = l.w.Write(out[:n])
	l.buf = l.buf[:0]
	return err
}

func (l *lz4LegacyWriter) Close() error { return l.flush() }
