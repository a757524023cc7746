package decompress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
)

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
