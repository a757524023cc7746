package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nroot/format/keyring"
	"nroot/internal/fsroot"
)

// entry is one member of a test data archive.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarGz(t testing.TB, entries []entry) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func arMember(name string, body []byte) []byte {
	h := fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(body))
	out := append([]byte(h), body...)
	if len(body)%2 == 1 {
		out = append(out, '\n')
	}
	return out
}

// buildDeb makes a .deb with the given data entries.
func buildDeb(t testing.TB, entries []entry) []byte {
	ctl := tarGz(t, []entry{
		{name: "./control", body: "Package: evil\nVersion: 1\nArchitecture: all\nMaintainer: test\nDescription: test\n"},
		{name: "./postinst", body: "#!/bin/sh\nexit 0\n", mode: 0o755},
	})
	out := []byte("!<arch>\n")
	out = append(out, arMember("debian-binary", []byte("2.0\n"))...)
	out = append(out, arMember("control.tar.gz", ctl)...)
	out = append(out, arMember("data.tar.gz", tarGz(t, entries))...)
	return out
}

func unpackBytes(t testing.TB, deb []byte, dir string) (*Manifest, error) {
	return unpackWith(t, deb, dir, nil)
}

func unpackWith(t testing.TB, deb []byte, dir string, pool *fsroot.WritePool) (*Manifest, error) {
	r, err := NewReader(bytes.NewReader(deb))
	if err != nil {
		return nil, err
	}
	tr, closer, err := r.Data()
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	root, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	return Unpack(tr, root, UnpackOptions{ClampMtime: time.Unix(1800000000, 0), Pool: pool})
}

func TestUnpackRealKeyringPackages(t *testing.T) {
	tests := []struct {
		deb, name, file string
		bundled         string
	}{
		{"debian-archive-keyring_2025.1_all.deb", "debian-archive-keyring", "usr/share/keyrings/debian-archive-keyring.pgp", keyring.Debian},
		{"ubuntu-keyring_2023.11.28.1-0.2_all.deb", "ubuntu-keyring", "usr/share/keyrings/ubuntu-archive-keyring.gpg", keyring.Ubuntu},
	}
	for _, tt := range tests {
		t.Run(tt.deb, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "testdata", tt.deb))
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if r.Control().Name() != tt.name {
				t.Fatalf("package %q", r.Control().Name())
			}
			if _, ok := r.Control().Files["md5sums"]; !ok {
				t.Error("no md5sums control member")
			}
			dir := t.TempDir()
			tr, c, err := r.Data()
			if err != nil {
				t.Fatal(err)
			}
			root, _ := fsroot.Open(dir)
			defer root.Close()
			m, err := Unpack(tr, root, UnpackOptions{})
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if m.Paths[0] != "/." || !contains(m.Paths, "/"+tt.file) {
				t.Errorf("manifest %v lacks /%s", m.Paths, tt.file)
			}
			got, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			// The keyring nroot embeds is byte for byte the package's.
			k, _ := keyring.Named(tt.bundled)
			embedded, _ := keyring.Read(bytes.NewReader(got), tt.file)
			if strings.Join(embedded.Fingerprints(), ",") != strings.Join(k.Fingerprints(), ",") {
				t.Errorf("bundled keyring differs from the package's %s", tt.file)
			}
		})
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestUnpackHostile(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		wantErr string
	}{
		{"dot-dot", []entry{{name: "./../escape", body: "x"}}, `contains ".."`},
		{"deep dot-dot", []entry{{name: "./usr/../../escape", body: "x"}}, `contains ".."`},
		{"absolute", []entry{{name: "/escape", body: "x"}}, "absolute path"},
		{"absolute symlink then write through it", []entry{
			{name: "./link", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "./link/escape", body: "x"},
		}, ""},
		{"relative symlink climbing out then write", []entry{
			{name: "./a/", typ: tar.TypeDir, mode: 0o755},
			{name: "./a/up", typ: tar.TypeSymlink, link: "../../../../../../OUTSIDE"},
			{name: "./a/up/escape", body: "x"},
		}, ""},
		{"symlink at the file's own path", []entry{
			{name: "./file", typ: tar.TypeSymlink, link: "OUTSIDE/escape"},
			{name: "./file", body: "replaced"},
		}, ""},
		{"hard link to outside", []entry{{name: "./hl", typ: tar.TypeLink, link: "../OUTSIDE/victim"}}, `contains ".."`},
		{"hard link through symlink", []entry{
			{name: "./link", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "./hl", typ: tar.TypeLink, link: "./link/victim"},
		}, "no such file"},
	}
	pool := fsroot.NewWritePool(4, 1<<20)
	defer pool.Close()
	for _, tc := range []struct {
		name string
		pool *fsroot.WritePool
	}{{"serial", nil}, {"pool", pool}} {
		for _, tt := range tests {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				base := t.TempDir()
				outside := filepath.Join(base, "outside")
				os.Mkdir(outside, 0o755)
				os.WriteFile(filepath.Join(outside, "victim"), []byte("safe"), 0o644)
				root := filepath.Join(base, "root")
				os.Mkdir(root, 0o755)
				for i := range tt.entries {
					tt.entries[i].link = strings.ReplaceAll(tt.entries[i].link, "OUTSIDE", outside)
				}
				_, err := unpackWith(t, buildDeb(t, tt.entries), root, tc.pool)
				if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				// Nothing may appear beside root or change outside it.
				names, _ := os.ReadDir(base)
				if len(names) != 2 {
					t.Errorf("entries beside root: %v", names)
				}
				got, _ := os.ReadDir(outside)
				if len(got) != 1 {
					t.Errorf("outside now holds %v", got)
				}
				if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "safe" {
					t.Errorf("victim changed to %q", b)
				}
				if _, err := os.Stat(filepath.Join(base, "escape")); err == nil {
					t.Error("escape written beside root")
				}
			})
		}
	}
}

func TestUnpackSemantics(t *testing.T) {
	dir := t.TempDir()
	// merged-/usr as bookworm's bootstrap prepares it.
	os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755)
	os.Symlink("usr/bin", filepath.Join(dir, "bin"))
	_, err := unpackBytes(t, buildDeb(t, []entry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/sh", body: "#!", mode: 0o4755},
		{name: "./bin/rsh", typ: tar.TypeLink, link: "./bin/sh"},
		{name: "./usr/bin/ln", typ: tar.TypeSymlink, link: "sh"},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o700},
		{name: "./etc/fifo", typ: tar.TypeFifo, mode: 0o600},
	}), dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "bin")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("bin symlink replaced: %v %v", fi.Mode(), err)
	}
	fi, err := os.Stat(filepath.Join(dir, "usr/bin/sh"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("sh: %v %v", fi, err)
	}
	if fi.ModTime().Unix() != 1700000000 {
		t.Errorf("mtime %v", fi.ModTime())
	}
	hl, _ := os.Stat(filepath.Join(dir, "usr/bin/rsh"))
	if !os.SameFile(fi, hl) {
		t.Error("hard link not kept")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "usr/bin/ln")); l != "sh" {
		t.Errorf("symlink target %q", l)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc")); fi.Mode().Perm() != 0o700 {
		t.Errorf("etc mode %v", fi.Mode())
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "etc/fifo")); fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo mode %v", fi.Mode())
	}
}

func TestReaderRefuses(t *testing.T) {
	good := buildDeb(t, []entry{{name: "./a", body: "hello"}})
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "not an ar archive"},
		{"not ar", []byte("PK\x03\x04 zip file"), "bad magic"},
		{"truncated in control", good[:100], "truncated"},
		{"truncated in data", good[:len(good)-20], "unexpected EOF"},
		{"wrong first member", append([]byte("!<arch>\n"), arMember("control.tar.gz", nil)...), "want debian-binary"},
		{"format 3", append([]byte("!<arch>\n"), arMember("debian-binary", []byte("3.0\n"))...), "unsupported format version"},
		{"lzma data", bytes.Replace(good, []byte("data.tar.gz  "), []byte("data.tar.lzma"), 1), "unsupported compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unpackBytes(t, tt.data, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzUnpack(f *testing.F) {
	pool := fsroot.NewWritePool(4, 1<<20)
	f.Add(buildDeb(f, []entry{{name: "./a", body: "hello"}, {name: "./l", typ: tar.TypeSymlink, link: "/etc"}}))
	f.Add(buildDeb(f, []entry{{name: "./../x", body: "x"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		root := filepath.Join(base, "root")
		os.Mkdir(root, 0o755)
		unpackWith(t, data, root, pool)
		if names, _ := os.ReadDir(base); len(names) != 1 {
			t.Fatalf("wrote beside the root: %v", names)
		}
	})
}
