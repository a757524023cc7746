package hostapt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindMirror(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	deb822 := write("debian.sources", `# comment
Types: deb deb-src
URIs: http://primary.invalid/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://sec.invalid/debian-security
Suites: trixie-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.invalid/debian
Suites: trixie
`)
	oneLine := write("sources.list", "# deb http://commented.invalid/debian trixie main\ndeb [signed-by=/k.gpg] http://oneline.invalid/debian bookworm main\n")
	tests := []struct {
		name             string
		files            []string
		env              string
		given            string
		mirror, security string
		wantErr          string
	}{
		{name: "deb822", files: []string{deb822}, mirror: "http://primary.invalid/debian", security: "http://sec.invalid/debian-security"},
		{name: "one-line", files: []string{oneLine}, mirror: "http://oneline.invalid/debian"},
		{name: "env wins over host", files: []string{deb822}, env: "http://env.invalid/debian", mirror: "http://env.invalid/debian", security: "http://sec.invalid/debian-security"},
		{name: "given wins", files: []string{deb822}, env: "http://env.invalid/debian", given: "http://cli.invalid/debian", mirror: "http://cli.invalid/debian", security: "http://sec.invalid/debian-security"},
		{name: "nothing", files: nil, wantErr: "set NROOT_MIRROR"},
		{name: "bad env", env: "nonsense", wantErr: "NROOT_MIRROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(MirrorEnv, tt.env)
			host, err := Sources(tt.files)
			if err != nil {
				t.Fatal(err)
			}
			m, sec, _, err := FindMirror(tt.given, host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || m != tt.mirror || sec != tt.security {
				t.Fatalf("got %q %q %v, want %q %q", m, sec, err, tt.mirror, tt.security)
			}
		})
	}
}
