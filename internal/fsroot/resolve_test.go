package fsroot

import "testing"

func TestResolveLinks(t *testing.T) {
	links := map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "usr/sbin/init": "../lib/systemd/systemd", "abs": "/etc", "up": "../../..", "loop": "loop"}
	rl := func(p string) (string, bool) { t, ok := links[p]; return t, ok }
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/sbin/init", "usr/lib/systemd/systemd", true},
		{"bin/sh", "usr/bin/sh", true},
		{"abs/passwd", "etc/passwd", true},
		{"up/etc/shadow", "etc/shadow", true}, // cannot climb out of the root
		{"loop/x", "loop/x", false},
	}
	for _, tt := range tests {
		got, ok := ResolveLinks(tt.in, rl)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ResolveLinks(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
