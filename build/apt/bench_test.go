package apt_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"nroot/build/apt"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
)

var trixie struct {
	once  sync.Once
	index []byte
	err   error
}

// trixieIndex fetches trixie main amd64 Packages once, through nroot's
// own verified cache, and returns it uncompressed.
func trixieIndex(b *testing.B) []byte {
	mirror := testenv.Mirror(b)
	trixie.once.Do(func() {
		f := fetch.NewFetcher(cacheDir(b))
		d, err := apt.OpenDist(context.Background(), &apt.Source{URI: mirror, Suite: "trixie", Components: []string{"main"}}, apt.Options{Fetcher: f})
		if err != nil {
			trixie.err = err
			return
		}
		_, r, err := d.FetchIndex(context.Background(), f, "main", "amd64")
		if err != nil {
			trixie.err = err
			return
		}
		defer r.Close()
		trixie.index, trixie.err = io.ReadAll(r)
	})
	if trixie.err != nil {
		b.Fatal(trixie.err)
	}
	return trixie.index
}

// BenchmarkPackagesParse reads all of trixie main amd64 (about 69k
// stanzas) from memory.
func BenchmarkPackagesParse(b *testing.B) {
	data := trixieIndex(b)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r := apt.NewPackagesReader(bytes.NewReader(data), "Packages")
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

func trixieUniverse(b *testing.B) *apt.Universe {
	mirror := testenv.Mirror(b)
	u, err := apt.Load(context.Background(), []*apt.Source{{URI: mirror, Suite: "trixie", Components: []string{"main"}}},
		[]string{"amd64"}, apt.Options{Fetcher: fetch.NewFetcher(cacheDir(b))})
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// BenchmarkResolveTrixieMinbase resolves the minbase variant on a loaded
// universe.
func BenchmarkResolveTrixieMinbase(b *testing.B) {
	u := trixieUniverse(b)
	b.ResetTimer()
	for b.Loop() {
		res, err := u.Resolve(apt.Request{Variant: "minbase", SeedSuite: "trixie"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(res.Packages)), "packages")
	}
}

// BenchmarkLoadWarm is a warm `nroot resolve`'s index stage: InRelease
// revalidated and verified, the cached index re-hashed and parsed.
func BenchmarkLoadWarm(b *testing.B) {
	trixieUniverse(b)
	b.ResetTimer()
	for b.Loop() {
		trixieUniverse(b)
	}
}
