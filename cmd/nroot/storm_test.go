package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStormRecordRefuses: storm record without an upstream is a usage
// error before it listens (the --listen port is taken, so listening
// first would name --listen instead), and a recording that saw nothing
// is an error that writes no working set.
func TestStormRecordRefuses(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A port nothing listens on, for the upstream.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := free.Addr().String()
	free.Close()
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no upstream", []string{"--listen", taken.Addr().String()}, 64, "--upstream"},
		{"empty upstream", []string{"--listen", taken.Addr().String(), "--upstream="}, 64, "--upstream"},
		{"upstream without a port", []string{"--listen", taken.Addr().String(), "--upstream", "127.0.0.1"}, 64, "--upstream"},
		{"nothing recorded", []string{"--listen", "127.0.0.1:0", "--upstream", closed, "--duration", "1s"}, 1, "nothing was recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "ws.json")
			_, errs, code := nroot(t, nil, append([]string{"storm", "record", "--out", out}, tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.says) {
				t.Fatalf("exit %d, want %d, saying %q:\n%s", code, tt.code, tt.says, errs)
			}
			if lines := strings.Split(strings.TrimSpace(errs), "\n"); tt.code == 64 && len(lines) != 1 {
				t.Errorf("a usage error takes one line:\n%s", errs)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a working set was written")
			}
		})
	}
}

// TestStormRunRefuses: a bad --procs, or a --boot-url beyond this
// machine, is a usage error of one line, before any client starts.
func TestStormRunRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"procs below -1", []string{"--procs", "-2", "http://127.0.0.1:1/root.squashfs"}, "--procs"},
		{"boot URL elsewhere", []string{"--boot-url", "http://192.0.2.1/vmlinuz", "http://127.0.0.1:1/root.squashfs"}, "127.0.0.1 only"},
		{"boot URL not HTTP", []string{"--boot-url", "tftp://127.0.0.1/ipxe.efi", "http://127.0.0.1:1/root.squashfs"}, "127.0.0.1 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := nroot(t, nil, append([]string{"storm", "run", "--clients", "1"}, tt.args...)...)
			if code != 64 || !strings.Contains(errs, tt.says) || len(strings.Split(strings.TrimSpace(errs), "\n")) != 1 {
				t.Fatalf("exit %d, want 64, one line saying %q:\n%s", code, tt.says, errs)
			}
		})
	}
}
