package nspawn

import (
	"slices"
	"testing"
)

func TestParseSystemdVersion(t *testing.T) {
	tests := []struct {
		name, out string
		want      int
	}{
		{"Debian 12's nspawn", "systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT -SELINUX\n", 252},
		{"a version without the package's", "systemd 257\n", 257},
		{"another program's banner is no version", "busybox 1.36\n", 0},
		{"a word where the number is", "systemd two (2)\n", 0},
		{"nothing printed", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseSystemdVersion(tt.out); got != tt.want {
				t.Errorf("parseSystemdVersion(%q) = %d, want %d", tt.out, got, tt.want)
			}
		})
	}
}

func TestSuppressSyncFlag(t *testing.T) {
	tests := []struct {
		name   string
		noSync bool
		host   Host
		want   bool
	}{
		{"asked, and nspawn has it", true, Host{Nspawn: "/usr/bin/systemd-nspawn", SuppressSync: true}, true},
		{"asked, but nspawn is older than 250", true, Host{Nspawn: "/usr/bin/systemd-nspawn"}, false},
		{"not asked", false, Host{Nspawn: "/usr/bin/systemd-nspawn", SuppressSync: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{Root: "/img", Host: tt.host, NoSync: tt.noSync}
			args := r.nspawnArgs(Pipe, []string{"/bin/true"})
			if got := slices.Contains(args, "--suppress-sync=yes"); got != tt.want {
				t.Errorf("--suppress-sync=yes in %q: %v, want %v", args, got, tt.want)
			}
			if i := slices.Index(args, "--"); i < 0 || slices.Index(args, "--suppress-sync=yes") > i {
				t.Errorf("nspawn's options must come before --: %q", args)
			}
		})
	}
}
