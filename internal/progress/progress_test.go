package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestHandler: stage lines in brackets, warnings said, values quoted
// when they need it.
func TestHandler(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(NewHandler(&b, slog.LevelInfo))
	log.Info("done in 0.63 s", "stage", "resolve")
	log.Warn("suite not found", "suite", "trixie-backports", "why", "a b")
	log.Debug("hidden")
	want := "[resolve] done in 0.63 s\n[nroot] warning: suite not found suite=trixie-backports why=\"a b\"\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestIndent: programs' lines are indented, nroot's own are not, across
// writes that split lines.
func TestIndent(t *testing.T) {
	var b bytes.Buffer
	w := Indent(&b, "    ")
	for _, s := range []string{"[configure] dpkg --configure\nSetting up a", " ...\nSetting up b ...\n", "[configure] done\n"} {
		w.Write([]byte(s))
	}
	want := "[configure] dpkg --configure\n    Setting up a ...\n    Setting up b ...\n[configure] done\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

// TestBarTells: items, bytes where there are any, a rate only for what
// was transferred, and what came from a cache.
func TestBarTells(t *testing.T) {
	tests := []struct {
		name       string
		total      int64
		items      int
		do         func(b *Bar)
		has, hasNo []string
	}{
		{"items only", 0, 3, func(b *Bar) { b.Item(); b.Item(); b.Item() }, []string{"[unpack] 100% 3/3 packages"}, []string{"B/s", "0 B"}},
		{"all cached", 300, 3, func(b *Bar) { b.Cached(100); b.Cached(100); b.Cached(100) }, []string{"3/3 packages", "300 B/300 B", "(3 cached)"}, []string{"/s"}},
		{"some fetched", 300, 2, func(b *Bar) { b.Cached(100); b.Add(200); b.Item() }, []string{"2/2 packages", "/s", "(1 cached)"}, nil},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		b := New(&out, "unpack", tt.total, tt.items)
		b.Unit = "packages"
		tt.do(b)
		b.Finish()
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		last := lines[len(lines)-1]
		for _, s := range tt.has {
			if !strings.Contains(last, s) {
				t.Errorf("%s: %q lacks %q", tt.name, last, s)
			}
		}
		for _, s := range tt.hasNo {
			if strings.Contains(last, s) {
				t.Errorf("%s: %q has %q", tt.name, last, s)
			}
		}
	}
}
