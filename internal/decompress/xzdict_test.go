package decompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
)

// blockHeader builds an xz block header with the uncompressed size
// recorded and one LZMA2 filter asking for dictionary property prop.
func blockHeader(uncompressed uint64, prop byte) []byte {
	h := []byte{0, 0x80}
	h = binary.AppendUvarint(h, uncompressed)
	h = append(h, 0x21, 0x01, prop)
	for (len(h)+4)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte((len(h)+4)/4 - 1)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
}

func TestShrinkDict(t *testing.T) {
	tests := []struct {
		name         string
		uncompressed uint64
		prop, want   byte
	}{
		{"an empty block gets the least dictionary, 4 KiB", 0, 22, 0},
		{"a 30 KiB control archive gets 32 KiB, not 8 MiB", 30 << 10, 22, 6},
		{"a block of exactly 4 KiB keeps 4 KiB", 4096, 22, 0},
		{"one byte over 4 KiB gets 6 KiB", 4097, 22, 1},
		{"a block larger than its dictionary keeps it", 100 << 20, 22, 22},
		{"a dictionary already small is left alone", 100, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := blockHeader(tt.uncompressed, tt.prop)
			prop := bytes.IndexByte(h[2:], 0x21) + 2 + 2
			if err := shrinkDict(h, prop, int64(tt.uncompressed)); err != nil {
				t.Fatal(err)
			}
			if h[prop] != tt.want {
				t.Errorf("property = %d, want %d", h[prop], tt.want)
			}
			if d, _ := lzma2Dict(h[prop]); h[prop] < tt.prop && d < int64(tt.uncompressed) {
				t.Errorf("dictionary %d is smaller than the block's %d bytes", d, tt.uncompressed)
			}
			if crc32.ChecksumIEEE(h[:len(h)-4]) != binary.LittleEndian.Uint32(h[len(h)-4:]) {
				t.Error("header CRC32 does not match the rewritten header")
			}
		})
	}
	t.Run("a header whose CRC32 is wrong is refused, not repaired", func(t *testing.T) {
		h := blockHeader(100, 18)
		h[len(h)-1] ^= 1
		if err := shrinkDict(h, bytes.IndexByte(h[2:], 0x21)+4, 100); !errors.Is(err, errXZ) {
			t.Fatalf("err = %v, want errXZ", err)
		}
	})
}

// TestXZSmallBlockDecodes decodes streams whose block headers record
// their sizes, as multi-threaded xz and dpkg-deb write them, at presets
// whose dictionaries are far larger than the blocks: the output is the
// input, and the decoder allocates about the blocks' size, not the
// dictionary the header asks for.
func TestXZSmallBlockDecodes(t *testing.T) {
	if xzProgram() == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("required component missing (CI=true): xz (package xz-utils)")
		}
		t.Skip("no xz program")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tt := range []struct {
		size, block int
		preset      string
		maxAlloc    uint64
	}{
		{0, 1 << 20, "-9", 1 << 20},
		{1, 1 << 20, "-9", 1 << 20},
		{30 << 10, 1 << 20, "-6", 1 << 20},
		{200 << 10, 64 << 10, "-9", 2 << 20},
		{3 << 20, 1 << 20, "-6", 16 << 20},
	} {
		t.Run(strconv.Itoa(tt.size)+tt.preset, func(t *testing.T) {
			data := make([]byte, tt.size)
			for i := range data {
				data[i] = "abcdefgh \n"[rng.IntN(10)]
			}
			cmd := exec.Command(xzProgram(), "--threads=2", "--block-size="+strconv.Itoa(tt.block), tt.preset, "--stdout")
			cmd.Stdin = bytes.NewReader(data)
			stream, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := NewReader(XZ, bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d", len(got), len(data))
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > tt.maxAlloc+uint64(2*len(data)) {
				t.Errorf("decoding allocated %d bytes, want at most %d beyond the output", alloc, tt.maxAlloc)
			}
		})
	}
}
