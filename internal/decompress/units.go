package decompress

import (
	"io"
)

// ByteReader is what stream walkers read from: reading through ReadByte
// lets them stop exactly at the end of their stream.
type ByteReader interface {
	io.Reader
	io.ByteReader
}

// Units hands on exactly one compressed stream, unit by unit, and
// then reports EOF, so that a decoder reading ahead (or a decompressor in
// another process) never takes the next segment's bytes. Next parses a
// unit's header from R and returns the header bytes it consumed and the
// size of the whole unit, header included; the rest of the unit is read
// straight from R. Next returns io.EOF where the stream ends.
type Units struct {
	R      ByteReader
	Next   func() (hdr []byte, size int64, err error)
	remain int64 // bytes of the current unit still to pass
	peeked []byte
}

func (u *Units) Read(p []byte) (int, error) {
	for u.remain == 0 {
		hdr, size, err := u.Next()
		if err != nil {
			return 0, err
		}
		u.peeked, u.remain = hdr, size
	}
	if len(u.peeked) > 0 {
		n := copy(p, u.peeked)
		u.peeked = u.peeked[n:]
		u.remain -= int64(n)
		return n, nil
	}
	if int64(len(p)) > u.remain {
		p = p[:u.remain]
	}
	n, err := u.R.Read(p)
	u.remain -= int64(n)
	if err == io.EOF && u.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// ReadN reads exactly n bytes.
func ReadN(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// pad4 is how many bytes align n to 4.
func pad4(n int64) int64 { return (4 - n%4) % 4 }
