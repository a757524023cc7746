package decompress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// tinyX86 is "hello\xe8\x10\0\0\0 world, \xe8\0\x01\0\0 again\n" as
// xz --x86 --check=crc32 --lzma2=preset=0 writes it: the CALL targets
// are stored absolute (1a, 17 01), the decoder makes them relative again.
var tinyX86 = []byte{
	0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01, 0x69, 0x22, 0xde, 0x36, 0x02, 0x01, 0x04, 0x00,
	0x21, 0x01, 0x0c, 0x00, 0xd6, 0x7c, 0x18, 0xaf, 0x01, 0x00, 0x1d, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
	0xe8, 0x1a, 0x00, 0x00, 0x00, 0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x2c, 0x20, 0xe8, 0x17, 0x01,
	0x00, 0x00, 0x20, 0x61, 0x67, 0x61, 0x69, 0x6e, 0x0a, 0x00, 0x00, 0x00, 0x55, 0x0d, 0x5b, 0x59,
	0x00, 0x01, 0x32, 0x1e, 0x39, 0xdc, 0xf9, 0x37, 0x90, 0x42, 0x99, 0x0d, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x59, 0x5a,
}

const tinyPlain = "hello\xe8\x10\x00\x00\x00 world, \xe8\x00\x01\x00\x00 again\n"

func decodeXZ(b []byte) ([]byte, error) {
	r, err := NewReader(XZ, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// needXZ skips without the xz program, and fails under CI.
func needXZ(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("required component missing (CI=true): xz (package xz-utils)")
		}
		t.Skip("no xz program")
	}
}

// TestXZDecoderMatchesProgram: what the Go decoder makes of streams the
// xz program writes, with the x86 filter (as nroot node --initrd=small
// compresses) or without, every check type, one block or many, and
// concatenated streams with padding, is the input, byte for byte. The
// input is this test's own program, x86 code on amd64, and text.
func TestXZDecoderMatchesProgram(t *testing.T) {
	needXZ(t)
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe = exe[:min(len(exe), 3<<20)]
	text := []byte(strings.Repeat("the root is NFS, an overlay or a loop-mounted image\n", 20000))
	xzOf := func(t *testing.T, data []byte, args ...string) []byte {
		// A filter chain ends with LZMA2: the x86 filter is named first.
		cmd := exec.Command("xz", append(append([]string{"-c"}, args...), "--lzma2=preset=1")...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz %v: %v", args, err)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		data []byte
		args []string
	}{
		{"x86 code, x86 filter, CRC32", exe, []string{"--x86", "--check=crc32"}},
		{"x86 code, x86 filter at a start offset", exe, []string{"--x86=start=4096", "--check=crc64"}},
		{"x86 code, x86 filter, blocks on two threads", exe, []string{"--x86", "--check=crc32", "-T2", "--block-size=300KiB"}},
		{"x86 code, x86 filter, SHA-256", exe, []string{"--x86", "--check=sha256"}},
		{"x86 code, LZMA2 alone", exe, []string{"--check=crc64"}},
		{"text, no check", text, []string{"--check=none"}},
		{"text, x86 filter", text, []string{"--x86", "--check=crc32"}},
		{"empty, x86 filter", nil, []string{"--x86", "--check=crc32"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeXZ(xzOf(t, tt.data, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("decoded %d bytes that differ from the %d of the input", len(got), len(tt.data))
			}
		})
	}
	t.Run("two streams and padding", func(t *testing.T) {
		a, b := xzOf(t, text[:5000], "--x86", "--check=crc32"), xzOf(t, exe[:100000], "--check=sha256")
		stream := append(append(append(a, 0, 0, 0, 0), b...), 0, 0, 0, 0, 0, 0, 0, 0)
		got, err := decodeXZ(stream)
		if err != nil {
			t.Fatal(err)
		}
		if want := append(bytes.Clone(text[:5000]), exe[:100000]...); !bytes.Equal(got, want) {
			t.Fatalf("decoded %d bytes, want the %d of both", len(got), len(want))
		}
	})
}

// TestXZDecoderRefuses: damage anywhere in a stream is an error, never
// wrong data or a panic; a filter the decoder lacks says to install xz.
func TestXZDecoderRefuses(t *testing.T) {
	if got, err := decodeXZ(tinyX86); err != nil || string(got) != tinyPlain {
		t.Fatalf("the sound stream: %q, %v", got, err)
	}
	flip := func(i int) []byte { b := bytes.Clone(tinyX86); b[i] ^= 0x01; return b }
	delta := bytes.Clone(tinyX86)
	delta[14] = 0x03 // the filter ID: delta instead of x86; header CRC fixed below
	fixHeaderCRC(delta, 12)
	for _, tt := range []struct {
		name   string
		stream []byte
		want   error  // errors.Is, when set
		text   string // in the message, when set
	}{
		{"stream header flags", flip(7), errXZ, ""},
		{"block header", flip(15), errXZ, "block header CRC32"},
		{"a CALL target in the data", flip(34), ErrXZCheck, ""},
		{"the stored check", flip(60), ErrXZCheck, ""},
		{"the index", flip(65), errXZ, ""},
		{"the footer", flip(len(tinyX86) - 3), errXZ, ""},
		{"truncated in the data", tinyX86[:40], io.ErrUnexpectedEOF, ""},
		{"truncated in the footer", tinyX86[:len(tinyX86)-1], io.ErrUnexpectedEOF, ""},
		{"garbage after the stream", append(bytes.Clone(tinyX86), 1, 2, 3), nil, ""},
		{"a delta filter", delta, ErrXZFilter, "install the xz program"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeXZ(tt.stream)
			if err == nil {
				t.Fatalf("decoded %q without an error", got)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want %q in it", err, tt.text)
			}
		})
	}
}

// fixHeaderCRC puts right the CRC32 of the block header at off.
func fixHeaderCRC(b []byte, off int) {
	n := (int(b[off]) + 1) * 4
	c := crc32.ChecksumIEEE(b[off : off+n-4])
	b[off+n-4], b[off+n-3], b[off+n-2], b[off+n-1] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

// TestX86ReaderChunking: undoing the x86 filter gives the same bytes
// however the data arrives, one byte at a time or in halves, as an
// instruction may straddle two reads.
func TestX86ReaderChunking(t *testing.T) {
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe = exe[:min(len(exe), 1<<20)]
	whole, err := io.ReadAll(&x86Reader{r: bytes.NewReader(exe)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(whole, exe) {
		t.Fatal("the filter changed nothing in x86 code")
	}
	for name, r := range map[string]io.Reader{
		"one byte":              iotest.OneByteReader(bytes.NewReader(exe)),
		"halves":                iotest.HalfReader(bytes.NewReader(exe)),
		"data and EOF together": iotest.DataErrReader(bytes.NewReader(exe)),
	} {
		got, err := io.ReadAll(&x86Reader{r: r})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, whole) {
			t.Errorf("%s: the output differs from the whole read's", name)
		}
	}
}

// FuzzXZDecoder: no stream makes the Go decoder panic or hang, and one
// it decodes it decodes the same read a byte at a time.
func FuzzXZDecoder(f *testing.F) {
	f.Add(tinyX86)
	f.Add(tinyX86[:40])
	f.Add(append(append(bytes.Clone(tinyX86), 0, 0, 0, 0), tinyX86...))
	f.Fuzz(func(t *testing.T, b []byte) {
		decode := func(src io.Reader) ([]byte, error) {
			r, err := NewReader(XZ, src)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(io.LimitReader(r, 1<<20))
		}
		whole, err := decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		bytewise, err := decode(iotest.OneByteReader(bytes.NewReader(b)))
		if err != nil || !bytes.Equal(whole, bytewise) {
			t.Fatalf("read whole: %d bytes; a byte at a time: %d bytes, %v", len(whole), len(bytewise), err)
		}
	})
}

// emptyBlocks is an xz stream of n empty blocks, each asking for a
// dictionary of 1 GiB and recording no sizes, with a right index and
// every CRC32 right: what the dictionary budget is for.
func emptyBlocks(n int) []byte {
	return xzEmpty(n, xzEmptyOpts{listed: n, unpadded: 17, compressed: -1, uncompressed: -1, dict: 36})
}

// xzEmptyOpts say how xzEmpty's stream differs from a sound one.
type xzEmptyOpts struct {
	listed, unpadded         int  // the index's records and their unpadded size (17 is right)
	compressed, uncompressed int  // sizes the block headers record; -1 none (1 and 0 are right)
	dict                     byte // LZMA2's dictionary property: 0 is 4 KiB, 36 is 1 GiB
}

// xzEmpty writes n empty blocks (LZMA2's end alone) with the index and
// sizes o gives, every CRC32 computed over what it covers.
func xzEmpty(n int, o xzEmptyOpts) []byte {
	le32 := func(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
	out := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1}
	out = le32(out, crc32.ChecksumIEEE([]byte{0, 1}))
	// Block header: size, flags (one filter, the sizes recorded), the
	// sizes, LZMA2 with its dictionary property, padding, CRC32.
	h := []byte{0, 0}
	if o.compressed >= 0 {
		h[1] |= 0x40
		h = append(h, byte(o.compressed))
	}
	if o.uncompressed >= 0 {
		h[1] |= 0x80
		h = append(h, byte(o.uncompressed))
	}
	h = append(h, 0x21, 1, o.dict)
	for len(h)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte(len(h) / 4) // (header size with its CRC32) / 4 - 1
	h = le32(h, crc32.ChecksumIEEE(h))
	for range n {
		out = append(out, h...)
		out = append(out, 0, 0, 0, 0) // LZMA2's end, padding
		out = le32(out, crc32.ChecksumIEEE(nil))
	}
	idx := []byte{0, byte(o.listed)}
	for range o.listed {
		idx = append(idx, byte(o.unpadded-12+len(h)), 0)
	}
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = le32(idx, crc32.ChecksumIEEE(idx))
	out = append(out, idx...)
	f := le32(nil, uint32(len(idx)/4-1))
	f = append(f, 0, 1)
	out = le32(out, crc32.ChecksumIEEE(f))
	return append(append(out, f...), 'Y', 'Z')
}

// TestXZSizes: a block or an index that disagrees with the data is
// refused, every CRC32 being right; the sound variants decode.
func TestXZSizes(t *testing.T) {
	sound := xzEmptyOpts{listed: 2, unpadded: 17, compressed: -1, uncompressed: -1}
	for _, tt := range []struct {
		name string
		edit func(*xzEmptyOpts)
		ok   bool
	}{
		{"no sizes recorded", func(*xzEmptyOpts) {}, true},
		{"right sizes recorded", func(o *xzEmptyOpts) { o.compressed, o.uncompressed = 1, 0 }, true},
		{"compressed size too large", func(o *xzEmptyOpts) { o.compressed = 2 }, false},
		{"uncompressed size too large", func(o *xzEmptyOpts) { o.uncompressed = 1 }, false},
		{"an index record more than the blocks", func(o *xzEmptyOpts) { o.listed = 3 }, false},
		{"an index record fewer", func(o *xzEmptyOpts) { o.listed = 1 }, false},
		{"a wrong unpadded size in the index", func(o *xzEmptyOpts) { o.unpadded = 18 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := sound
			tt.edit(&o)
			b := xzEmpty(2, o)
			if _, err := exec.LookPath("xz"); err == nil {
				cmd := exec.Command("xz", "-t")
				cmd.Stdin = bytes.NewReader(b)
				if err := cmd.Run(); (err == nil) != tt.ok {
					t.Fatalf("xz -t: %v, want ok %v (the stream is not what the case says)", err, tt.ok)
				}
			}
			_, err := goDecodeXZ(b)
			if (err == nil) != tt.ok {
				t.Fatalf("decode: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, errXZ) {
				t.Errorf("err = %v, want errXZ", err)
			}
		})
	}
}

// TestXZDictionaryBudget: empty blocks that each ask for a 1 GiB
// dictionary are refused after the first, before the next is allocated.
func TestXZDictionaryBudget(t *testing.T) {
	if got, err := goDecodeXZ(emptyBlocks(1)); err != nil || len(got) != 0 {
		t.Fatalf("one empty block: %q, %v", got, err)
	}
	// The stream is sound: the xz program takes it.
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "-t")
		cmd.Stdin = bytes.NewReader(emptyBlocks(8))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("xz -t of the eight blocks: %v: %s", err, out)
		}
	}
	start := time.Now()
	_, err := goDecodeXZ(emptyBlocks(8))
	if !errors.Is(err, ErrDictTooLarge) {
		t.Fatalf("eight empty 1 GiB blocks: err = %v, want ErrDictTooLarge", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing took %v", d)
	}
}

// TestXZReadEmpty: a Read with no room returns at once, inside a block
// too.
func TestXZReadEmpty(t *testing.T) {
	x := newXZReader(bufio.NewReader(bytes.NewReader(tinyX86)))
	var one [1]byte
	if _, err := x.Read(one[:]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := x.Read(nil); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read(nil) = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read(nil) inside a block does not return")
	}
}
