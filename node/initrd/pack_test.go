package initrd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPackRoundTrip(t *testing.T) {
	dir := tree(t, "")
	early := t.TempDir()
	os.MkdirAll(filepath.Join(early, "kernel/x86/microcode"), 0o755)
	os.WriteFile(filepath.Join(early, "kernel/x86/microcode/GenuineIntel.bin"), []byte("ucode"), 0o644)
	for _, c := range []Compression{None, Gzip, XZ, Zstd, LZ4Legacy} {
		t.Run(string(c), func(t *testing.T) {
			o := PackOptions{Compression: c, Early: early, Clamp: time.Unix(1700000000, 0)}
			var a, b bytes.Buffer
			if err := Pack(&a, dir, o); err != nil {
				t.Fatal(err)
			}
			if err := Pack(&b, dir, o); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two packs of one tree differ")
			}
			info, err := Inspect(bytes.NewReader(a.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !info.EarlyCPIO || len(info.Microcode) != 1 || len(info.Segments) != 2 || info.Segments[1].Compression != c {
				t.Fatalf("info %+v", info)
			}
			if info.Segments[1].Offset%4 != 0 {
				t.Fatalf("main archive at offset %d, not 4-aligned", info.Segments[1].Offset)
			}
			if c == None {
				// GNU cpio reads what we write, segment by segment.
				main := a.Bytes()[info.Segments[1].Offset:]
				got := gnuList(t, main)
				want := []string{"bin", "etc", "etc/cmdline.d", "etc/cmdline.d/nfs.conf", "odd", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool2"}
				if !slices.Equal(got, want) {
					t.Fatalf("cpio -t: %v", got)
				}
			}
			entries := map[string]*Header{}
			var toolData []byte
			Scan(bytes.NewReader(a.Bytes()), func(h *Header, r io.Reader) error {
				entries[h.Name] = h
				if h.Name == "usr/bin/tool" {
					toolData, _ = io.ReadAll(r)
				}
				return nil
			})
			tool, tool2 := entries["usr/bin/tool"], entries["usr/bin/tool2"]
			if tool.Ino != tool2.Ino || tool.NLink != 2 || tool2.Size != 0 || len(toolData) != 35000 {
				t.Errorf("hard link not deduplicated: %+v %+v (%d bytes)", tool, tool2, len(toolData))
			}
			if entries["bin"].Linkname != "usr/bin" || entries["odd"].Mode&0o7777 != 0o4711 || entries["odd"].UID != 0 {
				t.Errorf("entries %+v %+v", entries["bin"], entries["odd"])
			}
			if !entries["odd"].ModTime.Equal(time.Unix(1700000000, 0)) {
				t.Errorf("mtime not clamped: %v", entries["odd"].ModTime)
			}
		})
	}
}

func TestWriterKeepsDevices(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteArchive(&buf, []Record{Directory("dev", 0o755), CharDev("dev/console", 0o600, 5, 1), Symlink("dev/fd", "/proc/self/fd")}); err != nil {
		t.Fatal(err)
	}
	got := map[string]*Header{}
	Scan(bytes.NewReader(buf.Bytes()), func(h *Header, _ io.Reader) error { got[h.Name] = h; return nil })
	if c := got["dev/console"]; c == nil || c.RDevMajor != 5 || c.RDevMinor != 1 || c.Mode != TypeChr|0o600 {
		t.Fatalf("console %+v", c)
	}
	if got["dev/fd"].Linkname != "/proc/self/fd" {
		t.Fatalf("symlink %+v", got["dev/fd"])
	}
}

func TestAppend(t *testing.T) {
	var img bytes.Buffer
	if err := Pack(&img, tree(t, ""), PackOptions{Compression: Zstd}); err != nil {
		t.Fatal(err)
	}
	add := filepath.Join(t.TempDir(), "new-init")
	os.WriteFile(add, []byte("#!/bin/sh\necho new\n"), 0o755)
	var out bytes.Buffer
	if err := Append(&out, bytes.NewReader(img.Bytes()), []AddSpec{ParseAdd(add + ":/usr/lib/new/init")}, PackOptions{Compression: Gzip}); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out.Bytes(), img.Bytes()) {
		t.Fatal("append changed the original image")
	}
	info, err := Inspect(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	Scan(bytes.NewReader(out.Bytes()[info.Segments[1].Offset:]), func(h *Header, _ io.Reader) error {
		names = append(names, h.Name)
		return nil
	})
	if len(info.Segments) != 2 || info.Segments[1].Compression != Gzip || !slices.Equal(names, []string{"usr/lib", "usr/lib/new", "usr/lib/new/init"}) {
		// usr is the image's already: not written again.
		t.Fatalf("segments %+v, names %v", info.Segments, names)
	}
	if err := Append(io.Discard, bytes.NewReader(img.Bytes()), []AddSpec{{Src: add, Dest: "../escape"}}, PackOptions{}); err == nil {
		t.Fatal("escaping destination accepted")
	}
}

// TestExtractIsSafe extracts hostile archives: names with "..", absolute
// names, a symlink to the outside followed by a write through it, and a
// huge declared size. Nothing may appear outside the directory.
func TestExtractIsSafe(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		recs    []Record
		wantErr string
	}{
		{"dot-dot", []Record{StaticFile("../escape", []byte("x"), 0o644)}, `contains ".."`},
		{"deep dot-dot", []Record{StaticFile("a/../../escape", []byte("x"), 0o644)}, `contains ".."`},
		{"absolute symlink then write", []Record{Symlink("link", outside), StaticFile("link/escape", []byte("x"), 0o644)}, ""},
		{"relative symlink climbing out", []Record{Directory("a", 0o755), Symlink("a/up", "../../../../.."+outside), StaticFile("a/up/escape", []byte("x"), 0o644)}, ""},
		{"symlink replaced by file", []Record{Symlink("f", outside+"/escape"), StaticFile("f", []byte("x"), 0o644)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var img bytes.Buffer
			if err := WriteArchive(&img, tt.recs); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "x")
			_, err := Extract(bytes.NewReader(img.Bytes()), dir, ExtractOptions{})
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if names, _ := os.ReadDir(outside); len(names) != 0 {
				t.Fatalf("written outside: %v", names)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
				t.Fatal("written beside the directory")
			}
		})
	}
	// A header that declares far more data than the image holds.
	huge := []byte("070701" + strings.Repeat("0", 8) + "000081A4" + strings.Repeat("0", 32) + "7FFFFFFF" + strings.Repeat("0", 32) + "00000002" + "00000000" + "a\x00")
	if _, err := Extract(bytes.NewReader(huge), filepath.Join(t.TempDir(), "h"), ExtractOptions{}); err == nil {
		t.Fatal("truncated huge entry accepted")
	}
}

// TestDiffKernelModules checks the module summary: by module name, so a
// kernel update or recompressed modules are not every module twice, and
// contents compared only within the same kernel.
func TestDiffKernelModules(t *testing.T) {
	type files map[string]string
	image := func(fs files) []byte {
		dir := t.TempDir()
		for name, data := range fs {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
			os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
		}
		var b bytes.Buffer
		if err := Pack(&b, dir, PackOptions{Compression: Zstd}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	const k1, k2 = "usr/lib/modules/6.1.0-1-amd64/kernel/", "usr/lib/modules/6.1.0-2-amd64/kernel/"
	tests := []struct {
		name                                  string
		a, b                                  files
		added, removed, changed, kernelsAdded string
	}{
		{"same kernel", files{k1 + "fs/nfs/nfs.ko": "a", k1 + "fs/overlayfs/overlay.ko": "o", k1 + "net/sunrpc/sunrpc.ko": "s"},
			files{k1 + "fs/nfs/nfs.ko": "b", k1 + "fs/overlayfs/overlay.ko": "o", k1 + "fs/nfs/nfsv4.ko": "4"}, "nfsv4", "sunrpc", "nfs", ""},
		{"recompressed", files{k1 + "fs/nfs/nfs.ko": "a", k1 + "drivers/md/dm-mod.ko": "d"},
			files{k1 + "fs/nfs/nfs.ko.xz": "xa", k1 + "drivers/md/dm-mod.ko.xz": "xd"}, "", "", "dm_mod nfs", ""},
		{"kernel update", files{k1 + "fs/nfs/nfs.ko": "a", k1 + "fs/overlayfs/overlay.ko": "o"},
			files{k2 + "fs/nfs/nfs.ko.zst": "b", k2 + "fs/nfs/nfsv4.ko.zst": "4"}, "nfsv4", "overlay", "", "6.1.0-2-amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Diff(bytes.NewReader(image(tt.a)), bytes.NewReader(image(tt.b)))
			if err != nil {
				t.Fatal(err)
			}
			got := []string{strings.Join(res.KernelModulesAdded, " "), strings.Join(res.KernelModulesRemoved, " "), strings.Join(res.KernelModulesChanged, " "), strings.Join(res.KernelsAdded, " ")}
			want := []string{tt.added, tt.removed, tt.changed, tt.kernelsAdded}
			if !slices.Equal(got, want) {
				t.Errorf("added, removed, changed, kernels added = %q, want %q", got, want)
			}
		})
	}
}

func TestDiffNamesWhatChanged(t *testing.T) {
	dir := tree(t, "")
	var a, b bytes.Buffer
	Pack(&a, dir, PackOptions{Compression: Gzip})
	os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("changed"), 0o755)
	os.MkdirAll(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/kernel/fs/overlay.ko"), []byte("ko"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib/modules/6.1.0-9-amd64/modules.dep"), []byte("kernel/fs/overlay.ko:\n"), 0o644)
	Pack(&b, dir, PackOptions{Compression: Zstd})
	res, err := Diff(bytes.NewReader(a.Bytes()), bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed == 0 || res.Added == 0 || len(res.KernelModulesAdded) != 1 || res.KernelModulesAdded[0] != "overlay" || len(res.KernelsAdded) != 1 {
		t.Fatalf("diff %+v", res)
	}
}

// TestExtractKeepsOrder checks what the write pool must not change: a
// later entry of a name wins, and a write through a symlink goes where the
// symlink points when that entry comes, also after the symlink is
// replaced, as the kernel unpacks.
func TestExtractKeepsOrder(t *testing.T) {
	var recs []Record
	recs = append(recs, Directory("one", 0o755), Directory("two", 0o755), Symlink("l", "one"))
	for i := range 200 {
		recs = append(recs, StaticFile(fmt.Sprintf("l/d/f%d", i), []byte("first"), 0o644))
	}
	recs = append(recs, Symlink("l", "two"), StaticFile("l/d/g", []byte("second"), 0o644))
	for i := range 200 {
		recs = append(recs, StaticFile(fmt.Sprintf("same%d", i%3), []byte(fmt.Sprint(i)), 0o644))
	}
	var img bytes.Buffer
	if err := WriteArchive(&img, recs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Extract(bytes.NewReader(img.Bytes()), dir, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"one/d/f0": "first", "one/d/f199": "first", "two/d/g": "second", "same0": "198", "same1": "199", "same2": "197"}
	for name, content := range want {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			t.Errorf("%s: %q, %v; want %q", name, b, err, content)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "two/d/f0")); err == nil {
		t.Error("two/d/f0 exists: a write went through the later symlink")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "l")); l != "two" {
		t.Errorf("l -> %q, want two", l)
	}
}
