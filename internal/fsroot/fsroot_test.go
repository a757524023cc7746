package fsroot

import (
	"errors"
	"testing"
)

func TestWindowsName(t *testing.T) {
	for _, c := range []struct {
		rel string
		ok  bool
	}{
		{"usr/lib/modules/6.1.0/kernel/fs/nfs/nfs.ko", true},
		{"etc/cmdline.d/nfs.conf", true},
		{"usr/share/console", true}, // longer than a device name
		{"usr/share/con.d", false},  // its stem, "con", is one
		{"usr/lib/COM10", true},
		{`usr\..\..\evil`, false},
		{"C:/Windows/evil", false},
		{"etc/passwd:stream", false},
		{"dev/nul", false},
		{"dev/NUL.txt", false},
		{"dev/Con", false},
		{"lpt1", false},
		{"com\u00b9", false},
		{"conin$", false},
		{"etc/trailing.", false},
		{"etc/trailing ", false},
		{"etc/a|b", false},
		{"etc/a\x01b", false},
	} {
		err := windowsName(c.rel)
		if (err == nil) != c.ok {
			t.Errorf("windowsName(%q) = %v, want ok %v", c.rel, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrWindowsName) {
			t.Errorf("windowsName(%q) = %v, not ErrWindowsName", c.rel, err)
		}
	}
}
