package initrd

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// benchImage is the image BenchmarkScan lists: $NROOT_BENCH_IMAGE (a
// real node image, e.g. a dracut image of 50 MB or more), else one made
// here in compression c: 2000 files of 16 KB, half text, half random.
func benchImage(b *testing.B, c Compression) []byte {
	if p := os.Getenv("NROOT_BENCH_IMAGE"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	for i := range 2000 {
		body := make([]byte, 16<<10)
		if i%2 == 0 {
			for j := range body {
				body[j] = byte(rng.Uint32())
			}
		} else {
			copy(body, bytes.Repeat([]byte(fmt.Sprintf("line %d of a text file\n", i)), len(body)))
		}
		recs = append(recs, StaticFile(fmt.Sprintf("usr/lib/modules/k/kernel/f%04d.ko", i), body, 0o644))
	}
	var raw, out bytes.Buffer
	if err := WriteArchive(&raw, recs); err != nil {
		b.Fatal(err)
	}
	w, err := compressor(c, &out)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(raw.Bytes())
	w.Close()
	return out.Bytes()
}

// BenchmarkScan lists an image as nroot initrd ls does: every header,
// no body read.
func BenchmarkScan(b *testing.B) {
	for _, c := range []Compression{Zstd, Gzip} {
		b.Run(string(c), func(b *testing.B) {
			data := benchImage(b, c)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for b.Loop() {
				n := 0
				if _, err := Scan(bytes.NewReader(data), func(h *Header, _ io.Reader) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
