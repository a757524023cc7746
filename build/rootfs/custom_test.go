package rootfs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/build/hook"
	"nroot/build/rootfs"
	"nroot/e2e/testenv"
)

// docExcludes is mmdebstrap's own example for a smaller image.
var docExcludes = []string{
	"path-exclude=/usr/share/man/*",
	"path-include=/usr/share/man/man[1-9]/*",
	"path-exclude=/usr/share/locale/*",
	"path-include=/usr/share/locale/locale.alias",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-include=/usr/share/doc/*/changelog.Debian.*",
}

// TestDpkgPathFiltersMatchMmdebstrap builds bookworm minbase with
// mmdebstrap's example path filters, with nroot and with mmdebstrap
// (whose dpkg applies them), and expects the same tree.
func TestDpkgPathFiltersMatchMmdebstrap(t *testing.T) {
	mirror := requireBootstrap(t)
	mmdebstrap := testenv.Command(t, "mmdebstrap")
	base := t.TempDir()
	mine := filepath.Join(base, "nroot")
	o := bootstrapOptions(mirror, "bookworm", "minbase")
	o.DpkgOpts = docExcludes
	res, err := rootfs.Bootstrap(context.Background(), mine, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Filtered == nil || res.Filtered.Entries == 0 || res.Filtered.Bytes == 0 {
		t.Errorf("filtered: %+v", res.Filtered)
	}
	ref := filepath.Join(base, "mmdebstrap")
	args := []string{"--quiet", "--mode=root", "--format=directory", "--variant=minbase", "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"}
	for _, d := range docExcludes {
		args = append(args, "--dpkgopt="+d)
	}
	args = append(args, "bookworm", ref, "deb "+mirror+" bookworm main")
	if out, err := exec.Command(mmdebstrap, args...).CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	var diffs []string
	for _, d := range compareTrees(t, mine, ref) {
		// Each tool names its own configuration file.
		if !strings.Contains(d, "etc/dpkg/dpkg.cfg.d/99") {
			diffs = append(diffs, d)
		}
	}
	for _, d := range diffs {
		t.Errorf("tree differs: %s", d)
	}
	cfg, err := os.ReadFile(filepath.Join(mine, "etc/dpkg/dpkg.cfg.d/99nroot"))
	if err != nil || !strings.Contains(string(cfg), "path-include=/usr/share/doc/*/copyright\n") {
		t.Errorf("dpkg.cfg.d/99nroot: %v\n%s", err, cfg)
	}
	// The man page a filter kept, and one it left out (section 1 of
	// sed's, a localized page of another).
	if _, err := os.Stat(filepath.Join(mine, "usr/share/man/man1/sed.1.gz")); err != nil {
		t.Error(err)
	}
	entries, _ := os.ReadDir(filepath.Join(mine, "usr/share/man"))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "man") {
			t.Errorf("usr/share/man/%s kept: only man[1-9] should be", e.Name())
		}
	}
	if out, err := exec.Command("chroot", mine, "dpkg", "--audit").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("dpkg --audit: %v\n%s", err, out)
	}
}

func mustHook(t *testing.T, stage, cmd string, chrooted bool) hook.Hook {
	t.Helper()
	h, err := hook.New(stage, cmd, chrooted, "--"+stage+"-hook")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHooks runs a hook at every stage of a real build, each seeing the
// image as mmdebstrap's would at that point, and a failing hook that must
// leave no target behind.
func TestHooks(t *testing.T) {
	mirror := requireBootstrap(t)
	base := t.TempDir()
	motd := filepath.Join(base, "motd")
	os.WriteFile(motd, []byte("built by a hook\n"), 0o644)
	o := bootstrapOptions(mirror, "bookworm", "minbase")
	o.Config.Include = []string{"hello"}
	o.Skip = []string{"cleanup/tmp", "output/mknod"}
	o.Hooks = []hook.Hook{
		// setup: nothing unpacked yet.
		mustHook(t, hook.Setup, `test ! -e "$1/usr/bin/dpkg" && echo "$MMDEBSTRAP_HOOK" > "$1/setup-ran"`, false),
		// extract: unpacked, not configured.
		mustHook(t, hook.Extract, `test -x "$1/usr/bin/dpkg" && ! grep -q "^Status: install ok installed" "$1/var/lib/dpkg/status" && echo "$MMDEBSTRAP_ESSENTIAL" > "$1/extract-ran"`, false),
		// essential: the essential set is configured, hello is not yet.
		mustHook(t, hook.Essential, `chroot "$1" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' dpkg hello > "$1/essential-ran"`, false),
		mustHook(t, hook.Customize, "upload "+motd+" /etc/motd", false),
		mustHook(t, hook.Customize, `touch "$1/tmp/kept" "$1/run/removed"`, false),
		mustHook(t, hook.Customize, `hello > /etc/from-inside && test -s /etc/apt/sources.list.d/debian.sources`, true),
	}
	target := filepath.Join(base, "img")
	if _, err := rootfs.Bootstrap(context.Background(), target, o); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(target, p)); return string(b) }
	if got := read("setup-ran"); got != "setup\n" {
		t.Errorf("setup hook: %q", got)
	}
	if got := strings.Fields(read("extract-ran")); !slices.Contains(got, "dpkg") || !slices.Contains(got, "libc6") {
		t.Errorf("extract hook saw MMDEBSTRAP_ESSENTIAL %q", got)
	}
	if got := read("essential-ran"); !strings.Contains(got, "ii  dpkg") || !strings.Contains(got, "hello") || strings.Contains(got, "ii  hello") {
		t.Errorf("essential hook saw:\n%s", got)
	}
	if got := read("etc/motd"); got != "built by a hook\n" {
		t.Errorf("etc/motd %q", got)
	}
	if got := read("etc/from-inside"); got != "Hello, world!\n" {
		t.Errorf("chrooted customize hook: %q", got)
	}
	// Skipped: /tmp is not emptied (/run is), no device nodes are made.
	if _, err := os.Stat(filepath.Join(target, "tmp/kept")); err != nil {
		t.Errorf("--skip=cleanup/tmp: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "run/removed")); err == nil {
		t.Error("run/removed was not cleaned up")
	}
	if fi, err := os.Lstat(filepath.Join(target, "dev/null")); err == nil {
		t.Errorf("--skip=output/mknod: dev/null is %v", fi.Mode())
	}

	// A failing hook fails the build, names itself, and leaves nothing.
	o.Hooks = []hook.Hook{mustHook(t, hook.Customize, `echo failing; exit 7`, false)}
	failed := filepath.Join(base, "failed")
	_, err := rootfs.Bootstrap(context.Background(), failed, o)
	var he *hook.Error
	if !errors.As(err, &he) || he.Hook.Stage != hook.Customize || !strings.Contains(err.Error(), "exit status 7") {
		t.Fatalf("failing hook: %v", err)
	}
	if names, _ := filepath.Glob(filepath.Join(base, "*failed*")); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}
