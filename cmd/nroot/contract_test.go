package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// packTree packs a tree into an image with nroot initrd pack.
func packTree(t *testing.T, tree string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "initrd.img")
	if _, errs, code := nroot(t, nil, "initrd", "pack", tree, "-o", img, "--compress=gzip"); code != 0 {
		t.Fatalf("pack: %s", errs)
	}
	return img
}

type lsEntry struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Mode     string `json:"mode"`
	Linkname string `json:"linkname"`
	Segment  int    `json:"segment"`
}

func listJSON(t *testing.T, img string) []lsEntry {
	t.Helper()
	out, errs, code := nroot(t, nil, "initrd", "ls", "--json", img)
	if code != 0 {
		t.Fatalf("ls: %s", errs)
	}
	var doc struct {
		Version string    `json:"nroot_version"`
		Entries []lsEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version == "" {
		t.Error("the JSON document does not say which nroot wrote it")
	}
	return doc.Entries
}

// TestAppendKeepsTheImage: on a merged-/usr image, append adds its files
// where the kernel will put them and writes no directory the image has,
// so lib stays a symlink and /tmp keeps 1777.
func TestAppendKeepsTheImage(t *testing.T) {
	tree := writeTree(t, map[string]string{"init": "#!/bin/sh\n", "usr/lib/modules/": "", "tmp/": ""})
	os.Symlink("usr/lib", filepath.Join(tree, "lib"))
	syscall.Chmod(filepath.Join(tree, "tmp"), 0o1777)
	img := packTree(t, tree)
	add := writeTree(t, map[string]string{"nfs.ko": "module", "probe/a": "a", "probe/b": "b"})
	out := filepath.Join(t.TempDir(), "out.img")
	if _, errs, code := nroot(t, nil, "initrd", "append", img, "--add", filepath.Join(add, "nfs.ko")+":/lib/modules/extra/nfs.ko",
		"--add", filepath.Join(add, "probe")+":/tmp/probe", "-o", out); code != 0 {
		t.Fatalf("append: %s", errs)
	}
	names := map[string]int{}
	for _, e := range listJSON(t, out) {
		if e.Segment == 1 {
			names[e.Name]++
		}
		if e.Name == "lib" && e.Segment == 1 {
			t.Errorf("append wrote a lib entry (%s), which replaces the image's symlink", e.Type)
		}
		if e.Name == "tmp" && e.Mode != "1777" {
			t.Errorf("tmp is %s after append", e.Mode)
		}
	}
	for _, want := range []string{"usr/lib/modules/extra", "usr/lib/modules/extra/nfs.ko", "tmp/probe", "tmp/probe/a"} {
		if names[want] != 1 {
			t.Errorf("%s appears %d times in the new segment (%v)", want, names[want], names)
		}
	}
	for _, notWanted := range []string{"tmp", "usr", "usr/lib", "usr/lib/modules", "lib/modules/extra/nfs.ko"} {
		if names[notWanted] > 0 {
			t.Errorf("the new segment holds %s", notWanted)
		}
	}
	// Not an initramfs: refused.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte(strings.Repeat("not an image ", 100)), 0o644)
	if _, errs, code := nroot(t, nil, "initrd", "append", junk, "--add", filepath.Join(add, "nfs.ko"), "-o", filepath.Join(t.TempDir(), "o")); code == 0 {
		t.Errorf("append on a file that is no initramfs exited 0: %s", errs)
	}
}

// TestCatHardLink: a hard link whose data the archive keeps on another
// name prints that data.
func TestCatHardLink(t *testing.T) {
	tree := writeTree(t, map[string]string{"init": "#!/bin/sh\n", "bin/busybox": "the busybox binary"})
	os.Link(filepath.Join(tree, "bin/busybox"), filepath.Join(tree, "bin/sh"))
	img := packTree(t, tree)
	for _, name := range []string{"bin/busybox", "bin/sh"} {
		out, errs, code := nroot(t, nil, "initrd", "cat", img, name)
		if code != 0 || out != "the busybox binary" {
			t.Errorf("cat %s: %q %s", name, out, errs)
		}
	}
}

// TestWrongResultsRefused: each of these once gave a wrong result with
// exit status 0. Usage errors exit 64, failures 1.
func TestWrongResultsRefused(t *testing.T) {
	tree := writeTree(t, map[string]string{"init": "#!/bin/sh\n"})
	img := packTree(t, tree)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	emptyDir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"pack a file", []string{"initrd", "pack", file, "-o", filepath.Join(t.TempDir(), "o.img")}, 1, "not a directory"},
		{"pack --early a file", []string{"initrd", "pack", tree, "--early", file, "-o", filepath.Join(t.TempDir(), "o.img")}, 1, "not a directory"},
		{"pack into its own tree", []string{"initrd", "pack", tree, "-o", filepath.Join(tree, "out.img")}, 64, "inside"},
		{"ls malformed pattern", []string{"initrd", "ls", img, "[init"}, 64, "malformed"},
		{"ls no match", []string{"initrd", "ls", img, "nothing/*"}, 1, "no such entry"},
		{"extract no match", []string{"initrd", "extract", img, filepath.Join(t.TempDir(), "x"), "nothing"}, 1, "nothing extracted"},
		{"cat missing", []string{"initrd", "cat", img, "etc/none"}, 1, "no such entry"},
		{"unknown initrd command", []string{"initrd", "bogus"}, 64, "unknown command"},
		{"unknown keyring command", []string{"keyring", "bogus"}, 64, "unknown command"},
		{"export without --server", []string{"export", tree}, 64, "--server"},
		{"export bad host", []string{"export", tree, "--server=bad host!"}, 64, "--server"},
		{"export host:port", []string{"export", tree, "--server=10.0.0.1:2049"}, 64, "--port=2049"},
		{"export --server=ganesha", []string{"export", tree, "--server=ganesha"}, 64, "--ganesha"},
		{"export negative port", []string{"export", tree, "--server=10.0.0.1", "--port=-5"}, 64, "--port"},
		{"export huge port", []string{"export", tree, "--server=10.0.0.1", "--port=99999"}, 64, "--port"},
		{"export relative path", []string{"export", tree, "--server=10.0.0.1", "--path=srv/node"}, 64, "--path"},
		{"export missing root", []string{"export", filepath.Join(tree, "none"), "--server=10.0.0.1"}, 1, "no such file"},
		{"export not a node", []string{"export", emptyDir, "--server=10.0.0.1"}, 1, "run nroot node"},
		{"node unknown initrd", []string{"node", "--initrd=tiny", emptyDir}, 64, "--initrd"},
		{"node driver name that would escape dracut.conf", []string{"node", "--initrd=small", `--drivers=igb" add_dracutmodules+="x`, emptyDir}, 64, "--drivers"},
		{"node drivers without the small image", []string{"node", "--drivers=igb", emptyDir}, 64, "--initrd=small"},
		{"node check missing root", []string{"node", "check", filepath.Join(tree, "none")}, 1, "FAIL"},
		{"node check not a node", []string{"node", "check", emptyDir}, 1, "not a Debian or Ubuntu root"},
		{"check malformed URL", []string{"check", "server:/path"}, 64, "nfs://"},
		{"check zero timeout", []string{"check", "nfs://127.0.0.1/x", "--timeout=0"}, 64, "--timeout"},
		{"check zero parallel", []string{"check", "nfs://127.0.0.1/x", "--parallel=0"}, 64, "--parallel"},
		{"check missing rootfs", []string{"check", "nfs://127.0.0.1/x", "--rootfs=/nonexistent"}, 64, "--rootfs"},
		{"check bad NFS version", []string{"check", "nfs://127.0.0.1/x", "--nfs-version=5"}, 64, "--nfs-version"},
		{"check v3 with nfs4 URL", []string{"check", "nfs4://127.0.0.1/x", "--nfs-version=3"}, 64, "--nfs-version"},
		{"check v4 with mount port", []string{"check", "nfs4://127.0.0.1/x", "--mount-port=20048"}, 64, "--mount-port"},
		{"check v4 no server", []string{"check", "--timeout=5s", "--nfs-port=1", "nfs4://127.0.0.1/x"}, 2, "nfs:"},
		{"fsimage unknown suffix", []string{"fsimage", emptyDir, filepath.Join(emptyDir, "root.img")}, 64, ".squashfs"},
		{"fsimage format clash", []string{"fsimage", "--format=erofs", emptyDir, filepath.Join(emptyDir, "root.squashfs")}, 64, "--format"},
		{"fsimage root is no directory", []string{"fsimage", filepath.Join(tree, "none"), filepath.Join(emptyDir, "x.squashfs")}, 1, "not a directory"},
		{"initrd verify unknown mode", []string{"initrd", "verify", "--mode=nbd", "/nonexistent"}, 64, "--mode"},
		{"export http without image", []string{"export", emptyDir, "--server=10.0.0.1", "--http=http://10.0.0.1/root.squashfs"}, 64, "--image"},
		{"resolve empty architectures", []string{"resolve", "--architectures=,", "trixie"}, 64, "--architectures"},
		{"resolve unknown variant", []string{"resolve", "--variant=tiny", "trixie"}, 64, "--variant"},
		{"resolve lock in a missing directory", []string{"resolve", "--lock=/nonexistent/x.lock", "trixie"}, 64, "--lock"},
		{"bootstrap squashfs named tar.zst", []string{"bootstrap", "--format=squashfs", "trixie", filepath.Join(t.TempDir(), "x.tar.zst")}, 64, "--format"},
		{"bootstrap from a file that is no lock", []string{"bootstrap", "--from-lock", file, filepath.Join(t.TempDir(), "x")}, 64, "not an nroot lockfile"},
		{"quiet and verbose", []string{"-q", "-v", "mirror"}, 64, "-q and -v"},
		{"unknown flag", []string{"resolve", "--bogus", "trixie"}, 64, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := nroot(t, []string{"NROOT_MIRROR=http://127.0.0.1:1/debian"}, tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.says) {
				t.Fatalf("exit %d, want %d, saying %q:\n%s%s", code, tt.code, tt.says, out, errs)
			}
			if code != 0 && strings.Count(strings.TrimSpace(errs), "\n") > 0 && tt.code == 64 {
				t.Errorf("a usage error takes one line:\n%s", errs)
			}
		})
	}
}

// TestCheckJSONWhenUnreachable: a JSON consumer gets a document naming
// the step that failed.
func TestCheckJSONWhenUnreachable(t *testing.T) {
	out, _, code := nroot(t, nil, "check", "--json", "--timeout=5s", "--mount-port=1", "--nfs-port=1", "nfs://127.0.0.1/x")
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 2 {
		t.Fatalf("exit %d, output %q: %v", code, out, err)
	}
	if doc["step"] != "mount" || doc["pass"] != false || doc["error"] == "" {
		t.Errorf("document %v", doc)
	}
}

// TestVersion: --version and version print the build's version.
func TestVersion(t *testing.T) {
	a, _, c1 := nroot(t, nil, "--version")
	b, _, c2 := nroot(t, nil, "version")
	if c1 != 0 || c2 != 0 || !strings.HasPrefix(a, "nroot ") || !strings.HasPrefix(b, strings.TrimSpace(a)) {
		t.Errorf("--version %q, version %q", a, b)
	}
}

// TestManAndCompletion: make man writes a page per command from the
// help text, and flags with fixed values complete them.
func TestManAndCompletion(t *testing.T) {
	dir := t.TempDir()
	if _, errs, code := nroot(t, nil, "man", dir); code != 0 {
		t.Fatalf("man: %s", errs)
	}
	for _, page := range []string{"nroot.1", "nroot-bootstrap.1", "nroot-initrd-ls.1", "nroot-check.1", "nroot-export.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(b), ".SH NAME") {
			t.Errorf("%s: %v", page, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "nroot-bootstrap.1")); !strings.Contains(string(b), "variant") {
		t.Error("the bootstrap page lacks its flags")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "bootstrap", "--variant", ""}, "minbase"},
		{[]string{"__complete", "bootstrap", "--format", ""}, "tar.zst"},
		{[]string{"__complete", "initrd", "pack", "--compress", ""}, "zstd"},
	} {
		out, _, _ := nroot(t, nil, tt.args...)
		if !strings.Contains(out, tt.want) {
			t.Errorf("%v: %q", tt.args, out)
		}
	}
}

// TestKeyringExport: the bundled Ubuntu keyring, written for mmdebstrap
// and apt, reads back with its keys.
func TestKeyringExport(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ubuntu.gpg")
	if _, errs, code := nroot(t, nil, "keyring", "export", "ubuntu", "-o", file); code != 0 {
		t.Fatalf("export: %s", errs)
	}
	out, errs, code := nroot(t, nil, "keyring", "list", "--keyring", file)
	if code != 0 || !strings.Contains(out, "871920D1991BC93C") {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	if _, _, code := nroot(t, nil, "keyring", "export", "nonesuch"); code != 64 {
		t.Errorf("unknown keyring: exit %d", code)
	}
}
