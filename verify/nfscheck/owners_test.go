package nfscheck

import (
	"strings"
	"testing"

	"nroot/verify/nfsclient"
)

// TestOwnersCheck: every name mapped passes; names left unmapped fail,
// naming the first files and what to change.
func TestOwnersCheck(t *testing.T) {
	tests := []struct {
		un   []nfsclient.Unmapped
		pass bool
		want []string
	}{
		{nil, true, []string{"every owner and group name"}},
		{[]nfsclient.Unmapped{{Path: "opt/y", Field: "group", Name: "ghost@d"}, {Path: "usr/x", Field: "owner", Name: "ghost@d"}}, false,
			[]string{`2 owners and groups`, `/usr/x (owner "ghost@d")`, `/opt/y (group "ghost@d")`}},
	}
	for _, tt := range tests {
		c := ownersCheck(tt.un, "the export's files")
		if c.Passed() != tt.pass {
			t.Errorf("%v: passed %v, want %v", tt.un, c.Passed(), tt.pass)
		}
		for _, w := range tt.want {
			if !strings.Contains(c.Detail, w) {
				t.Errorf("%v: detail %q lacks %q", tt.un, c.Detail, w)
			}
		}
		if !tt.pass && !strings.Contains(c.Fix, "Only_Numeric_Owners") {
			t.Errorf("fix %q", c.Fix)
		}
	}
}
