// Package testenv decides whether a test's real components are present:
// locally a missing one skips the test, under CI=true it fails it, so a
// CI run can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"

	"nroot/apt"
)

// CI reports whether the tests run under CI=true.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("required component missing (CI=true): "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// Root requires running as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// Command requires an executable on PATH and returns its path.
func Command(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (make deps installs it)", name)
	}
	return p
}

// Mirror returns the Debian mirror the tests use: $NROOT_MIRROR, or the
// host's APT sources. Tests with -short do not touch the network.
func Mirror(t testing.TB) string {
	t.Helper()
	if testing.Short() && !CI() {
		t.Skip("skipping network test in -short mode")
	}
	host, _ := apt.HostSources(apt.HostSourceFiles)
	m, _, _, err := apt.FindMirror("", host)
	if err != nil {
		Missing(t, "%v", err)
	}
	return m
}
