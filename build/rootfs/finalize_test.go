package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nroot/build/lockfile"
	"nroot/format/keyring"
	"nroot/internal/fsroot"
)

// TestWriteSources checks the image's deb822 sources: codenames, suites
// of one mirror grouped, Signed-By the image's keyring package, and
// Check-Valid-Until: no only for suites accepted past their Valid-Until.
func TestWriteSources(t *testing.T) {
	const mirror, security = "http://mirror.invalid/debian", "http://mirror.invalid/debian-security"
	src := func(uri, codename string, expired bool) lockfile.Source {
		return lockfile.Source{URI: uri, Suite: codename, Codename: codename, Components: []string{"main"}, Keyring: keyring.Debian, Expired: expired}
	}
	const ubuntu = "http://mirror.invalid/ubuntu"
	usrc := func(codename string, comps ...string) lockfile.Source {
		return lockfile.Source{URI: ubuntu, Suite: codename, Codename: codename, Components: comps, Keyring: keyring.Ubuntu}
	}
	tests := []struct {
		name    string
		origin  string
		sources []lockfile.Source
		want    string
	}{
		{"current", "Debian", []lockfile.Source{src(mirror, "trixie", false), src(mirror, "trixie-updates", false), src(security, "trixie-security", false)},
			"\nTypes: deb\nURIs: " + mirror + "\nSuites: trixie trixie-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\n" +
				"\nTypes: deb\nURIs: " + security + "\nSuites: trixie-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\n"},
		{"snapshot", "Debian", []lockfile.Source{src(mirror, "forky", true), src(mirror, "forky-updates", false)},
			"\nTypes: deb\nURIs: " + mirror + "\nSuites: forky\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\nCheck-Valid-Until: no\n" +
				"\nTypes: deb\nURIs: " + mirror + "\nSuites: forky-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.pgp\n"},
		// Resolved from main alone, an Ubuntu image still lists
		// Ubuntu's default components, so dracut (universe) installs.
		{"ubuntu", "Ubuntu", []lockfile.Source{usrc("noble", "main"), usrc("noble-updates", "main"), usrc("noble-security", "main")},
			"\nTypes: deb\nURIs: " + ubuntu + "\nSuites: noble noble-updates noble-security\nComponents: main restricted universe multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"},
		{"ubuntu components given", "Ubuntu", []lockfile.Source{usrc("jammy", "universe", "main")},
			"\nTypes: deb\nURIs: " + ubuntu + "\nSuites: jammy\nComponents: universe main restricted multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "usr/share/keyrings"), 0o755)
			os.WriteFile(filepath.Join(dir, "usr/share/keyrings/debian-archive-keyring.pgp"), []byte("keys"), 0o644)
			os.WriteFile(filepath.Join(dir, "usr/share/keyrings/ubuntu-archive-keyring.gpg"), []byte("keys"), 0o644)
			root, err := fsroot.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			plan := &lockfile.Plan{Origin: tt.origin, Sources: tt.sources, Keyrings: []lockfile.Keyring{{Name: tt.sources[0].Keyring}}}
			if err := writeSources(root, plan, nil); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "etc/apt/sources.list.d/"+strings.ToLower(tt.origin)+".sources"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimPrefix(string(b), "# Written by nroot bootstrap.\n"); got != tt.want {
				t.Errorf("sources:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
