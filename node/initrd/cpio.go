package initrd

import (
	"fmt"
	"io"
	"io/fs"
	"nroot/internal/fsroot"
	"strconv"
	"time"
)

// cpio formats.
const (
	FormatNewc = "newc" // 070701
	FormatCRC  = "crc"  // 070702, newc with a checksum of the data
	FormatODC  = "odc"  // 070707, portable ASCII
)

// Trailer is the name of the entry that ends a cpio archive.
const Trailer = "TRAILER!!!"

// Header is one cpio entry, with where in the image it was found.
type Header struct {
	Name      string
	Mode      uint32 // st_mode: type and permission bits
	UID, GID  int
	NLink     int
	ModTime   time.Time
	Size      int64
	Ino       uint64
	DevMajor  uint32
	DevMinor  uint32
	RDevMajor uint32
	RDevMinor uint32
	Linkname  string // a symlink's target, read from its data
	Checksum  uint32 // crc format only
	Format    string

	Segment     int         // index of the segment in the image, from 0
	Offset      int64       // the segment's offset in the image
	Compression Compression // the segment's compression
}

// File type bits of Mode: st_mode's, as fsroot has them.
const (
	TypeMask = fsroot.ModeType
	TypeSock = fsroot.ModeSocket
	TypeLink = fsroot.ModeLink
	TypeReg  = fsroot.ModeReg
	TypeBlk  = fsroot.ModeBlock
	TypeDir  = fsroot.ModeDir
	TypeChr  = fsroot.ModeChar
	TypeFifo = fsroot.ModeFIFO
)

// FileMode converts Mode to an fs.FileMode.
func (h *Header) FileMode() fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	if h.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch h.Mode & TypeMask {
	case TypeDir:
		m |= fs.ModeDir
	case TypeLink:
		m |= fs.ModeSymlink
	case TypeChr:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlk:
		m |= fs.ModeDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSock:
		m |= fs.ModeSocket
	}
	return m
}

// IsDir, IsRegular and IsSymlink test the entry's type.
func (h *Header) IsDir() bool     { return h.Mode&TypeMask == TypeDir }
func (h *Header) IsRegular() bool { return h.Mode&TypeMask == TypeReg }
func (h *Header) IsSymlink() bool { return h.Mode&TypeMask == TypeLink }

// MaxName and MaxSymlink bound what a hostile image can make us hold.
const (
	MaxName    = 4096
	MaxSymlink = 4096
)

// readHeader reads a cpio header whose 6-byte magic has been read.
func readHeader(r io.Reader, magic string) (h *Header, nameLen int, err error) {
	h = &Header{}
	switch magic {
	case "070701", "070702":
		var b [104]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, 0, truncated(err)
		}
		f := func(i int) (uint64, error) {
			v, err := strconv.ParseUint(string(b[i*8:i*8+8]), 16, 32)
			if err != nil {
				return 0, fmt.Errorf("bad hex field %q", b[i*8:i*8+8])
			}
			return v, nil
		}
		var v [13]uint64
		for i := range v {
			if v[i], err = f(i); err != nil {
				return nil, 0, err
			}
		}
		h.Ino, h.Mode, h.UID, h.GID, h.NLink = v[0], uint32(v[1]), int(v[2]), int(v[3]), int(v[4])
		h.ModTime = time.Unix(int64(v[5]), 0)
		h.Size = int64(v[6])
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor = uint32(v[7]), uint32(v[8]), uint32(v[9]), uint32(v[10])
		nameLen = int(v[11])
		h.Checksum = uint32(v[12])
		h.Format = FormatNewc
		if magic == "070702" {
			h.Format = FormatCRC
		}
	case "070707":
		var b [70]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, 0, truncated(err)
		}
		o := func(s []byte) (uint64, error) {
			v, err := strconv.ParseUint(string(s), 8, 64)
			if err != nil {
				return 0, fmt.Errorf("bad octal field %q", s)
			}
			return v, nil
		}
		fields := [][]byte{b[0:6], b[6:12], b[12:18], b[18:24], b[24:30], b[30:36], b[36:42], b[42:53], b[53:59], b[59:70]}
		var v [10]uint64
		for i, s := range fields {
			if v[i], err = o(s); err != nil {
				return nil, 0, err
			}
		}
		dev, rdev := uint32(v[0]), uint32(v[6])
		h.DevMajor, h.DevMinor = dev>>8, dev&0xff
		h.Ino, h.Mode, h.UID, h.GID, h.NLink = v[1], uint32(v[2]), int(v[3]), int(v[4]), int(v[5])
		h.RDevMajor, h.RDevMinor = rdev>>8, rdev&0xff
		h.ModTime = time.Unix(int64(v[7]), 0)
		nameLen = int(v[8])
		h.Size = int64(v[9])
		h.Format = FormatODC
	default:
		return nil, 0, fmt.Errorf("bad cpio magic %q", magic)
	}
	if nameLen < 1 || nameLen > MaxName {
		return nil, 0, fmt.Errorf("name length %d out of range", nameLen)
	}
	if h.Size < 0 || h.Size > 1<<40 {
		return nil, 0, fmt.Errorf("size %d out of range", h.Size)
	}
	return h, nameLen, nil
}

// readFailure says why a segment's data stopped: it ended too soon, or
// its decoder found it damaged (the decoder's own words).
func readFailure(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "truncated: unexpected EOF"
	}
	return err.Error()
}

func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pad4 is how many bytes align n to 4.
func pad4(n int64) int64 { return (4 - n%4) % 4 }
