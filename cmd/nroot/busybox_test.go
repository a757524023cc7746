package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nroot/e2e/testenv"
)

// TestBusyboxHost runs a static nroot on a host that holds only busybox
// (Debian's busybox-static) and bootstraps bookworm minbase there, as a
// user of another distribution would: busybox's xz applet must not be
// taken for XZ Utils, and configuration must run without util-linux,
// coreutils or systemd-nspawn. The result must pass dpkg --audit.
func TestBusyboxHost(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	busybox := testenv.Command(t, "busybox")
	// The test's own harness, on this Debian host; not nroot's.
	unshare, chroot, mount := testenv.Command(t, "unshare"), testenv.Command(t, "chroot"), testenv.Command(t, "mount")
	host := t.TempDir()
	for _, d := range []string{"bin", "etc/ssl/certs", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(host, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(host, "bin/busybox"), bb, 0o755)
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	applets := strings.Fields(string(list))
	for _, a := range applets {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(host, "bin", a))
		}
	}
	hasXZ := false
	for _, a := range applets {
		hasXZ = hasXZ || a == "xz"
	}
	if !hasXZ {
		t.Fatal("this busybox has no xz applet: the case under test needs it")
	}
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts", "/etc/ssl/certs/ca-certificates.crt"} {
		if b, err := os.ReadFile(f); err == nil {
			os.WriteFile(filepath.Join(host, f), b, 0o644)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(host, "nroot"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := `set -e
"$3" -t proc proc "$1/proc"
"$3" --rbind /dev "$1/dev"
"$3" --rbind /sys "$1/sys"
exec "$4" "$1" /nroot --cache-dir /root/cache bootstrap --variant=minbase bookworm /target "$2"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", host, "deb "+mirror+" bookworm main", mount, chroot)
	cmd.Env = []string{"PATH=/bin", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nroot bootstrap on a busybox host: %v\n%s", err, out)
	}
	target := filepath.Join(host, "target")
	if audit, err := exec.Command(chroot, target, "dpkg", "--audit").CombinedOutput(); err != nil || len(audit) != 0 {
		t.Errorf("dpkg --audit: %v\n%s", err, audit)
	}
	if st, err := exec.Command(chroot, target, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}\n", "dpkg", "libc6").Output(); err != nil || string(st) != "ii \nii \n" {
		t.Errorf("dpkg-query: %v %q\n%s", err, st, out)
	}
}
