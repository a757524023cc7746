package nfscheck_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nroot/build/apt"
	"nroot/build/rootfs"
	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
	"nroot/verify/nfscheck"
	"nroot/verify/nfsclient"
)

// BenchmarkExportCheck walks and compares a minbase rootfs exported by
// nfs-ganesha on loopback: metadata only, then --deep.
func BenchmarkExportCheck(b *testing.B) {
	mirror := testenv.Mirror(b)
	testenv.Root(b)
	dir := filepath.Join(fetch.DefaultCacheDir(), "bench", "trixie-minbase")
	if _, err := os.Stat(filepath.Join(dir, "usr/bin/dpkg")); err != nil {
		os.RemoveAll(dir)
		os.MkdirAll(filepath.Dir(dir), 0o755)
		if _, err := rootfs.Bootstrap(context.Background(), dir, rootfs.Options{
			Config: apt.Config{Suite: "trixie", Variant: "minbase", Mirrors: []string{"deb " + mirror + " trixie main"}},
			Apt:    apt.Options{Fetcher: fetch.NewFetcher("")},
		}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 9, Path: dir, Pseudo: "/bench"}}, ganesha.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	for _, deep := range []bool{false, true} {
		name := map[bool]string{false: "metadata", true: "deep"}[deep]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				rep, err := nfscheck.Run(context.Background(), nfscheck.Options{
					Target: nfsclient.Target{Host: "127.0.0.1", NFSPort: s.NFSPort, MountPort: s.MountPort, Path: dir},
					Rootfs: dir, Deep: deep, Timeout: 5 * time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Differences) != 0 {
					b.Fatalf("%d differences", len(rep.Differences))
				}
				b.ReportMetric(float64(rep.Stats.Entries), "entries")
				b.ReportMetric(rep.EntriesPerS, "entries/s")
				if deep {
					b.ReportMetric(rep.ReadMBps, "MB/s")
				}
			}
		})
	}
}
