package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nroot/build/nspawn"
	"nroot/e2e/ganesha"
	"nroot/e2e/testenv"
)

// TestWindowsBinary runs the windows/amd64 binary make dist writes under
// Wine (make windows: NROOT_WINE_ROOT is a Debian root with Wine, run
// with systemd-nspawn, the host's network shared). The binary lists an
// initramfs as the Linux binary does, extracts it saying per entry what
// Windows could not make, refuses names Windows would misread without
// writing outside its directory, and checks a ganesha export on
// 127.0.0.1 against a local tree.
func TestWindowsBinary(t *testing.T) {
	wineRoot := os.Getenv("NROOT_WINE_ROOT")
	if wineRoot == "" {
		t.Skip("make windows runs this test (NROOT_WINE_ROOT: a root with Wine)")
	}
	testenv.Root(t)
	work := t.TempDir()
	dist := filepath.Join(work, "dist")
	cmd := exec.Command("../scripts/dist.sh")
	cmd.Env = append(os.Environ(), "DIST="+dist, "DIST_TARGETS=windows/amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	exes, _ := filepath.Glob(filepath.Join(dist, "nroot-*-windows-amd64.exe"))
	if len(exes) != 1 {
		t.Fatalf("make dist wrote %v, not one windows binary", exes)
	}
	if err := os.Rename(exes[0], filepath.Join(work, "nroot.exe")); err != nil {
		t.Fatal(err)
	}
	linux := filepath.Join(work, "nroot")
	if out, err := exec.Command("go", "build", "-o", linux, "../cmd/nroot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r, err := nspawn.New(wineRoot)
	if err != nil {
		t.Fatal(err)
	}
	r.Binds = []string{work + ":/w"}
	r.Env = append(r.Env, "WINEDEBUG=-all", "WINEPREFIX=/w/.wine", "HOME=/w", "XDG_RUNTIME_DIR=/tmp")
	// win runs nroot.exe under Wine, every path given as Wine's Z:\w\...
	win := func(args ...string) (string, string, int) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		r.Stdout, r.Stderr = &stdout, &stderr
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err := r.Run(ctx, append([]string{"wine", "/w/nroot.exe"}, args...)...)
		var ee *nspawn.ExitError
		switch {
		case errors.As(err, &ee):
			return stdout.String(), stderr.String(), ee.Status
		case err != nil:
			t.Fatalf("wine nroot.exe %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String(), 0
	}
	if out, errOut, code := win("version"); code != 0 || !strings.HasPrefix(out, "nroot ") {
		t.Fatalf("nroot.exe version: exit %d, %q %q", code, out, errOut)
	}

	// An initramfs with what Windows cannot make: a symlink, a FIFO and a
	// device node.
	src := testenv.Tree(t, map[string]string{
		"etc/os-release":         "ID=debian\n",
		"usr/bin/hello":          "#!/bin/sh\necho hello\n",
		"usr/lib/modules/x.ko":   strings.Repeat("k", 70000),
		"etc/cmdline.d/nfs.conf": "root=nfs4:10.0.0.1:/node\n",
	})
	must(t, os.Symlink("usr/bin", filepath.Join(src, "bin")))
	must(t, unix.Mkfifo(filepath.Join(src, "run-fifo"), 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(src, "dev/console"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
	img := filepath.Join(work, "initrd.img")
	if out, err := exec.Command(linux, "initrd", "pack", src, "-o", img).CombinedOutput(); err != nil {
		t.Fatalf("initrd pack: %v\n%s", err, out)
	}
	want, err := exec.Command(linux, "initrd", "ls", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	got, errOut, code := win("initrd", "ls", "--json", `Z:\w\initrd.img`)
	if code != 0 || !jsonEqual(t, want, []byte(got)) {
		t.Fatalf("nroot.exe initrd ls: exit %d, %s\nwant (linux) %s\ngot %s", code, errOut, want, got)
	}

	got, errOut, code = win("initrd", "extract", "--json", `Z:\w\initrd.img`, `Z:\w\out`)
	if code != 0 {
		t.Fatalf("nroot.exe initrd extract: exit %d\n%s", code, errOut)
	}
	var res struct {
		Skipped []string
		NotMade []struct{ Path, Type, Reason string } `json:"not_made"`
	}
	must(t, json.Unmarshal([]byte(got), &res))
	notMade := map[string]string{}
	for _, n := range res.NotMade {
		notMade[n.Path] = n.Type
	}
	if notMade["bin"] != "symlink" || notMade["run-fifo"] != "fifo" || strings.Join(res.Skipped, " ") != "dev/console" {
		t.Errorf("extract: not made %v, skipped %v; want bin (symlink), run-fifo (fifo), dev/console skipped", res.NotMade, res.Skipped)
	}
	if b, err := os.ReadFile(filepath.Join(work, "out/usr/bin/hello")); err != nil || string(b) != "#!/bin/sh\necho hello\n" {
		t.Errorf("extracted usr/bin/hello: %q, %v", b, err)
	}

	// Names Windows would read as something else: each image is refused,
	// and nothing lands outside the directory.
	for name, entry := range map[string]string{"backslash": `..\..\evil`, "device": "etc/con.txt", "stream": "etc/passwd:hidden"} {
		hostile := testenv.Tree(t, map[string]string{entry: "x"})
		himg := filepath.Join(work, name+".img")
		if out, err := exec.Command(linux, "initrd", "pack", hostile, "-o", himg).CombinedOutput(); err != nil {
			t.Fatalf("initrd pack %s: %v\n%s", name, err, out)
		}
		_, errOut, code := win("initrd", "extract", `Z:\w\`+name+".img", `Z:\w\h-`+name)
		if code == 0 || !strings.Contains(errOut, "not a safe name on Windows") {
			t.Errorf("extract of %q: exit %d, %q; want a refusal naming the entry", entry, code, errOut)
		}
	}
	if _, err := os.Lstat(filepath.Join(work, "evil")); err == nil {
		t.Error(`..\..\evil was written outside the extract directory`)
	}

	// An export of a tree of files and directories, checked from Windows
	// against a copy of it: types, sizes and contents (Windows keeps no
	// Unix modes or owners to compare).
	files := map[string]string{"etc/hostname": "node\n", "usr/share/doc/a": "doc", "boot/x": strings.Repeat("b", 300000)}
	tree, local := filepath.Join(work, "tree"), filepath.Join(work, "rootfs")
	must(t, os.Rename(testenv.Tree(t, files), tree))
	must(t, os.Rename(testenv.Tree(t, files), local))
	s, err := ganesha.Start(context.Background(), []ganesha.Export{{ID: 7, Path: tree, Pseudo: "/win"}}, ganesha.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, url := range []string{"nfs://127.0.0.1" + tree, fmt.Sprintf("nfs4://127.0.0.1:%d/win", s.NFSPort)} {
		got, errOut, code = win("check", "--json", "--deep", "--rootfs", `Z:\w\rootfs`, url)
		// The tree is no node (no /sbin/init): the boot checks fail, exit
		// 1; the comparison is what is asserted.
		var rep struct {
			Compared    string `json:"compared_with"`
			Differences []any  `json:"differences"`
		}
		if code > 1 || json.Unmarshal([]byte(got), &rep) != nil {
			t.Fatalf("nroot.exe check %s: exit %d, %s\n%s", url, code, got, errOut)
		}
		if rep.Compared == "" || len(rep.Differences) != 0 {
			t.Errorf("nroot.exe check %s: compared with %q, differences %v", url, rep.Compared, rep.Differences)
		}
		// Changed on the server, the check from Windows sees it.
		must(t, os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("other\n"), 0o644))
		got, _, code = win("check", "--json", "--deep", "--rootfs", `Z:\w\rootfs`, url)
		must(t, os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("node\n"), 0o644))
		var changed struct {
			Differences []struct{ Path, Kind string } `json:"differences"`
		}
		if code != 1 || json.Unmarshal([]byte(got), &changed) != nil || len(changed.Differences) != 1 || changed.Differences[0].Path != "/etc/hostname" {
			t.Errorf("nroot.exe check %s of a changed file: exit %d, %s", url, code, got)
		}
	}

	// A Linux-only command says so in one line and exits 1.
	if _, errOut, code := win("bootstrap", "trixie", `Z:\w\root`); code != 1 || !strings.Contains(errOut, "needs Linux") {
		t.Errorf("nroot.exe bootstrap: exit %d, %q", code, errOut)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// jsonEqual compares two JSON objects as values, but for "image", the
// path each was given, and "nroot_version", which make dist stamps.
func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, k := range []string{"image", "nroot_version"} {
		delete(x, k)
		delete(y, k)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
