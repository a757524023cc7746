package nspawn_test

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nroot/build/apt"
	"nroot/build/nspawn"
	"nroot/build/rootfs"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
)

func TestHostFlags(t *testing.T) {
	tests := []struct {
		h    nspawn.Host
		want string
	}{
		{nspawn.Host{SystemdPID1: true, SystemBus: true}, ""},
		{nspawn.Host{SystemdPID1: false, SystemBus: true}, "--register=no --keep-unit"},
		{nspawn.Host{SystemdPID1: true, SystemBus: false}, "--register=no --keep-unit"},
		{nspawn.Host{}, "--register=no --keep-unit"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.h.Flags(), " "); got != tt.want {
			t.Errorf("%+v: flags %q, want %q", tt.h, got, tt.want)
		}
	}
	// This machine's PID 1 is what the detection says it is.
	comm, _ := os.ReadFile("/proc/1/comm")
	if h := nspawn.DetectHost(); (strings.TrimSpace(string(comm)) == "systemd") != h.SystemdPID1 {
		t.Errorf("PID 1 is %q but SystemdPID1=%v", comm, h.SystemdPID1)
	}
}

var image struct {
	once sync.Once
	dir  string
	err  error
}

// testImage is a trixie minbase built by nroot once for these tests; each
// test gets its own copy.
func testImage(t *testing.T) string {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	testenv.Command(t, "systemd-nspawn")
	image.once.Do(func() {
		dir, err := os.MkdirTemp("", "nroot-nspawn-test-")
		if err != nil {
			image.err = err
			return
		}
		image.dir = filepath.Join(dir, "root")
		_, image.err = rootfs.Bootstrap(context.Background(), image.dir, rootfs.Options{
			Config: apt.Config{Suite: "trixie", Variant: "minbase", Mirrors: []string{"deb " + mirror + " trixie main"}},
			Apt:    apt.Options{Fetcher: fetch.NewFetcher(os.Getenv("NROOT_TEST_CACHE"))},
		})
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	dst := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", image.dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	return dst
}

func TestMain(m *testing.M) {
	nspawn.RunHelper() // the chroot runner starts this binary as its helper
	code := m.Run()
	if image.dir != "" {
		os.RemoveAll(filepath.Dir(image.dir))
	}
	os.Exit(code)
}

func mirrorHost(t *testing.T) string {
	m := testenv.Mirror(t)
	h := strings.TrimPrefix(strings.TrimPrefix(m, "http://"), "https://")
	h, _, _ = strings.Cut(h, "/")
	h, _, _ = strings.Cut(h, ":")
	return h
}

// TestDNS resolves the mirror's name inside images whose resolv.conf is a
// Debian file, an Ubuntu symlink to the absent resolved stub, or missing,
// with each runner, and checks the image's own setup is back afterwards.
func TestDNS(t *testing.T) {
	host := mirrorHost(t)
	setups := []struct {
		name  string
		setup func(root string) error
	}{
		{"debian file", func(root string) error {
			return os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 192.0.2.1\n"), 0o644)
		}},
		{"ubuntu stub symlink", func(root string) error {
			os.Remove(filepath.Join(root, "etc/resolv.conf"))
			return os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
		}},
		{"absent", func(root string) error {
			err := os.Remove(filepath.Join(root, "etc/resolv.conf"))
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}},
	}
	root := testImage(t)
	for _, chroot := range []bool{false, true} {
		for _, s := range setups {
			t.Run(s.name+map[bool]string{true: "/chroot", false: "/nspawn"}[chroot], func(t *testing.T) {
				if err := s.setup(root); err != nil {
					t.Fatal(err)
				}
				before := nspawn.ResolvConfState(root)
				r, err := nspawn.New(root)
				if err != nil {
					t.Fatal(err)
				}
				r.DNS, r.Chroot = true, chroot
				var out strings.Builder
				r.Stdout = &out
				if err := r.Run(context.Background(), "getent", "hosts", host); err != nil {
					t.Fatalf("resolving %s inside: %v", host, err)
				}
				if !strings.Contains(out.String(), host) {
					t.Fatalf("getent printed %q", out.String())
				}
				if after := nspawn.ResolvConfState(root); after != before {
					t.Fatalf("resolv.conf was %q, is now %q", before, after)
				}
			})
		}
	}
	// A command that installs its own resolver setup keeps it.
	r, _ := nspawn.New(root)
	r.DNS = true
	if err := r.Run(context.Background(), "sh", "-c", "rm -f /etc/resolv.conf && ln -s /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf"); err != nil {
		t.Fatal(err)
	}
	if got := nspawn.ResolvConfState(root); got != "symlink -> /run/systemd/resolve/stub-resolv.conf" {
		t.Fatalf("the command's own resolv.conf was not kept: %s", got)
	}
	// A hostile command leaves an endless device or a FIFO where the
	// restore reads: nroot must neither read forever nor hang.
	for _, leave := range []struct{ name, cmd, want string }{
		{"zero device", "rm -f /etc/resolv.conf && ln -s /dev/zero /etc/resolv.conf", "symlink -> /dev/zero"},
		{"zero device node", "rm -f /etc/resolv.conf && mknod /etc/resolv.conf c 1 5", "special"},
		{"fifo", "rm -f /etc/resolv.conf && mkfifo /etc/resolv.conf", "special"},
	} {
		t.Run("hostile "+leave.name, func(t *testing.T) {
			r, _ := nspawn.New(root)
			r.DNS = true
			done := make(chan error, 1)
			go func() { done <- r.Run(context.Background(), "sh", "-c", leave.cmd) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("the restore of resolv.conf hangs on what the command left")
			}
			if got := nspawn.ResolvConfState(root); got != leave.want {
				t.Errorf("resolv.conf is %q, want %q", got, leave.want)
			}
			os.Remove(filepath.Join(root, "etc/resolv.conf"))
		})
	}
}

func TestFailingCommand(t *testing.T) {
	root := testImage(t)
	for _, chroot := range []bool{false, true} {
		r, _ := nspawn.New(root)
		r.Chroot = chroot
		err := r.Run(context.Background(), "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 42")
		var ee *nspawn.ExitError
		if !errors.As(err, &ee) || ee.Status != 42 || !strings.Contains(ee.Output, "to-stdout") || !strings.Contains(ee.Output, "to-stderr") {
			t.Fatalf("%s: err = %#v", r.Name(), err)
		}
	}
}

// mounts lists the mounts below root (other tests may mount elsewhere
// meanwhile).
func mounts(t *testing.T, root string) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, root) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// sleepMarker is TestInterrupt's sleep: a length no other process on
// the host is likely to sleep (a shell's "sleep 300" was taken for the
// test's own once).
const sleepMarker = "300.0917"

// TestInterrupt cancels a long command: it must stop promptly, leave no
// process and no mount behind.
func TestInterrupt(t *testing.T) {
	root := testImage(t)
	before := mounts(t, root)
	for _, chroot := range []bool{false, true} {
		r, _ := nspawn.New(root)
		r.Chroot, r.DNS = chroot, true
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		start := time.Now()
		err := r.Run(ctx, "sleep", sleepMarker)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: err = %v", r.Name(), err)
		}
		if el := time.Since(start); el > 15*time.Second {
			t.Fatalf("%s: took %v to stop", r.Name(), el)
		}
		if out, _ := exec.Command("pgrep", "-f", "^sleep "+sleepMarker+"$").Output(); len(out) > 0 {
			t.Fatalf("%s: process left: %s", r.Name(), out)
		}
		if after := mounts(t, root); after != before {
			t.Fatalf("%s: mounts changed:\n%s", r.Name(), after)
		}
		if strings.Contains(nspawn.ResolvConfState(root), "nroot: the build host") {
			t.Fatalf("%s: host resolvers left in the image", r.Name())
		}
	}
}

// TestForeignArchitecture gives an image an aarch64 /bin/sh.
func TestForeignArchitecture(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(hdr[18:], uint16(elf.EM_AARCH64))
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	binary.LittleEndian.PutUint16(hdr[52:], 64)
	os.WriteFile(filepath.Join(root, "usr/bin/sh"), hdr, 0o755)
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
		t.Skip("this host can run aarch64 binaries")
	}
	_, err := nspawn.New(root)
	if err == nil || !strings.Contains(err.Error(), "qemu-aarch64") || !strings.Contains(err.Error(), "qemu-user-binfmt") {
		t.Fatalf("err = %v", err)
	}
	_, err = nspawn.New(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no /bin/sh") {
		t.Fatalf("empty root: err = %v", err)
	}
}

// TestChrootRunnerMountsInside: nroot's own chroot runner mounts /proc,
// /sys, /dev and binds on the image's own directories, never through an
// image symlink onto the host, and needs no program on the host.
func TestChrootRunnerMountsInside(t *testing.T) {
	root := testImage(t)
	host := t.TempDir()
	bind := t.TempDir()
	os.WriteFile(filepath.Join(bind, "seen"), []byte("bound\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "srv/bound"), 0o755)
	r, _ := nspawn.New(root)
	r.Chroot, r.Binds = true, []string{bind + ":/srv/bound"}
	var out strings.Builder
	r.Stdout = &out
	// PATH empty on the host side: nothing of the host's is run.
	t.Setenv("PATH", "")
	if err := r.Run(context.Background(), "sh", "-c", "cat /srv/bound/seen; test -r /proc/self/status && test -c /dev/null && test -d /sys/kernel && echo mounted"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "bound\nmounted\n" {
		t.Errorf("output %q", out.String())
	}
	// /proc made a symlink to a host directory: resolved inside the
	// image, where it does not exist, so the runner refuses.
	os.RemoveAll(filepath.Join(root, "proc"))
	if err := os.Symlink(host, filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	err := r.Run(context.Background(), "true")
	if err == nil {
		t.Fatal("ran with /proc a symlink out of the image")
	}
	if names, _ := os.ReadDir(host); len(names) != 0 {
		t.Errorf("mounted onto the host's directory: %v", names)
	}
	if m := mounts(t, host); m != "" {
		t.Errorf("mounts left on the host: %s", m)
	}
}
