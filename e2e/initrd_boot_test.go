//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nroot/build/apt"
	"nroot/build/deb"
	"nroot/build/lockfile"
	"nroot/build/rootfs"
	"nroot/e2e/testenv"
	"nroot/internal/fsroot"
	"nroot/node/initrd"
)

// debianKernel downloads the bookworm kernel package through nroot's own
// apt and deb code and returns its vmlinuz.
func debianKernel(t *testing.T) string {
	ctx := context.Background()
	o := apt.Options{Fetcher: cache()}
	plan, err := apt.Resolve(ctx, apt.Config{Suite: "bookworm", Variant: "custom", Include: []string{"linux-image-amd64"}}, o)
	if err != nil {
		t.Fatal(err)
	}
	var img *lockfile.Plan = &lockfile.Plan{Architectures: plan.Architectures}
	for _, p := range plan.Packages {
		if strings.HasPrefix(p.Name, "linux-image-") && strings.Contains(p.Name, "-amd64") && p.Name != "linux-image-amd64" {
			img.Packages = append(img.Packages, p)
			img.TotalSize += p.Size
		}
	}
	fetched, err := rootfs.Fetch(ctx, img, o.Fetcher, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Open(fetched[img.Packages[0].SHA256])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := deb.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr, c, err := r.Data()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, _ := fsroot.Open(dir)
	defer root.Close()
	if _, err := deb.Unpack(tr, root, deb.UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "boot/vmlinuz-*"))
	if len(m) != 1 {
		t.Fatalf("no vmlinuz in %s", img.Packages[0].Name)
	}
	return m[0]
}

// bootMarker boots kernel+initrd under QEMU and returns the console.
func bootMarker(t *testing.T, kernel, img string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", accel(), "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", img, "-append", "console=ttyS0 panic=-1").CombinedOutput()
	return string(out)
}

// TestPackedInitrdBoots boots a Debian kernel with an image from
// initrd.Pack whose /init is busybox, then with a segment appended that
// replaces /init.
func TestPackedInitrdBoots(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	testenv.Command(t, "qemu-system-x86_64")
	busybox := "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	kernel := debianKernel(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "dev"), 0o755)
	os.MkdirAll(filepath.Join(dir, "proc"), 0o755)
	// The kernel gives /init the console only if the image has the node.
	if err := unix.Mknod(filepath.Join(dir, "dev/console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(busybox)
	os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755)
	os.Symlink("busybox", filepath.Join(dir, "bin/sh"))
	init := func(marker string) string {
		return "#!/bin/sh\n/bin/busybox mount -t proc proc /proc\necho " + marker + "\n/bin/busybox poweroff -f\n"
	}
	os.WriteFile(filepath.Join(dir, "init"), []byte(init("NROOT-INITRD-MARKER-ONE")), 0o755)
	var img bytes.Buffer
	if err := initrd.Pack(&img, dir, initrd.PackOptions{Compression: initrd.Zstd}); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(t.TempDir(), "initrd.img")
	os.WriteFile(first, img.Bytes(), 0o644)
	if out := bootMarker(t, kernel, first); !strings.Contains(out, "NROOT-INITRD-MARKER-ONE") {
		t.Fatalf("packed image did not run its /init; console:\n%s", lastN(out, 60))
	}
	newInit := filepath.Join(t.TempDir(), "init")
	os.WriteFile(newInit, []byte(init("NROOT-INITRD-MARKER-TWO")), 0o755)
	var out bytes.Buffer
	if err := initrd.Append(&out, bytes.NewReader(img.Bytes()), []initrd.AddSpec{{Src: newInit, Dest: "init"}}, initrd.PackOptions{Compression: initrd.XZ}); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "initrd2.img")
	os.WriteFile(second, out.Bytes(), 0o644)
	console := bootMarker(t, kernel, second)
	if !strings.Contains(console, "NROOT-INITRD-MARKER-TWO") || strings.Contains(console, "NROOT-INITRD-MARKER-ONE") {
		t.Fatalf("appended /init did not replace the packed one; console:\n%s", lastN(console, 60))
	}
}

func lastN(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
