package apt

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func BenchmarkPackagesParseTrixie(b *testing.B) {
	data := trixieIndex(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r := NewPackagesReader(bytes.NewReader(data), "Packages")
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n), "stanzas")
	}
}

func trixieIndex(b *testing.B) []byte {
	data, err := os.ReadFile("/tmp/trixie-Packages")
	if err != nil {
		b.Skip(err)
	}
	return data
}
