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

// TestOutput: a program's lines are logged one record each, shown
// indented under the stage's own lines, across writes that split lines;
// a child nroot's own lines stay as they are; a line longer than MaxLine
// comes in pieces; Flush logs what has no newline; -q (Warn) hides it.
func TestOutput(t *testing.T) {
	long := strings.Repeat("x", MaxLine+10)
	tests := []struct {
		name   string
		level  slog.Level
		writes []string
		want   string
	}{
		{"split lines", slog.LevelInfo, []string{"Setting up a", " ...\r\nSetting up b ...\n", "[hook] done\n"},
			"[configure] dpkg --configure\n    Setting up a ...\n    Setting up b ...\n[hook] done\n"},
		{"no newline", slog.LevelInfo, []string{"last words"}, "[configure] dpkg --configure\n    last words\n"},
		{"long line", slog.LevelInfo, []string{long + "\n"},
			"[configure] dpkg --configure\n    " + long[:MaxLine] + "\n    " + long[MaxLine:] + "\n"},
		{"quiet", slog.LevelWarn, []string{"Setting up a ...\n"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			log := slog.New(NewHandler(&b, tt.level))
			log.Info("dpkg --configure", "stage", "configure")
			w := Output(log, "configure")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			w.Flush()
			if b.String() != tt.want {
				t.Errorf("got %q\nwant %q", b.String(), tt.want)
			}
		})
	}
	var b bytes.Buffer
	w := Output(slog.New(NewHandler(&b, slog.LevelInfo).StagesOnly()), "configure")
	w.Write([]byte("Setting up a ...\n"))
	if b.Len() != 0 {
		t.Errorf("StagesOnly showed %q", b.String())
	}
	if n, err := Output(nil, "x").Write([]byte("a\n")); n != 2 || err != nil {
		t.Errorf("nil log: %d, %v", n, err)
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
