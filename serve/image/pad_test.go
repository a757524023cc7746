package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitrdPadded: a generation's initramfs is padded with zeros to a
// multiple of 4 bytes, for the identity segment loaded after it under
// UEFI, and is otherwise the root's; one already aligned is unchanged.
func TestInitrdPadded(t *testing.T) {
	for _, tt := range []struct {
		initrd string
		size   int
	}{
		{"init", 4},
		{"initrd", 8},
		{"initrd!", 8},
		{"initrd!!", 8},
		{"initrd!!!", 12},
	} {
		im := Image{Dir: t.TempDir()}
		root := fixture(t, []string{"base-files 12"}, map[string]string{"boot/initrd.img-6.1.0-9-amd64": tt.initrd})
		g, err := im.Import(context.Background(), root, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(im.Dir, "generations", "1", "initrd.img"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != tt.size || !bytes.HasPrefix(b, []byte(tt.initrd)) || strings.Trim(string(b[len(tt.initrd):]), "\x00") != "" {
			t.Errorf("%q: generation %d's initrd.img is %q, want it padded with zeros to %d bytes", tt.initrd, g.ID, b, tt.size)
		}
	}
}
