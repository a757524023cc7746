package status

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  bool
	}{
		{`10.0.0.11 - - [06/Dec/2026:18:14:50 +0000] "GET /nodes/node01.img HTTP/1.1" 200 1234 "-" "iPXE/1.21.1"`,
			Request{Addr: "10.0.0.11", Time: time.Date(2026, 12, 6, 18, 14, 50, 0, time.UTC), Method: "GET", Path: "/nodes/node01.img", Status: 200}, false},
		{`fd00::5 - - [06/Dec/2026:19:14:50 +0100] "GET /generations/2/vmlinuz?x=1 HTTP/1.1" 304 0 "-" "-"`,
			Request{Addr: "fd00::5", Time: time.Date(2026, 12, 6, 18, 14, 50, 0, time.UTC), Method: "GET", Path: "/generations/2/vmlinuz", Status: 304}, false},
		{`10.0.0.1 - - [bad time] "GET / HTTP/1.1" 200 0 "-" "-"`, Request{}, true},
		{`10.0.0.1 - - [06/Dec/2026:18:14:50 +0000] "GET / HTTP/1.1`, Request{}, true},
		{`10.0.0.1 - - [06/Dec/2026:18:14:50 +0000] "-" 400 0 "-" "-"`, Request{}, true},
		{`10.0.0.1 - - [06/Dec/2026:18:14:50 +0000] "GET / HTTP/1.1" abc 0`, Request{}, true},
		{``, Request{}, true},
		// $remote_user is the client's: a forged time before the real one.
		{`10.0.0.11 - [01/Jan/2099:00:00:00 +0000] [06/Dec/2026:18:14:50 +0000] "GET /nodes/node01.img HTTP/1.1" 200 1234 "-" "iPXE/1.21.1"`,
			Request{Addr: "10.0.0.11", Time: time.Date(2026, 12, 6, 18, 14, 50, 0, time.UTC), Method: "GET", Path: "/nodes/node01.img", Status: 200}, false},
		{`10.0.0.11 - x] [06/Dec/2026:18:14:50 +0000] "GET /nodes/node01.img HTTP/1.1" 200 1234 "-" "-"`,
			Request{Addr: "10.0.0.11", Time: time.Date(2026, 12, 6, 18, 14, 50, 0, time.UTC), Method: "GET", Path: "/nodes/node01.img", Status: 200}, false},
		{`10.0.0.11 - - "GET /nodes/node01.img HTTP/1.1" [06/Dec/2026:18:14:50 +0000] 200 0`, Request{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLine(tt.line)
		if (err != nil) != tt.err || !tt.err && (!got.Time.Equal(tt.want.Time) || got.Addr != tt.want.Addr || got.Path != tt.want.Path || got.Status != tt.want.Status || got.Method != tt.want.Method) {
			t.Errorf("ParseLine(%q) = %+v, %v", tt.line, got, err)
		}
	}
}

// logLine is a request as nginx's combined format logs it.
func logLine(addr string, at time.Time, path string, status int) string {
	return addr + ` - - [` + at.Format("02/Jan/2006:15:04:05 -0700") + `] "GET ` + path + ` HTTP/1.1" ` + strconv.Itoa(status) + ` 100 "-" "iPXE/1.21.1"` + "\n"
}

// boot is what iPXE asks for when a node boots generation gen.
func boot(addr, mac, name string, at time.Time, gen string) string {
	return logLine(addr, at, "/boot.ipxe", 200) + logLine(addr, at, "/nodes/"+mac+".ipxe", 200) + logLine(addr, at, "/published.ipxe", 200) +
		logLine(addr, at, "/generations/"+gen+"/vmlinuz", 200) + logLine(addr, at, "/generations/"+gen+"/initrd.img", 200) + logLine(addr, at.Add(time.Second), "/nodes/"+name+".img", 200)
}

// TestRead: node01 and node02 boot generation 1; 2 is published and
// node01 boots it: node02 is stale, node03 (pinned to 1) current,
// node04 never seen. A refused segment (403) and lines in another
// format are no boots.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, g := range []string{"1", "2"} {
		os.MkdirAll(filepath.Join(dir, "generations", g, "root"), 0o755)
	}
	os.Symlink("generations/2/boot.ipxe", filepath.Join(dir, "published.ipxe"))
	logf := filepath.Join(dir, "access.log")
	os.WriteFile(filepath.Join(dir, "nodes.json"), []byte(`{"access_log": "`+logf+`", "nodes": [
	 {"name": "node01", "mac": "52:54:00:4e:52:01", "generation": "published"},
	 {"name": "node02", "mac": "52:54:00:4e:52:02", "generation": "published"},
	 {"name": "node03", "mac": "52:54:00:4e:52:03", "generation": "1"},
	 {"name": "node04", "mac": "52:54:00:4e:52:04", "generation": "published"}]}`), 0o644)
	t0 := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	log := boot("127.0.0.1", "52-54-00-4e-52-01", "node01", t0, "1") +
		boot("127.0.0.1", "52-54-00-4e-52-02", "node02", t0.Add(time.Minute), "1") +
		boot("10.0.0.13", "52-54-00-4e-52-03", "node03", t0.Add(2*time.Minute), "1") +
		"garbage line\n" +
		boot("127.0.0.1", "52-54-00-4e-52-01", "node01", t0.Add(time.Hour), "2") +
		// node02 fetches 2's kernel, but its segment is refused: no boot.
		logLine("10.9.9.9", t0.Add(2*time.Hour), "/generations/2/vmlinuz", 200) + logLine("10.9.9.9", t0.Add(2*time.Hour), "/nodes/node02.img", 403)
	os.WriteFile(logf, []byte(log), 0o644)
	rep, err := Read(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		state string
		gen   int
	}{"node01": {Current, 2}, "node02": {Stale, 1}, "node03": {Current, 1}, "node04": {NeverSeen, 0}}
	for _, n := range rep.Nodes {
		if w := want[n.Name]; n.State != w.state || n.BootedGeneration != w.gen {
			t.Errorf("%s: %s on %d, want %s on %d", n.Name, n.State, n.BootedGeneration, w.state, w.gen)
		}
	}
	if rep.PublishedGeneration != 2 || rep.Stale != 1 || rep.NeverSeen != 1 || rep.Current != 2 || rep.SkippedLines != 1 {
		t.Errorf("report %+v", rep)
	}
	if n := rep.Nodes[0]; n.BootedAt == nil || !n.BootedAt.Equal(t0.Add(time.Hour+time.Second)) || n.BootedFrom != "127.0.0.1" {
		t.Errorf("node01 booted at %v from %s", n.BootedAt, n.BootedFrom)
	}
	// No nodes.json: nroot pxe first.
	os.Remove(filepath.Join(dir, "nodes.json"))
	if _, err := Read(dir, Options{}); err == nil || !strings.Contains(err.Error(), "nroot pxe") {
		t.Errorf("without nodes.json: %v", err)
	}
}

// forged is a boot whose log lines carry a forged time in $remote_user.
func forged(addr, mac, name string, at time.Time, gen string) string {
	return strings.ReplaceAll(boot(addr, mac, name, at, gen), " - - [", " - [01/Jan/2099:00:00:00 +0000] [")
}

// TestBootsLaterWins: a node's last boot is its last one in the log,
// whatever time a client put in its Basic-auth user.
func TestBootsLaterWins(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		log  string
		gen  int
		at   time.Time
	}{
		{"a forged time, then a real boot", forged("10.0.0.9", "52-54-00-4e-52-01", "node01", t0, "1") + boot("10.0.0.11", "52-54-00-4e-52-01", "node01", t0.Add(time.Hour), "2"), 2, t0.Add(time.Hour + time.Second)},
		{"a real boot, then a forged time", boot("10.0.0.11", "52-54-00-4e-52-01", "node01", t0, "1") + forged("10.0.0.9", "52-54-00-4e-52-01", "node01", t0.Add(time.Hour), "2"), 2, t0.Add(time.Hour + time.Second)},
		{"a clock set back: the later line wins", boot("10.0.0.11", "52-54-00-4e-52-01", "node01", t0.Add(time.Hour), "1") + boot("10.0.0.11", "52-54-00-4e-52-01", "node01", t0, "2"), 2, t0.Add(time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			boots, _, err := Boots(strings.NewReader(c.log))
			if err != nil {
				t.Fatal(err)
			}
			if b := boots["node01"]; b.Generation != c.gen || !b.Time.Equal(c.at) {
				t.Errorf("node01: %+v, want generation %d at %v", b, c.gen, c.at)
			}
		})
	}
}

func FuzzBoots(f *testing.F) {
	t0 := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	f.Add(forged("10.0.0.9", "52-54-00-4e-52-01", "node01", t0, "1") + boot("10.0.0.11", "52-54-00-4e-52-01", "node01", t0, "2"))
	f.Add(boot("127.0.0.1", "52-54-00-4e-52-01", "node01", t0, "1"))
	f.Add(logLine("::1", t0, "/generations/12/initrd.img?a", 206) + logLine("::1", t0, "/nodes/a-b.img", 304))
	f.Fuzz(func(t *testing.T, log string) {
		boots, _, err := Boots(strings.NewReader(log))
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range boots {
			if !nodePath.MatchString("/nodes/"+name+".img") || b.Generation < 0 || b.Addr == "" {
				t.Fatalf("%q: %+v", name, b)
			}
		}
		for _, line := range strings.Split(log, "\n") {
			if r, err := ParseLine(line); err == nil && (r.Addr == "" || r.Status < 100 || r.Method == "") {
				t.Fatalf("%q: %+v", line, r)
			}
		}
	})
}
