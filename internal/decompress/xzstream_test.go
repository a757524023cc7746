package decompress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"os/exec"
	"strings"
	"testing"
)

// TestReadXZVLI: an xz integer is read in its one form, its shortest of
// at most 9 bytes, as liblzma's lzma_vli_decode reads it; a longer form
// of a value or a tenth byte is refused, and reading stops there.
func TestReadXZVLI(t *testing.T) {
	ff := func(n int) []byte { return bytes.Repeat([]byte{0xff}, n) }
	for _, tt := range []struct {
		name string
		in   []byte
		want uint64
		err  error // errors.Is; nil is accepted
		used int   // bytes read
	}{
		{"0 in one byte", []byte{0x00}, 0, nil, 1},
		{"127 in one byte", []byte{0x7f}, 127, nil, 1},
		{"128 in two bytes", []byte{0x80, 0x01}, 128, nil, 2},
		{"2^56 in nine bytes", append(bytes.Repeat([]byte{0x80}, 8), 0x01), 1 << 56, nil, 9},
		{"2^63-1, the largest, in nine bytes", append(ff(8), 0x7f), math.MaxInt64, nil, 9},
		{"the bytes after an integer are left", []byte{0x05, 0x80}, 5, nil, 1},
		{"0 as 0x80 0x00", []byte{0x80, 0x00}, 0, errXZVLI, 2},
		{"127 as 0xff 0x00", []byte{0xff, 0x00}, 0, errXZVLI, 2},
		{"128 in three bytes", []byte{0x80, 0x81, 0x00}, 0, errXZVLI, 3},
		{"2^56-1 in nine bytes", append(ff(8), 0x00), 0, errXZVLI, 9},
		{"a tenth byte", append(ff(9), 0x01), 0, errXZVLI, 9},
		{"0 in ten bytes", append(bytes.Repeat([]byte{0x80}, 9), 0x00), 0, errXZVLI, 9},
		{"nothing", nil, 0, io.EOF, 0},
		{"ends inside", []byte{0x80}, 0, io.EOF, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.in)
			got, err := readXZVLI(r)
			if tt.err == nil && (err != nil || got != tt.want) {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("got %d, %v; want %v", got, err, tt.err)
			}
			if tt.err == errXZVLI && !errors.Is(err, errXZ) {
				t.Errorf("err = %v, not errXZ", err)
			}
			if used := len(tt.in) - r.Len(); used != tt.used {
				t.Errorf("read %d bytes, want %d", used, tt.used)
			}
		})
	}
}

// FuzzReadXZVLI: an integer accepted is in its shortest form: encoding
// the value again gives the bytes read.
func FuzzReadXZVLI(f *testing.F) {
	f.Add([]byte{0x80, 0x00})
	f.Add(append(bytes.Repeat([]byte{0xff}, 8), 0x7f))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		v, err := readXZVLI(r)
		if err != nil {
			return
		}
		if read := b[:len(b)-r.Len()]; !bytes.Equal(binary.AppendUvarint(nil, v), read) {
			t.Fatalf("accepted % x as %d, whose encoding is % x", read, v, binary.AppendUvarint(nil, v))
		}
	})
}

// xzVLIEdit says which integer of a stream xzWiden writes longer than
// it need be, and by how many bytes (1 when 0).
type xzVLIEdit struct {
	longer int
	index  int // the index's integers: 0 the number of records, then each record's unpadded and uncompressed sizes; -1 none; xzLastVLI the last
	header int // the first block header's integers, in order; -1 none
}

const xzLastVLI = -2

// appendVLI appends v in its shortest form, or longer by some bytes
// (0x80 bytes, then a zero byte).
func appendVLI(b []byte, v uint64, longer int) []byte {
	b = binary.AppendUvarint(b, v)
	if longer > 0 {
		b[len(b)-1] |= 0x80
		b = append(b, bytes.Repeat([]byte{0x80}, longer-1)...)
		b = append(b, 0)
	}
	return b
}

// xzWiden rewrites a stream xz wrote, of one or more blocks, with the
// integer e names longer, and every CRC32, padding, the index's unpadded
// size and the footer's index size put right for it. With no integer
// named it rebuilds the stream as it was.
func xzWiden(t *testing.T, s []byte, e xzVLIEdit) []byte {
	t.Helper()
	longer := func(this bool) int {
		if !this {
			return 0
		}
		return max(e.longer, 1)
	}
	le32 := binary.LittleEndian.Uint32
	crc := func(b []byte) []byte { return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b)) }
	foot := s[len(s)-12:]
	indexStart := len(s) - 12 - int(le32(foot[4:8])+1)*4
	// The index's integers, read with the standard library's decoder.
	var vlis []uint64
	idx := bytes.NewReader(s[indexStart+1:])
	count, _ := binary.ReadUvarint(idx)
	vlis = append(vlis, count)
	for range 2 * count {
		v, err := binary.ReadUvarint(idx)
		if err != nil {
			t.Fatal(err)
		}
		vlis = append(vlis, v)
	}
	if e.index == xzLastVLI {
		e.index = len(vlis) - 1
	}

	// The first block's header: its integers in order (the sizes it
	// records, then each filter's ID and property size), re-encoded.
	hlen := (int(s[12]) + 1) * 4
	h := s[12 : 12+hlen]
	body := bytes.NewReader(h[2 : hlen-4])
	nh := []byte{0, h[1]}
	next := 0
	vli := func() uint64 {
		v, err := binary.ReadUvarint(body)
		if err != nil {
			t.Fatal(err)
		}
		nh = appendVLI(nh, v, longer(next == e.header))
		next++
		return v
	}
	for bit := byte(0x40); bit != 0; bit <<= 1 {
		if h[1]&bit != 0 {
			vli()
		}
	}
	for range h[1]&3 + 1 {
		vli()
		props := make([]byte, vli())
		io.ReadFull(body, props)
		nh = append(nh, props...)
	}
	if e.header >= next {
		t.Fatalf("the block header has %d integers, no %d", next, e.header)
	}
	for len(nh)%4 != 0 {
		nh = append(nh, 0)
	}
	nh[0] = byte(len(nh) / 4)
	nh = crc(nh)
	vlis[1] += uint64(len(nh) - hlen) // the first record's unpadded size

	// The index, and the footer that records its size.
	ni := []byte{0}
	for i, v := range vlis {
		ni = appendVLI(ni, v, longer(i == e.index))
	}
	for len(ni)%4 != 0 {
		ni = append(ni, 0)
	}
	ni = crc(ni)
	nf := binary.LittleEndian.AppendUint32(nil, uint32(len(ni)/4-1))
	nf = append(nf, foot[8:10]...) // the index's size, the stream flags
	nf = append(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(nf)), nf...)
	nf = append(nf, 'Y', 'Z')

	out := append(bytes.Clone(s[:12]), nh...)
	out = append(out, s[12+hlen:indexStart]...)
	out = append(out, ni...)
	return append(out, nf...)
}

// TestXZRefusesLongerIntegers: a stream xz wrote, with one integer of
// its index or of a block header rewritten one byte longer than its
// shortest form and every CRC32 right, is refused by the xz program
// (xz -t) and by nroot, by the Go decoder and by the walker that hands
// streams to the xz program; rebuilt with nothing rewritten, it is
// taken by all three.
func TestXZRefusesLongerIntegers(t *testing.T) {
	needXZ(t)
	data := []byte(strings.Repeat("an index lists every block of the stream\n", 5000))
	// Two threads: the block headers record both sizes.
	cmd := exec.Command("xz", "-c", "-T2", "--block-size=64KiB", "--check=crc32")
	cmd.Stdin = bytes.NewReader(data)
	stream, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if stream[13]&0xc0 != 0xc0 {
		t.Fatalf("xz wrote a block header % x without its sizes", stream[12:16])
	}
	for _, tt := range []struct {
		name string
		edit xzVLIEdit
	}{
		{"rebuilt as it was", xzVLIEdit{index: -1, header: -1}},
		{"index: the number of records", xzVLIEdit{index: 0, header: -1}},
		{"index: the first record's unpadded size", xzVLIEdit{index: 1, header: -1}},
		{"index: the last record's uncompressed size", xzVLIEdit{index: xzLastVLI, header: -1}},
		{"index: the number of records, 3 bytes longer", xzVLIEdit{longer: 3, index: 0, header: -1}},
		{"block header: the compressed size", xzVLIEdit{index: -1, header: 0}},
		{"block header: the uncompressed size", xzVLIEdit{index: -1, header: 1}},
		{"block header: LZMA2's filter ID", xzVLIEdit{index: -1, header: 2}},
		{"block header: LZMA2's property size", xzVLIEdit{index: -1, header: 3}},
		// The header grows by 4 bytes, and the index's unpadded size with it.
		{"block header: the compressed size, 4 bytes longer", xzVLIEdit{longer: 4, index: -1, header: 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := xzWiden(t, stream, tt.edit)
			sound := tt.edit.index == -1 && tt.edit.header == -1
			if sound && !bytes.Equal(b, stream) {
				t.Fatal("the stream rebuilt with nothing rewritten differs from xz's")
			}
			xzT := exec.Command("xz", "-t")
			xzT.Stdin = bytes.NewReader(b)
			if out, err := xzT.CombinedOutput(); (err == nil) != sound {
				t.Fatalf("xz -t: %v %s, want ok %v", err, out, sound)
			}
			got, err := goDecodeXZ(b)
			if sound && (err != nil || !bytes.Equal(got, data)) {
				t.Fatalf("Go decoder: %d bytes, %v", len(got), err)
			}
			if !sound && !errors.Is(err, errXZVLI) {
				t.Fatalf("Go decoder: err = %v, want errXZVLI", err)
			}
			walked, err := io.ReadAll(NewXZStream(bufio.NewReader(bytes.NewReader(b)), false))
			if sound && (err != nil || !bytes.Equal(walked, b)) {
				t.Fatalf("walker: %d bytes, %v", len(walked), err)
			}
			if !sound && !errors.Is(err, errXZVLI) {
				t.Fatalf("walker: err = %v, want errXZVLI", err)
			}
		})
	}
}

func goDecodeXZ(b []byte) ([]byte, error) {
	return io.ReadAll(newXZReader(bufio.NewReader(bytes.NewReader(b))))
}
