package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		profile  string // where a profile must be written, if anywhere
	}{
		{"a command writes its profile", []string{"--cpuprofile", filepath.Join(dir, "ok.prof"), "initrd", "ls", filepath.Join(dir, "missing.img")}, 1, filepath.Join(dir, "ok.prof")},
		{"a profile that cannot be created is a usage error", []string{"--cpuprofile", filepath.Join(dir, "no/such/dir.prof"), "version"}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := nroot(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, errs)
			}
			if tt.profile == "" {
				return
			}
			// A pprof profile is gzipped protobuf: written whole even
			// when the command failed.
			b, err := os.ReadFile(tt.profile)
			if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
				t.Fatalf("profile %s: %v, starts %q; want a gzipped pprof profile", tt.profile, err, b[:min(len(b), 4)])
			}
		})
	}
}
