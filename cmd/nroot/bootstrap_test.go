package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestSuiteArgument: a SUITE that is a path or a URL (the arguments
// swapped, nroot bootstrap ./out bookworm) is a usage error, one line,
// before anything is asked of the mirror; a plain suite name does reach
// it, which shows the mirror would have seen a request.
func TestSuiteArgument(t *testing.T) {
	var mu sync.Mutex
	var requests []string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer mirror.Close()
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		name    string
		args    []string
		code    int
		says    string
		network bool
	}{
		{"bootstrap TARGET SUITE", []string{"bootstrap", "./out", "bookworm"}, 64, "SUITE", false},
		{"bootstrap absolute TARGET SUITE", []string{"bootstrap", out, "bookworm"}, 64, "SUITE", false},
		{"bootstrap tarball SUITE", []string{"bootstrap", "../out.tar", "bookworm"}, 64, "SUITE", false},
		{"bootstrap dot", []string{"bootstrap", ".", "bookworm"}, 64, "SUITE", false},
		{"bootstrap empty suite", []string{"bootstrap", "", out}, 64, "SUITE", false},
		{"bootstrap URL as suite", []string{"bootstrap", mirror.URL + "/debian", out}, 64, "SUITE", false},
		{"resolve path", []string{"resolve", "./out"}, 64, "SUITE", false},
		{"resolve URL as suite", []string{"resolve", mirror.URL + "/debian", "bookworm"}, 64, "SUITE", false},
		{"resolve suite with a space", []string{"resolve", "book worm"}, 64, "SUITE", false},
		{"resolve empty suite", []string{"resolve", ""}, 64, "SUITE", false},
		{"resolve a suite the mirror lacks", []string{"resolve", "--no-updates", "--no-security", "nosuchsuite"}, 1, "nosuchsuite", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			requests = nil
			mu.Unlock()
			stdout, errs, code := nroot(t, []string{"NROOT_MIRROR=" + mirror.URL + "/debian"}, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.says) {
				t.Fatalf("exit %d, want %d, saying %q:\n%s%s", code, tt.code, tt.says, stdout, errs)
			}
			if lines := strings.Split(strings.TrimSpace(errs), "\n"); tt.code == 64 && len(lines) != 1 {
				t.Errorf("a usage error takes one line:\n%s", errs)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.network != (len(requests) > 0) {
				t.Errorf("requests to the mirror: %q", requests)
			}
		})
	}
}
