//go:build linux

package main

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nroot/e2e/testenv"
)

// bootstrapIn runs nroot bootstrap in dir, as a script written for
// mmdebstrap runs it, and returns its combined output.
func bootstrapIn(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(nrootBin, append([]string{"bootstrap"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// hostAptState is what apt on the host keeps: the dpkg status and the
// lists, each with its mtime and content hash.
func hostAptState(t *testing.T) map[string]string {
	t.Helper()
	state := map[string]string{}
	for _, root := range []string{"/var/lib/apt/lists", "/var/lib/dpkg/status"} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, "/lock") {
				return nil
			}
			fi, _ := d.Info()
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			state[p] = fi.ModTime().String() + " " + hex.EncodeToString(sum[:])
			return nil
		})
	}
	return state
}

// TestBootstrapHooksAsMmdebstrap: one minbase build whose hooks are
// written for mmdebstrap. From a relative TARGET they run in the
// caller's directory with an absolute $1 and mmdebstrap's environment;
// etc/ is there for setup hooks; a hook file without "#!" runs; an
// essential hook's debconf preseed reaches tzdata; apt in a customize
// hook, through MMDEBSTRAP_APT_CONFIG, installs into the image and leaves
// the host's apt alone; the real start-stop-daemon is back after a hook
// removed it; a hook's background child is killed; sync-out makes its
// directory; mmdebstrap's eatmydata and merged-usr hook directories run
// (the latter's apt-get install in an essential hook configures every
// package nroot unpacked).
func TestBootstrapHooksAsMmdebstrap(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	testenv.Command(t, "systemd-nspawn")
	testenv.Command(t, "apt-get")
	eatmydata := "/usr/share/mmdebstrap/hooks/eatmydata" // mmdebstrap's, package mmdebstrap
	if _, err := os.Stat(eatmydata); err != nil {
		testenv.Missing(t, "mmdebstrap's hook directory: %v", err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "setup-plain")
	os.WriteFile(plain, []byte("echo plain > \"$1/etc/plain-setup\"\n"), 0o755) // no #!
	dump := `env | grep ^MMDEBSTRAP_ | sort > "$1/etc/env-$MMDEBSTRAP_HOOK"; echo "PWD=$(pwd)" >> "$1/etc/env-$MMDEBSTRAP_HOOK"; echo "TARGET=$1" >> "$1/etc/env-$MMDEBSTRAP_HOOK"`
	before := hostAptState(t)
	out, err := bootstrapIn(t, dir, "--variant=minbase", "--include=tzdata", "--hook-dir="+eatmydata,
		"--setup-hook="+dump, "--setup-hook="+plain,
		"--extract-hook="+dump, "--essential-hook="+dump, "--customize-hook="+dump,
		"--essential-hook=echo tzdata tzdata/Areas select Europe | chroot \"$1\" debconf-set-selections && echo tzdata tzdata/Zones/Europe select Berlin | chroot \"$1\" debconf-set-selections",
		// apt-get install in an essential hook configures every package
		// unpacked: nroot then configures only what is left.
		"--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
		"--customize-hook=APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-get install -q -y hello",
		`--customize-hook=rm "$1/usr/sbin/start-stop-daemon" "$1/usr/sbin/policy-rc.d"`,
		`--customize-hook=sleep 300 & echo $! > "$PWD/bgpid"`,
		"--customize-hook=sync-out /etc/apt new/dir",
		"bookworm", "./rel", mirror)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	target := filepath.Join(dir, "rel")
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(target, p)); return string(b) }
	var aptConfig string
	for _, stage := range []string{"setup", "extract", "essential", "customize"} {
		env := read("etc/env-" + stage)
		for _, want := range []string{"MMDEBSTRAP_HOOK=" + stage + "\n", "MMDEBSTRAP_MODE=root\n", "MMDEBSTRAP_VERBOSITY=1\n", "MMDEBSTRAP_INCLUDE=tzdata\n", "MMDEBSTRAP_APT_CONFIG=/", "PWD=" + dir + "\n", "TARGET=" + dir + "/.rel.nroot-"} {
			if !strings.Contains(env, want) {
				t.Errorf("%s hook's environment lacks %q:\n%s", stage, want, env)
			}
		}
		if (stage == "extract") != strings.Contains(env, "MMDEBSTRAP_ESSENTIAL=") {
			t.Errorf("%s hook: MMDEBSTRAP_ESSENTIAL only for extract:\n%s", stage, env)
		}
		for _, l := range strings.Split(env, "\n") {
			if v, ok := strings.CutPrefix(l, "MMDEBSTRAP_APT_CONFIG="); ok {
				aptConfig = v
			}
		}
	}
	if strings.HasPrefix(aptConfig, dir) {
		t.Errorf("MMDEBSTRAP_APT_CONFIG %s is beside the image", aptConfig)
	}
	if _, err := os.Stat(aptConfig); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MMDEBSTRAP_APT_CONFIG %s left behind: %v", aptConfig, err)
	}
	if got := read("etc/plain-setup"); got != "plain\n" {
		t.Errorf("hook without #!: %q", got)
	}
	if l, err := os.Readlink(filepath.Join(target, "etc/localtime")); err != nil || !strings.HasSuffix(l, "Europe/Berlin") {
		t.Errorf("etc/localtime -> %q (%v): the essential hook's preseed did not reach tzdata", l, err)
	}
	if st := read("var/lib/dpkg/status"); !strings.Contains(st, "Package: hello\nStatus: install ok installed") {
		t.Error("hello, installed by apt in a customize hook, is not in the image's dpkg status")
	}
	if after := hostAptState(t); len(after) != len(before) {
		t.Errorf("host apt state: %d files before, %d after", len(before), len(after))
	} else {
		for p, v := range before {
			if after[p] != v {
				t.Errorf("host %s changed: %s -> %s", p, v, after[p])
			}
		}
	}
	if f, err := elf.Open(filepath.Join(target, "usr/sbin/start-stop-daemon")); err != nil {
		t.Errorf("usr/sbin/start-stop-daemon is not the real one: %v", err)
	} else {
		f.Close()
	}
	// eatmydata's hooks wrapped dpkg from extract to customize.
	if f, err := elf.Open(filepath.Join(target, "usr/bin/dpkg")); err != nil {
		t.Errorf("usr/bin/dpkg is not the real one after mmdebstrap's eatmydata hooks: %v", err)
	} else {
		f.Close()
	}
	if !strings.Contains(out, "libeatmydata.so") {
		t.Errorf("mmdebstrap's eatmydata extract hook did not unpack libeatmydata:\n%s", out)
	}
	for _, p := range []string{"usr/sbin/policy-rc.d", "usr/sbin/start-stop-daemon.REAL", "usr/bin/dpkg.distrib", "usr/bin/eatmydata"} {
		if _, err := os.Lstat(filepath.Join(target, p)); err == nil {
			t.Errorf("%s left in the image", p)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new/dir/sources.list.d")); err != nil {
		t.Errorf("sync-out into a new directory: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "bgpid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("the background hook wrote no pid")
	}
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !bytes.Contains(stat, []byte(") Z")) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("a customize hook's background child (pid %d) outlived the build", pid)
	}
	for _, p := range []string{"/etc/env-setup", "/etc/plain-setup", "/bgpid"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s written on the host's /", p)
		}
	}
}

// TestBootstrapInterruptedInHook: SIGINT while a customize hook sleeps
// stops the build within seconds, kills the hook's group, exits non-zero
// and leaves nothing (a cheap custom build: hooks run there too, as in
// mmdebstrap). On the way, a setup hook writes "$1/etc/passwd", as
// mmdebstrap makes etc/ before setup hooks.
func TestBootstrapInterruptedInHook(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	dir := t.TempDir()
	cmd := exec.Command(nrootBin, "bootstrap", "--variant=custom", "--include=dpkg",
		`--setup-hook=echo "root:x:0:0:root:/root:/bin/sh" > "$1/etc/passwd"`,
		`--customize-hook=cp "$1/etc/passwd" "$PWD/passwd-seen"; echo $$ > "$PWD/hookpid"; sleep 300`, "bookworm", "./rel", mirror)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var hook int
	for deadline := time.Now().Add(90 * time.Second); hook == 0 && time.Now().Before(deadline); {
		select {
		case err := <-done:
			t.Fatalf("bootstrap ended before its hook ran: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		b, _ := os.ReadFile(filepath.Join(dir, "hookpid"))
		hook, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if hook == 0 {
		cmd.Process.Kill()
		t.Fatalf("the hook did not start:\n%s", out.String())
	}
	t.Cleanup(func() { syscall.Kill(-hook, syscall.SIGKILL) })
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 20 s after SIGINT:\n%s", out.String())
	}
	t.Logf("stopped %v after SIGINT", time.Since(start))
	if err == nil {
		t.Errorf("an interrupted build exited 0:\n%s", out.String())
	}
	// Killed processes linger as zombies until init reaps them.
	var alive []int
	for i := 0; i < 40; i++ {
		if alive = liveInGroup(hook); len(alive) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(alive) > 0 {
		t.Errorf("processes %v of the hook's group %d still run", alive, hook)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "passwd-seen")); string(b) != "root:x:0:0:root:/root:/bin/sh\n" {
		t.Errorf("a setup hook writing $1/etc/passwd: the customize hook saw %q", b)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*rel*"))
	if len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}

// TestBootstrapWithoutCapSysAdmin: as root without CAP_SYS_ADMIN (a CI
// container that is not privileged), a build configures through a plain
// chroot as mmdebstrap's does, hooks included; and --mode=unshare as root
// keeps root's own IDs (no subordinate range asked for, files owned by
// root), with MMDEBSTRAP_MODE=unshare.
func TestBootstrapWithoutCapSysAdmin(t *testing.T) {
	mirror := testenv.Mirror(t)
	testenv.Root(t)
	capsh := testenv.Command(t, "capsh")
	dir := t.TempDir()
	target := filepath.Join(dir, "img")
	cmd := exec.Command(capsh, "--drop=cap_sys_admin", "--", "-c", `exec "$0" "$@"`, nrootBin,
		"bootstrap", "--mode=unshare", "--variant=minbase", "--include=hello",
		`--customize-hook=chroot "$1" hello > "$1/hello.out"; echo "$MMDEBSTRAP_MODE" > "$1/mode"; grep CapEff /proc/self/status > "$1/caps"`,
		"--chrooted-customize-hook=echo inside > /inside",
		"bookworm", target, mirror)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap without CAP_SYS_ADMIN: %v\n%s", err, out)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(target, p)); return string(b) }
	if caps := strings.Fields(read("caps")); len(caps) != 2 || func() bool { n, _ := strconv.ParseUint(caps[1], 16, 64); return n&(1<<21) != 0 }() {
		t.Fatalf("hooks ran with CAP_SYS_ADMIN (%q): the test did not drop it", caps)
	}
	for p, want := range map[string]string{"hello.out": "Hello, world!\n", "inside": "inside\n", "mode": "unshare\n"} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(target, "etc/passwd"), &st); err != nil || st.Uid != 0 {
		t.Errorf("etc/passwd owned by %d (%v): --mode=unshare as root must keep root's IDs", st.Uid, err)
	}
	if b, err := exec.Command("chroot", target, "dpkg", "--audit").CombinedOutput(); err != nil || len(b) != 0 {
		t.Errorf("dpkg --audit: %v\n%s", err, b)
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

// TestBootstrapRefusesHookHelper: a hook that talks to mmdebstrap's
// --hook-helper (mmdebstrap's own file-mirror-automount directory does)
// is a one-line usage error before anything is fetched; so are
// mmdebstrap's no-merged-usr hooks, which nroot would not honour.
func TestBootstrapRefusesHookHelper(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "setup00.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n\"$MMDEBSTRAP_ARGV0\" --hook-helper \"$1\" \"$MMDEBSTRAP_MODE\" setup env 1 upload a /a <&\"$MMDEBSTRAP_HOOKSOCK\" >&\"$MMDEBSTRAP_HOOKSOCK\"\n"), 0o755)
	for _, flag := range []string{"--hook-dir=" + dir, "--setup-hook=" + script, `--customize-hook=mmdebstrap --hook-helper "$1" root customize env 1 sync-in a /a`} {
		_, errs, code := nroot(t, []string{"NROOT_MIRROR=http://127.0.0.1:9/debian"}, "bootstrap", flag, "bookworm", filepath.Join(dir, "out"))
		if code != 64 || !strings.Contains(errs, "--hook-helper") || !strings.Contains(errs, "special hooks") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%s: exit %d, want 64 and one line naming --hook-helper:\n%s", flag, code, errs)
		}
	}
	// mmdebstrap's no-merged-usr hooks ask for what nroot never builds.
	noMerged := "/usr/share/mmdebstrap/hooks/no-merged-usr" // package mmdebstrap
	if _, err := os.Stat(noMerged); err != nil {
		testenv.Missing(t, "mmdebstrap's hook directory: %v", err)
	}
	_, errs, code := nroot(t, []string{"NROOT_MIRROR=http://127.0.0.1:9/debian"}, "bootstrap", "--hook-dir="+noMerged, "bookworm", filepath.Join(dir, "out"))
	if code != 64 || !strings.Contains(errs, "no-merged-usr") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("--hook-dir=%s: exit %d, want 64 and one line:\n%s", noMerged, code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a refused build left a TARGET")
	}
}
