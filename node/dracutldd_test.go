package node

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"nroot/e2e/testenv"
)

func TestRtldList(t *testing.T) {
	tests := []struct {
		name string
		ldd  string
		want []string
	}{
		{"amd64's three loaders, quoted, in ldd's order", "#! /bin/bash\nTEXTDOMAIN=libc\nRTLDLIST=\"/lib/ld-linux.so.2 /lib64/ld-linux-x86-64.so.2 /libx32/ld-linux-x32.so.2\"\nwarn=\n", []string{"/lib/ld-linux.so.2", "/lib64/ld-linux-x86-64.so.2", "/libx32/ld-linux-x32.so.2"}},
		{"arm64's one loader, unquoted", "RTLDLIST=/lib/ld-linux-aarch64.so.1\n", []string{"/lib/ld-linux-aarch64.so.1"}},
		{"the first RTLDLIST line counts", "RTLDLIST=/lib/a.so\nRTLDLIST=/lib/b.so\n", []string{"/lib/a.so"}},
		{"no RTLDLIST: ldd stays", "#!/bin/sh\necho hello\n", nil},
		{"nothing read: ldd stays", "", nil},
		{"an empty list", "RTLDLIST=\"\"\n", nil},
		{"a relative loader", "RTLDLIST=\"lib/ld.so\"\n", nil},
		{"a variable", "RTLDLIST=\"$prefix/lib/ld.so\"\n", nil},
		{"a command substitution", "RTLDLIST=\"/lib/ld.so;reboot\"\n", nil},
		{"a quote inside", "RTLDLIST=\"/lib/ld.so\" /lib/x\"\n", nil},
		{"a parent directory", "RTLDLIST=\"/lib/../../ld.so\"\n", nil},
		{"too many loaders", "RTLDLIST=\"/a /b /c /d /e /f /g /h /i\"\n", nil},
		{"indented is not ldd's assignment", "  RTLDLIST=/lib/ld.so\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rtldList([]byte(tt.ldd)); !slices.Equal(got, tt.want) {
				t.Errorf("rtldList = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzRtldList: whatever the image's ldd says, the loaders that reach
// the helper's shell text are plain absolute paths, at most maxRtlds.
func FuzzRtldList(f *testing.F) {
	f.Add([]byte("RTLDLIST=\"/lib/ld-linux.so.2 /lib64/ld-linux-x86-64.so.2\"\n"))
	f.Add([]byte("RTLDLIST=/lib/ld-linux-aarch64.so.1"))
	f.Add([]byte("RTLDLIST=\"$(id)\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := rtldList(b)
		if len(got) > maxRtlds {
			t.Fatalf("%d loaders", len(got))
		}
		for _, p := range got {
			if !rtldPath.MatchString(p) || strings.Contains(p, "..") {
				t.Fatalf("loader %q reaches the script", p)
			}
		}
	})
}

// lddAddress is the load address ldd prints, different every run.
var lddAddress = regexp.MustCompile(`\(0x[0-9a-f]+\)`)

// TestLddHelperAnswersAsLdd runs the helper for the host's own loaders
// beside the host's ldd on the kinds of file dracut asks about: what
// dracut-install reads (output and exit status) must be the same.
func TestLddHelperAnswersAsLdd(t *testing.T) {
	ldd := testenv.Command(t, "ldd")
	script, err := os.ReadFile(ldd)
	if err != nil {
		t.Fatal(err)
	}
	rtlds := rtldList(script)
	if rtlds == nil {
		testenv.Missing(t, "glibc's ldd script with RTLDLIST")
	}
	dir := t.TempDir()
	helper := filepath.Join(dir, "ldd-helper")
	if err := os.WriteFile(helper, []byte(lddHelperScript(rtlds)), 0o755); err != nil {
		t.Fatal(err)
	}
	textFile := filepath.Join(dir, "notes.txt")
	os.WriteFile(textFile, []byte("not a program\n"), 0o755)
	unreadable := filepath.Join(dir, "secret")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	loader := ""
	for _, p := range rtlds {
		if _, err := os.Stat(p); err == nil && loader == "" {
			loader = p
		}
	}
	libc := ""
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			libc = p
		}
	}
	// fast: the helper answers without ldd (the case it is there for).
	tests := []struct {
		name string
		args []string
		fast bool
	}{
		{"a dynamic program", []string{"/bin/sh"}, true},
		{"a program through a symlink", []string{"/usr/bin/awk"}, true},
		{"a shared library", []string{libc}, true},
		{"the loader itself", []string{loader}, false},
		{"a static program", []string{"/sbin/ldconfig"}, false},
		{"a script", []string{ldd}, false},
		{"a text file", []string{textFile}, false},
		{"a directory", []string{dir}, false},
		{"a missing file", []string{filepath.Join(dir, "missing")}, false},
		{"an unreadable file", []string{unreadable}, false},
		{"a relative name", []string{"sh"}, false},
		{"two files", []string{"/bin/sh", "/usr/bin/awk"}, false},
	}
	noLdd := t.TempDir() // a PATH with no ldd on it
	run := func(path string, argv ...string) (string, int) {
		var out bytes.Buffer
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = []string{"LC_ALL=C", "PATH=" + path}
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return lddAddress.ReplaceAllString(out.String(), "(ADDR)"), code
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if slices.Contains(tt.args, "") {
				t.Skip("no such file on this host")
			}
			if _, err := os.Stat(tt.args[0]); err != nil && tt.name != "a missing file" && tt.name != "a relative name" {
				t.Skipf("%s: %v", tt.args[0], err)
			}
			path := os.Getenv("PATH")
			wantOut, wantCode := run(path, append([]string{ldd}, tt.args...)...)
			if tt.fast {
				path = noLdd
			}
			gotOut, gotCode := run(path, append([]string{helper}, tt.args...)...)
			// ldd names itself in its complaints; the helper's fallback
			// is ldd, so only the program's name may differ.
			gotOut = strings.ReplaceAll(gotOut, helper, ldd)
			if gotOut != wantOut || gotCode != wantCode {
				t.Errorf("helper: status %d\n%s\nldd: status %d\n%s", gotCode, gotOut, wantCode, wantOut)
			}
		})
	}
}
