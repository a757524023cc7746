//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/build/apt"
	"nroot/build/nspawn"
	"nroot/build/rootfs"
	"nroot/e2e/testenv"
	"nroot/node/dracut"
	"nroot/node/initrd"
)

// TestInitramfsToolsListing: an image Debian's default generator makes
// (bookworm's initramfs-tools, with AMD microcode in an early archive)
// lists, entry by entry and in order, what its own lsinitramfs lists; cat
// gives a file as the root has it; verify runs its generic checks and
// says dracut's do not apply.
func TestInitramfsToolsListing(t *testing.T) {
	testenv.Mirror(t)
	testenv.Root(t)
	testenv.Command(t, "systemd-nspawn")
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	_, err := rootfs.Bootstrap(ctx, root, rootfs.Options{
		Config: apt.Config{Suite: "bookworm", Variant: "minbase", Components: []string{"main", "non-free-firmware"},
			Include: []string{"linux-image-amd64", "initramfs-tools", "amd64-microcode"}},
		Apt: apt.Options{Fetcher: cache()},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := nspawn.New(root)
	if err != nil {
		t.Fatal(err)
	}
	// The microcode goes in whatever this machine's CPU is.
	if err := os.WriteFile(filepath.Join(root, "etc/default/amd64-microcode"), []byte("AMD64UCODE_INITRAMFS=early\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, "update-initramfs", "-u", "-k", "all"); err != nil {
		t.Fatal(err)
	}
	images, _ := filepath.Glob(filepath.Join(root, "boot/initrd.img-*"))
	if len(images) != 1 {
		t.Fatalf("bookworm with linux-image-amd64 has initramfs images %v, want one", images)
	}
	img := images[0]
	var out bytes.Buffer
	r.Stdout = &out
	if err := r.Run(ctx, "lsinitramfs", "/boot/"+filepath.Base(img)); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	segs, err := initrd.Scan(f, func(h *initrd.Header, _ io.Reader) error {
		got = append(got, h.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("nroot lists %d entries, lsinitramfs %d; first difference %s", len(got), len(want), firstDifference(got, want))
	}
	if len(segs) < 2 || segs[0].Compression != initrd.None || !slices.Contains(got, "kernel/x86/microcode/AuthenticAMD.bin") {
		t.Fatalf("segments %+v: want the microcode in an uncompressed early archive first", segs)
	}
	t.Logf("initramfs-tools image: %d entries in %d segments, equal to lsinitramfs", len(got), len(segs))

	// cat: the configuration initramfs-tools copied in, byte for byte.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var conf bytes.Buffer
	if err := initrd.Cat(f, "conf/initramfs.conf", &conf); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/initramfs-tools/initramfs.conf")); err != nil || !bytes.Equal(b, conf.Bytes()) {
		t.Errorf("initrd cat conf/initramfs.conf differs from the root's etc/initramfs-tools/initramfs.conf (%v)", err)
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	checks, info, err := dracut.Verify(f, dracut.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Generator != initrd.InitramfsTools {
		t.Errorf("generator %q, want %s", info.Generator, initrd.InitramfsTools)
	}
	for _, c := range checks {
		if !c.Passed() {
			t.Errorf("verify of the initramfs-tools image: %s %s: %s", c.Name, c.Status, c.Detail)
		}
	}
}
