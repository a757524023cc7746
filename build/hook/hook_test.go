package hook

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`copy-in a b /etc`, []string{"copy-in", "a", "b", "/etc"}, false},
		{`upload 'my file' "/etc/with space"`, []string{"upload", "my file", "/etc/with space"}, false},
		{`a\ b "c\"d" 'e\f'`, []string{"a b", `c"d`, `e\f`}, false},
		{`x ""`, []string{"x", ""}, false},
		{`  `, nil, false},
		{`'open`, nil, true},
		{`"open`, nil, true},
	}
	for _, tt := range tests {
		got, err := SplitWords(tt.in)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzSplitWords(f *testing.F) {
	f.Add(`copy-in "a b" 'c' d\ e`)
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		if len(words) > maxWords+1 {
			t.Fatalf("%d words", len(words))
		}
		// Words without quoting characters come back as they went in.
		if !strings.ContainsAny(s, "'\"\\") {
			// The shell splits on space, tab and newline only.
			want := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
			if !slices.Equal(words, want) && !(len(words) == 0 && len(want) == 0) {
				t.Fatalf("SplitWords(%q) = %q, want %q", s, words, want)
			}
		}
	})
}

func TestNewRefuses(t *testing.T) {
	tests := []struct{ stage, cmd string }{
		{"install", "true"},          // no such stage
		{Setup, "  "},                // nothing to run
		{Customize, "upload a"},      // one argument
		{Customize, "tar-in a b c"},  // three
		{Customize, "copy-in /etc"},  // no destination
		{Customize, "download 'a b"}, // unterminated quote
	}
	for _, tt := range tests {
		if _, err := New(tt.stage, tt.cmd, false, "--"+tt.stage+"-hook"); !errors.Is(err, ErrUsage) {
			t.Errorf("New(%q, %q) = %v, want ErrUsage", tt.stage, tt.cmd, err)
		}
	}
	// A chrooted hook named like a special one is a command.
	if h, err := New(Customize, "upload a", true, "--chrooted-customize-hook"); err != nil || h.special != nil {
		t.Errorf("chrooted: %+v %v", h, err)
	}
}

// TestCommands: a command gets the target as $1 and mmdebstrap's
// variables, runs in the shell when it has shell syntax, and a failure
// names the hook.
func TestCommands(t *testing.T) {
	target := t.TempDir()
	script := filepath.Join(t.TempDir(), "customize01.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$MMDEBSTRAP_HOOK $MMDEBSTRAP_INCLUDE\" > \"$1/from-script\"\n"), 0o755)
	var hooks []Hook
	for _, c := range []struct{ stage, cmd string }{
		{Setup, `echo "$MMDEBSTRAP_MODE" > "$1/mode"`},
		{Extract, `echo "$MMDEBSTRAP_ESSENTIAL" > "$1/essential"`},
		{Customize, script},
	} {
		h, err := New(c.stage, c.cmd, false, "--"+c.stage+"-hook")
		if err != nil {
			t.Fatal(err)
		}
		hooks = append(hooks, h)
	}
	env := Env{Target: target, Include: []string{"a,b", "c"}, Essential: []string{"dpkg", "libc6"}}
	for _, st := range Stages {
		if err := Run(context.Background(), hooks, st, env); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string]string{"mode": "root\n", "essential": "dpkg libc6\n", "from-script": "customize a%2Cb,c\n"} {
		if b, _ := os.ReadFile(filepath.Join(target, file)); string(b) != want {
			t.Errorf("%s = %q, want %q", file, b, want)
		}
	}
	bad, _ := New(Customize, `echo out; exit 3`, false, "--customize-hook")
	var out bytes.Buffer
	err := Run(context.Background(), []Hook{bad}, Customize, Env{Target: target, Stdout: &out})
	var he *Error
	if !errors.As(err, &he) || he.Hook.Command != `echo out; exit 3` || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing hook: %v", err)
	}
	if out.String() != "out\n" {
		t.Errorf("hook output %q", out.String())
	}
}

func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"setup02.sh", 0o755}, {"setup01.sh", 0o755}, {"customize.sh", 0o755}, {"README.txt", 0o644}, {"other.sh", 0o755}} {
		os.WriteFile(filepath.Join(dir, f.name), []byte("#!/bin/sh\n"), f.mode)
	}
	os.Mkdir(filepath.Join(dir, "essential.d"), 0o755)
	hooks, err := Directory(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hooks {
		got = append(got, h.Stage+":"+filepath.Base(h.Command))
	}
	if want := []string{"setup:setup01.sh", "setup:setup02.sh", "customize:customize.sh"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	os.WriteFile(filepath.Join(dir, "extract.sh"), []byte("#!/bin/sh\n"), 0o644)
	if _, err := Directory(dir); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "extract.sh") {
		t.Errorf("a hook that is not executable: %v", err)
	}
	if _, err := Directory(filepath.Join(dir, "missing")); !errors.Is(err, ErrUsage) {
		t.Errorf("a missing directory: %v", err)
	}
}

// TestCommandStoppedWithItsGroup: a cancelled command hook is stopped with
// everything it started, even what ignores SIGTERM, and soon.
func TestCommandStoppedWithItsGroup(t *testing.T) {
	tests := []struct {
		name, cmd string
	}{
		{"a child in the background", `sleep 300 & echo $! > "$1/child"; echo $$ > "$1/group"; wait`},
		{"all ignoring SIGTERM", `trap '' TERM; sleep 300 & echo $! > "$1/child"; echo $$ > "$1/group"; sleep 300`},
		{"output still held by a child", `trap '' TERM; (sleep 300; echo late) & echo $! > "$1/child"; echo $$ > "$1/group"; sleep 300`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := t.TempDir()
			h, err := New(Customize, tt.cmd, false, "--customize-hook")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out bytes.Buffer // a pipe the children hold too
			done := make(chan error, 1)
			go func() { done <- Run(ctx, []Hook{h}, Customize, Env{Target: target, Stdout: &out, Stderr: &out}) }()
			var group int
			for i := 0; group == 0 && i < 100; i++ {
				time.Sleep(50 * time.Millisecond)
				b, _ := os.ReadFile(filepath.Join(target, "group"))
				group, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			if group == 0 {
				t.Fatal("the hook did not start")
			}
			t.Cleanup(func() { syscall.Kill(-group, syscall.SIGKILL) })
			start := time.Now()
			cancel()
			select {
			case err = <-done:
			case <-time.After(killGrace + 2*time.Second):
				t.Fatalf("still running %v after cancellation", time.Since(start))
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			// Killed processes are gone once their parent (or init)
			// reaps them.
			var alive []int
			for i := 0; i < 40; i++ {
				if alive = liveInGroup(group); len(alive) == 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(alive) > 0 {
				t.Errorf("processes %v of the hook's group %d still run", alive, group)
			}
		})
	}
}

// liveInGroup lists the processes of a process group that are not
// zombies.
func liveInGroup(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // state, ppid, pgrp, ...
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestCommandsAsMmdebstrapRunsThem: a relative target reaches hooks as an
// absolute $1 while they run in the caller's directory; a script without
// "#!" runs through sh; what a hook leaves in the background is killed
// when it returns; MMDEBSTRAP_APT_CONFIG is given; hooks that need
// mmdebstrap's --hook-helper are refused.
func TestCommandsAsMmdebstrapRunsThem(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	if err := os.Mkdir("rel", 0o755); err != nil {
		t.Fatal(err)
	}
	noShebang := filepath.Join(cwd, "setup-plain")
	os.WriteFile(noShebang, []byte("echo \"$1 $(pwd) $MMDEBSTRAP_APT_CONFIG $DEBIAN_FRONTEND $LC_ALL ${TMPDIR-unset}\" > \"$1/plain\"\n"), 0o755)
	t.Setenv("TMPDIR", "/somewhere")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	var hooks []Hook
	for _, c := range []struct{ stage, cmd string }{
		{Setup, noShebang},
		{Customize, `sleep 300 & echo $! > "$1/bg"`},
	} {
		h, err := New(c.stage, c.cmd, false, "--"+c.stage+"-hook")
		if err != nil {
			t.Fatal(err)
		}
		hooks = append(hooks, h)
	}
	env := Env{Target: "./rel", AptConfig: "/x/apt.conf"}
	start := time.Now()
	for _, st := range Stages {
		if err := Run(context.Background(), hooks, st, env); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hooks took %v: a background child was waited for", d)
	}
	abs := filepath.Join(cwd, "rel")
	if b, _ := os.ReadFile(filepath.Join(abs, "plain")); string(b) != abs+" "+cwd+" /x/apt.conf noninteractive C.UTF-8 unset\n" {
		t.Errorf("plain script wrote %q, want $1 %s, cwd %s, the apt config, mmdebstrap's environment, no TMPDIR", b, abs, cwd)
	}
	b, _ := os.ReadFile(filepath.Join(abs, "bg"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("no background pid")
	}
	for i := 0; i < 40 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !bytes.Contains(st, []byte(") Z")) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("background process %d outlived its hook", pid)
	}
	helper := filepath.Join(cwd, "setup99")
	os.WriteFile(helper, []byte("#!/bin/sh\n\"$MMDEBSTRAP_ARGV0\" --hook-helper \"$1\" x <&\"$MMDEBSTRAP_HOOKSOCK\"\n"), 0o755)
	if _, err := New(Setup, helper, false, "--setup-hook"); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "special hooks") {
		t.Errorf("a hook using --hook-helper: %v", err)
	}
	if _, err := Directory(cwd); !errors.Is(err, ErrUsage) {
		t.Errorf("a hook directory with a --hook-helper hook: %v", err)
	}
}

// TestSyncOutMakesTheDirectory: special hooks make the host paths they
// write to, as mmdebstrap does.
func TestSyncOutMakesTheDirectory(t *testing.T) {
	target := t.TempDir()
	os.MkdirAll(filepath.Join(target, "etc/x"), 0o755)
	os.WriteFile(filepath.Join(target, "etc/x/f"), []byte("f\n"), 0o644)
	out := filepath.Join(t.TempDir(), "a", "b")
	for _, c := range []string{"sync-out /etc/x " + out, "download /etc/x/f " + out + "/c/d/f"} {
		h, err := New(Customize, c, false, "--customize-hook")
		if err != nil {
			t.Fatal(err)
		}
		if err := Run(context.Background(), []Hook{h}, Customize, Env{Target: target}); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
	for _, p := range []string{out + "/f", out + "/c/d/f"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "f\n" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
}
