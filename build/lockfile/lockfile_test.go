package lockfile

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRead: a lockfile is read from a file anyone may hand nroot; what
// it accepts never names a path outside the mirror.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"lock_version":1,"packages":[{"name":"a","version":"1","architecture":"all","filename":"pool/a.deb","uri":"http://x/","size":1,"sha256":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Read(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, pkg := range p.Packages {
			if strings.Contains(pkg.Filename, "..") && strings.Contains("/"+pkg.Filename+"/", "/../") {
				t.Fatalf("accepted escaping filename %q", pkg.Filename)
			}
		}
	})
}
