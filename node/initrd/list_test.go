package initrd

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		name  string
		globs []string
		want  bool
	}{
		{"usr/bin/tool", nil, true},
		{"etc/cmdline.d/40-nfs.conf", []string{"etc/*"}, true}, // * crosses "/" as in cpio
		{"etc", []string{"etc/*"}, false},
		{"./etc/cmdline.d/40-nfs.conf", []string{"/etc/cmdline.d/*.conf"}, true},
		{"etc/cmdline.d/40-nfs.conf", []string{"etc/cmdline.d/*.txt"}, false},
		{"usr/lib/modules/6.1.0-9-amd64/kernel/fs/nfs/nfs.ko", []string{"usr/lib/modules/*/kernel/fs/nfs/*"}, true},
		{"usr/lib/modules/6.1.0-9-amd64/kernel/fs/nfs/nfs.ko", []string{"*nfs.ko"}, true},
		{"usr/lib/modules/6.1.0-9-amd64/kernel/fs/nfs/nfs.ko", []string{"usr/lib"}, true}, // a directory: its subtree
		{"usr/library", []string{"usr/lib"}, false},
		{"usr/bin/tool", []string{"u?r/bin/tool"}, true},
		{"usr/bin/tool", []string{"usr?bin/tool"}, true},
		{"usr/bin/tool", []string{"[a-t]*"}, false},
		{"usr/bin/tool", []string{"nothing", "[u]sr/*"}, true},
		{"usr/bin/tool", []string{"usr/bin/[" /* malformed */}, false},
	}
	for _, tt := range tests {
		if got := Match(tt.name, tt.globs); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.name, tt.globs, got, tt.want)
		}
	}
}
