package fsimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Superblock is what an image file says of itself.
type Superblock struct {
	Format      Format    `json:"format"`
	Created     time.Time `json:"-"`
	CreatedUnix int64     `json:"created"`
	Bytes       int64     `json:"bytes"`      // the filesystem's length; the file may be padded beyond it
	BlockSize   int64     `json:"block_size"` // bytes
	Inodes      uint64    `json:"inodes"`
	Compression string    `json:"compression,omitempty"` // squashfs only
}

// ErrNotImage says the bytes are neither a squashfs nor an erofs.
var ErrNotImage = errors.New("not a squashfs or erofs image")

const (
	squashMagic = 0x73717368
	erofsMagic  = 0xE0F5E1E2
	erofsOffset = 1024
)

var squashCompressors = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// Detect says which format r holds.
func Detect(r io.ReaderAt) (Format, error) {
	sb, err := ReadSuperblock(r)
	if err != nil {
		return "", err
	}
	return sb.Format, nil
}

// ReadSuperblock reads and checks the superblock of a squashfs (version
// 4) or an erofs image. Every field used is range-checked: the file is
// not trusted.
func ReadSuperblock(r io.ReaderAt) (*Superblock, error) {
	var b [erofsOffset + 128]byte
	n, err := r.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	le := binary.LittleEndian
	if n >= 96 && le.Uint32(b[0:]) == squashMagic {
		major, minor := le.Uint16(b[28:]), le.Uint16(b[30:])
		if major != 4 {
			return nil, fmt.Errorf("squashfs version %d.%d: only 4.x is read: %w", major, minor, ErrNotImage)
		}
		bs, blog := le.Uint32(b[12:]), le.Uint16(b[22:])
		if blog < 12 || blog > 20 || bs != 1<<blog {
			return nil, fmt.Errorf("squashfs block size %d (log %d) is not a power of two from 4 KiB to 1 MiB: %w", bs, blog, ErrNotImage)
		}
		used := le.Uint64(b[40:])
		if used > 1<<50 {
			return nil, fmt.Errorf("squashfs says it is %d bytes long: %w", used, ErrNotImage)
		}
		comp, ok := squashCompressors[le.Uint16(b[20:])]
		if !ok {
			return nil, fmt.Errorf("squashfs compressor %d is unknown: %w", le.Uint16(b[20:]), ErrNotImage)
		}
		t := int64(le.Uint32(b[8:]))
		return &Superblock{Format: Squashfs, Created: time.Unix(t, 0), CreatedUnix: t, Bytes: int64(used), BlockSize: int64(bs),
			Inodes: uint64(le.Uint32(b[4:])), Compression: comp}, nil
	}
	if n >= erofsOffset+40 && le.Uint32(b[erofsOffset:]) == erofsMagic {
		s := b[erofsOffset:]
		bits := s[12]
		if bits < 9 || bits > 16 {
			return nil, fmt.Errorf("erofs block size 2^%d is out of range: %w", bits, ErrNotImage)
		}
		t := le.Uint64(s[24:])
		if t > 1<<40 {
			return nil, fmt.Errorf("erofs build time %d is out of range: %w", t, ErrNotImage)
		}
		blocks := int64(le.Uint32(s[36:]))
		return &Superblock{Format: EROFS, Created: time.Unix(int64(t), 0), CreatedUnix: int64(t), Bytes: blocks << bits, BlockSize: 1 << bits,
			Inodes: le.Uint64(s[16:])}, nil
	}
	return nil, ErrNotImage
}
