package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nrootBin is the command under test, built once by TestMain.
var nrootBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nroot-cli-")
	if err != nil {
		panic(err)
	}
	nrootBin = filepath.Join(dir, "nroot")
	if out, err := exec.Command("go", "build", "-o", nrootBin, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nroot runs the command as a user would and returns its output and
// exit status.
func nroot(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(nrootBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("nroot %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// writeTree makes files (name -> content; a name ending in / is a
// directory) below a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "init") || strings.Contains(name, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestInitrdCommands drives nroot initrd as a user would: pack an image,
// then list, cat, verify, diff, append and extract it, with the exit
// statuses and messages a script relies on.
func TestInitrdCommands(t *testing.T) {
	tmp := t.TempDir()
	src := writeTree(t, map[string]string{
		"init":                       "#!/bin/sh\necho hello\n",
		"usr/lib/dracut/modules.txt": "base\nnetwork\n",
		"usr/lib/dracut/dracut-059":  "",
		"etc/cmdline.d/40-nfs.conf":  "rd.neednet=1\n",
		"usr/lib/modules/6.1.0-9-amd64/kernel/fs/overlayfs/overlay.ko": "ko",
		"usr/lib/modules/6.1.0-9-amd64/modules.dep":                    "kernel/fs/overlayfs/overlay.ko:\n",
	})
	early := writeTree(t, map[string]string{"kernel/x86/microcode/GenuineIntel.bin": "ucode"})
	img := filepath.Join(tmp, "a.img")
	epoch := []string{"SOURCE_DATE_EPOCH=1700000000"}
	if _, errs, code := nroot(t, epoch, "initrd", "pack", src, "--early", early, "-o", img); code != 0 {
		t.Fatalf("pack: %d %s", code, errs)
	}
	again := filepath.Join(tmp, "again.img")
	nroot(t, epoch, "initrd", "pack", src, "--early", early, "-o", again)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(again)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two packs of one tree differ (%d and %d bytes)", len(a), len(b))
	}
	add := writeTree(t, map[string]string{"probe": "new"})
	appended := filepath.Join(tmp, "b.img")
	if _, errs, code := nroot(t, nil, "initrd", "append", img, "--add", filepath.Join(add, "probe")+":/etc/probe", "-o", appended); code != 0 {
		t.Fatalf("append: %d %s", code, errs)
	}
	garbage := filepath.Join(tmp, "garbage.img")
	os.WriteFile(garbage, []byte("this is not an initramfs"), 0o644)

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // each must appear
		stderr     string
		jsonOutput bool
	}{
		{"ls", []string{"initrd", "ls", img}, 0, []string{"Version: dracut-059", "early_cpio", "kernel/x86/microcode/GenuineIntel.bin", "usr/lib/modules/6.1.0-9-amd64/modules.dep", "6.1.0-9-amd64"}, "", false},
		{"ls glob", []string{"initrd", "ls", "--long", img, "etc/*"}, 0, []string{"-rw-r--r--", "etc/cmdline.d"}, "", false},
		{"ls segments", []string{"initrd", "ls", "--segments", appended}, 0, []string{"none", "zstd", "COMPRESSION"}, "", false},
		{"ls json", []string{"initrd", "ls", "--json", img}, 0, []string{`"dracut_version": "059"`}, "", true},
		{"ls missing file", []string{"initrd", "ls", filepath.Join(tmp, "nope.img")}, 1, nil, "nope.img", false},
		{"ls not an image", []string{"initrd", "ls", garbage}, 1, nil, "unknown data", false},
		{"cat", []string{"initrd", "cat", img, "/etc/cmdline.d/40-nfs.conf"}, 0, []string{"rd.neednet=1"}, "", false},
		{"cat appended", []string{"initrd", "cat", appended, "etc/probe"}, 0, []string{"new"}, "", false},
		{"cat missing path", []string{"initrd", "cat", img, "etc/nothing"}, 1, nil, "etc/nothing", false},
		{"verify fails naming checks", []string{"initrd", "verify", "--nfs", "--overlay", img}, 1, []string{"PASS  init", "FAIL  dracut-nfs", "FAIL  nfs-mount", "FAIL  overlay-hook"}, "checks failed", false},
		{"verify json", []string{"initrd", "verify", "--json", "--nfs", img}, 1, []string{`"pass": false`}, "", true},
		{"diff same", []string{"initrd", "diff", img, again}, 0, []string{"0 added, 0 removed, 0 changed"}, "", false},
		{"diff appended", []string{"initrd", "diff", img, appended}, 1, []string{"etc/", "+ etc/probe", "1 added"}, "images differ", false},
		{"diff json", []string{"initrd", "diff", "--json", img, appended}, 1, []string{`"added": 1`}, "", true},
		{"pack without -o", []string{"initrd", "pack", src}, 64, nil, "-o IMAGE is required", false},
		{"pack bad compression", []string{"initrd", "pack", src, "-o", filepath.Join(tmp, "c.img"), "--compress=lzo"}, 1, nil, `--compress "lzo"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := nroot(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errs)
			}
			if tt.jsonOutput && !json.Valid([]byte(out)) {
				t.Errorf("not JSON:\n%s", out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "c.img")); err == nil {
		t.Error("a refused pack left its output")
	}

	// extract, with a glob, then everything; a second extract over the
	// first is fine.
	dir := filepath.Join(tmp, "x")
	if _, errs, code := nroot(t, nil, "initrd", "extract", appended, dir, "etc/*"); code != 0 {
		t.Fatalf("extract glob: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "init")); err == nil {
		t.Error("extract with a glob wrote init")
	}
	for range 2 {
		if _, errs, code := nroot(t, nil, "initrd", "extract", appended, dir); code != 0 {
			t.Fatalf("extract: %d %s", code, errs)
		}
	}
	for name, want := range map[string]string{"etc/probe": "new", "init": "#!/bin/sh\necho hello\n", "kernel/x86/microcode/GenuineIntel.bin": "ucode"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init mode: %v %v", fi, err)
	}
}

// TestExtractUntrustedImage: an image's device nodes and setuid bits are
// not recreated unless asked for, since an untrusted image could leave a
// world-writable node for the host's disk or a setuid shell.
func TestExtractUntrustedImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("packing a device node needs root")
	}
	tree := writeTree(t, map[string]string{"init": "#!/bin/sh\n", "bin/sh": "shell", "dev/": ""})
	if err := syscall.Chmod(filepath.Join(tree, "bin/sh"), 0o4755); err != nil {
		t.Fatal(err)
	}
	// A node for the host's first disk, writable by everyone.
	if err := syscall.Mknod(filepath.Join(tree, "dev/disk"), syscall.S_IFBLK|0o666, 8<<8|0); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "initrd.img")
	if _, errs, code := nroot(t, nil, "initrd", "pack", tree, "-o", img, "--keep-owner"); code != 0 {
		t.Fatalf("pack: %s", errs)
	}
	for _, tt := range []struct {
		name           string
		flags          []string
		device, setuid bool
	}{
		{"defaults", nil, false, false},
		{"asked for", []string{"--devices", "--setuid"}, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "x")
			out, errs, code := nroot(t, nil, append([]string{"initrd", "extract", img, dir}, tt.flags...)...)
			if code != 0 {
				t.Fatalf("extract: %d %s", code, errs)
			}
			_, err := os.Lstat(filepath.Join(dir, "dev/disk"))
			if (err == nil) != tt.device {
				t.Errorf("device node made: %v, want %v", err == nil, tt.device)
			}
			fi, err := os.Stat(filepath.Join(dir, "bin/sh"))
			if err != nil {
				t.Fatal(err)
			}
			if (fi.Mode()&os.ModeSetuid != 0) != tt.setuid {
				t.Errorf("bin/sh mode %v, setuid wanted %v", fi.Mode(), tt.setuid)
			}
			if !tt.device && (!strings.Contains(out, "--devices") || !strings.Contains(out, "--setuid")) {
				t.Errorf("output does not say what was left out and how to keep it:\n%s", out)
			}
		})
	}
}
