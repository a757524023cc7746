package apt

import (
	"strings"
	"testing"
)

// TestAddLocal: a package file wins over the archive's versions of its
// name, higher or equal, and a file for another architecture is refused.
func TestAddLocal(t *testing.T) {
	u := NewUniverse([]string{"amd64"})
	index := "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nFilename: pool/h/hello_2.10-3_amd64.deb\nSize: 10\nSHA256: " + strings.Repeat("a", 64) + "\n\n"
	if _, err := u.Add(nil, strings.NewReader(index)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		control, wantErr string
	}{
		{"Package: hello\nVersion: 2.9-1\nArchitecture: amd64\n", ""},  // older than the archive's
		{"Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n", ""}, // the same version, rebuilt
		{"Package: hello\nVersion: 3.0-1\nArchitecture: arm64\n", "is for arm64"},
		{"Version: 1\n", "Package"},
	}
	for i, tt := range tests {
		sum := strings.Repeat(string(rune('b'+i)), 64)
		p, err := u.AddLocal(Local{Path: "/srv/debs/hello.deb", Control: tt.control, Size: 5, SHA256: sum})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want %q", tt.control, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c := u.Candidate("hello", "amd64")
		if c != p || c.SHA256 != sum || c.Origin.Source.URI != "file:///srv/debs" || c.Filename != "hello.deb" {
			t.Errorf("%q: candidate %+v", tt.control, c)
		}
	}
}
