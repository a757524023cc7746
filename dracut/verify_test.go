package dracut

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"nroot/initrd"
)

// TestVerifyNamesWhatIsMissing: an image packed from a tree that has a
// kernel module but none of dracut's pieces fails the checks for each of
// them, by name.
func TestVerifyNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs/overlay.ko"), []byte("ko"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/modules.dep"), []byte("kernel/fs/overlay.ko:\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("binary"), 0o755)
	var b bytes.Buffer
	if err := initrd.Pack(&b, dir, initrd.PackOptions{Compression: initrd.Zstd}); err != nil {
		t.Fatal(err)
	}
	checks, _, err := Verify(bytes.NewReader(b.Bytes()), Options{NFS: true, Overlay: true})
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, c := range checks {
		if !c.Passed() {
			failed[c.Name] = true
		}
	}
	for _, want := range []string{"init", "dracut-modules", "nfs-mount", "overlay-hook", "kernel-modules"} {
		if !failed[want] {
			t.Errorf("check %s did not fail on an image without it: %+v", want, checks)
		}
	}
}
