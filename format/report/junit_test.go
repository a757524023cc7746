package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteJUnit(t *testing.T) {
	tests := []struct {
		name                     string
		checks                   []Check
		tests, failures, skipped int
	}{
		{"all pass", []Check{{Name: "init", Status: Pass, Detail: "ok"}}, 1, 0, 0},
		{"one fails", []Check{
			{Name: "init", Status: Pass, Detail: "ok"},
			{Name: "nfs", Status: Fail, Detail: "no <nfs> & mount.nfs", Fix: "add dracut's nfs module"},
			{Name: "dracut-base", Status: Skip, Detail: "not applicable: initramfs-tools image"},
			{Name: "ssh", Status: Warn, Detail: "keys present"},
		}, 4, 1, 1},
		{"none", nil, 0, 0, 0},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "sub", "junit.xml")
		if err := WriteJUnit(path, "initrd verify x.img", tt.checks); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var got JUnit
		if err := xml.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: not XML: %v\n%s", tt.name, err, b)
		}
		if len(got.Suites) != 1 {
			t.Fatalf("%s: %d suites", tt.name, len(got.Suites))
		}
		s := got.Suites[0]
		if s.Name != "initrd verify x.img" || s.Tests != tt.tests || s.Failures != tt.failures || s.Skipped != tt.skipped || len(s.Cases) != len(tt.checks) {
			t.Errorf("%s: suite %+v", tt.name, s)
		}
		for i, c := range tt.checks {
			tc := s.Cases[i]
			if tc.Name != c.Name {
				t.Errorf("%s: case %d is %q, want %q", tt.name, i, tc.Name, c.Name)
			}
			if (tc.Failure != nil) != (c.Status == Fail) || (tc.Skipped != nil) != (c.Status == Skip) {
				t.Errorf("%s: %s (%s): failure %v skipped %v", tt.name, c.Name, c.Status, tc.Failure, tc.Skipped)
			}
			if tc.Failure != nil && (tc.Failure.Message != c.Detail || !strings.Contains(tc.Failure.Text, c.Fix)) {
				t.Errorf("%s: failure %+v lost %q / %q", tt.name, tc.Failure, c.Detail, c.Fix)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(m) > 0 {
			t.Errorf("%s: temporary files left: %v", tt.name, m)
		}
	}
}

func TestWriteJUnitUnwritable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteJUnit(filepath.Join(dir, "file", "junit.xml"), "check", nil)
	if err == nil || !strings.Contains(err.Error(), "--junit") {
		t.Errorf("a path under a file: %v", err)
	}
}
