package rootfs

import "testing"

// TestAptListName: the names apt-get update gives its lists files.
func TestAptListName(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"http://deb.debian.org/debian/dists/bookworm/InRelease", "deb.debian.org_debian_dists_bookworm_InRelease"},
		{"http://deb.debian.org/debian-security/dists/bookworm-security/", "deb.debian.org_debian-security_dists_bookworm-security_"},
		{"main/binary-amd64/Packages", "main_binary-amd64_Packages"},
		{"https://user:pw@mirror.example/a~b_c/dists/x/", "mirror.example_a%7eb%5fc_dists_x_"},
		{"file:///srv/mirror/dists/trixie/", "_srv_mirror_dists_trixie_"},
	}
	for _, tt := range tests {
		if got := aptListName(tt.uri); got != tt.want {
			t.Errorf("aptListName(%q) = %q, want %q", tt.uri, got, tt.want)
		}
	}
}
