package report

import (
	"encoding/json"
	"testing"
)

func TestMode(t *testing.T) {
	tests := []struct {
		m    Mode
		json string
	}{{0o755, `"0755"`}, {0o4755, `"4755"`}, {0o1777, `"1777"`}, {0, `"0000"`}}
	for _, tt := range tests {
		b, err := json.Marshal(tt.m)
		if err != nil || string(b) != tt.json {
			t.Errorf("%o: %s %v", tt.m, b, err)
		}
		var back Mode
		if err := json.Unmarshal(b, &back); err != nil || back != tt.m {
			t.Errorf("%s: back %o %v", b, back, err)
		}
	}
	var m Mode
	for _, bad := range []string{`"0999"`, `"77777"`, `420`, `"rwx"`} {
		if json.Unmarshal([]byte(bad), &m) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
