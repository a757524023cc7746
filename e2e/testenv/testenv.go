// Package testenv decides whether a test's real components are present:
// locally a missing one skips the test, under CI=true it fails it, so a
// CI run can never pass by skipping.
package testenv

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nroot/build/hostapt"
	"nroot/format/keyring"
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
	host, _ := hostapt.Sources(hostapt.SourceFiles)
	m, _, _, err := hostapt.FindMirror("", host)
	if err != nil {
		Missing(t, "%v", err)
	}
	return m
}

// UbuntuMirrorEnv names the Ubuntu archive the tests use.
const UbuntuMirrorEnv = "NROOT_UBUNTU_MIRROR"

// DebootstrapUbuntuScript is debootstrap's script for Ubuntu suites, whose
// default_mirror lines name the archive for each architecture.
const DebootstrapUbuntuScript = "/usr/share/debootstrap/scripts/gutsy"

// UbuntuMirror returns the Ubuntu archive for arch: $NROOT_UBUNTU_MIRROR,
// else the default_mirror line of debootstrap's Ubuntu script for it (the
// ports archive for architectures other than amd64 and i386, never
// old-releases). The archive must answer, or the test is Missing.
func UbuntuMirror(t testing.TB, arch string) string {
	t.Helper()
	if testing.Short() && !CI() {
		t.Skip("skipping network test in -short mode")
	}
	m := os.Getenv(UbuntuMirrorEnv)
	if m == "" {
		var err error
		if m, err = debootstrapUbuntuMirror(DebootstrapUbuntuScript, arch); err != nil {
			Missing(t, "no Ubuntu archive: set %s, or install debootstrap (make deps): %v", UbuntuMirrorEnv, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, strings.TrimRight(m, "/")+"/dists/noble/InRelease", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		Missing(t, "the Ubuntu archive %s does not answer: %v", m, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		Missing(t, "the Ubuntu archive %s answers %s for noble", m, resp.Status)
	}
	return m
}

// debootstrapUbuntuMirror reads the default_mirror lines of debootstrap's
// Ubuntu script: ports for foreign architectures, the main archive for
// amd64 and i386, and never old-releases.
func debootstrapUbuntuMirror(script, arch string) (string, error) {
	f, err := os.Open(script)
	if err != nil {
		return "", err
	}
	defer f.Close()
	wantPorts := arch != "amd64" && arch != "i386"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 || fields[0] != "default_mirror" {
			continue
		}
		u := fields[1]
		if strings.Contains(u, "old-releases") || strings.Contains(u, "ports") != wantPorts {
			continue
		}
		return u, nil
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", &os.PathError{Op: "find default_mirror for " + arch, Path: script, Err: os.ErrNotExist}
}

// Archive is the mirror a test of one distribution uses, and what
// mmdebstrap needs besides to trust it on a Debian host: for Ubuntu the
// bundled Ubuntu keyring as a file (without it: NO_PUBKEY
// 871920D1991BC93C).
func Archive(t testing.TB, ubuntu bool, arch string) (mirror string, mmdebstrapArgs []string) {
	t.Helper()
	if !ubuntu {
		return Mirror(t), nil
	}
	mirror = UbuntuMirror(t, arch)
	k, err := keyring.Named(keyring.Ubuntu)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ubuntu-archive-keyring.gpg")
	if err := os.WriteFile(file, k.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return mirror, []string{"--keyring=" + file}
}

// CompareSuites are the suites the comparisons with mmdebstrap run:
// Debian's stable and oldstable and Ubuntu's current LTS; make compare
// adds the previous LTS through NROOT_COMPARE_SUITES.
func CompareSuites() []string {
	if v := os.Getenv("NROOT_COMPARE_SUITES"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"bookworm", "trixie", "noble"}
}

// CompareVariants are the variants they run: minbase, or all that
// NROOT_COMPARE_VARIANTS names (make compare).
func CompareVariants() []string {
	if v := os.Getenv("NROOT_COMPARE_VARIANTS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"minbase"}
}

// Tree writes files into a new temporary directory and returns it: a
// path ending in / is a directory, content starting with -> a symlink
// to the rest, anything else a file with that content.
func Tree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		var err error
		if err = os.MkdirAll(filepath.Dir(full), 0o755); err == nil {
			switch {
			case strings.HasPrefix(c, "->"):
				err = os.Symlink(strings.TrimPrefix(c, "->"), full)
			case strings.HasSuffix(p, "/"):
				err = os.MkdirAll(full, 0o755)
			default:
				err = os.WriteFile(full, []byte(c), 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}
