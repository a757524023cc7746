package export

import (
	"encoding/binary"
	"errors"
	"nroot/e2e/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nroot/internal/usage"
)

func fixture(t *testing.T, files map[string]string) string { return testenv.Tree(t, files) }

func TestRender(t *testing.T) {
	root := fixture(t, map[string]string{
		"boot/nroot-cmdline":         "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1 rootovl\n",
		"boot/vmlinuz-6.1.0-9-amd64": "k",
		"lib/modules/6.1.0-9-amd64/": "",
	})
	c, err := Render(root, Options{Server: "10.0.0.1", Path: "/node"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cmdline != "root=nfs4:10.0.0.1:/node ro ip=dhcp rd.neednet=1 rootovl" {
		t.Errorf("cmdline %q", c.Cmdline)
	}
	for _, want := range []string{"ro,", "no_root_squash", "no_subtree_check"} {
		if !strings.Contains(c.Exports, want) {
			t.Errorf("exports line %q lacks %s", c.Exports, want)
		}
	}
	for _, s := range []string{c.IPXE, c.GRUB, c.PXELinux} {
		if !strings.Contains(s, "vmlinuz-6.1.0-9-amd64") || !strings.Contains(s, "initrd.img-6.1.0-9-amd64") || !strings.Contains(s, c.Cmdline) {
			t.Errorf("boot entry %q", s)
		}
	}
	if !strings.Contains(c.Ganesha, "Pseudo = /node;") || !strings.Contains(c.Ganesha, "Squash = No_Root_Squash;") {
		t.Errorf("ganesha block %q", c.Ganesha)
	}
	if _, err := Render(t.TempDir(), Options{Server: "10.0.0.1"}); err == nil || !strings.Contains(err.Error(), "run nroot node") {
		t.Errorf("export of an image without a command line: %v", err)
	}
	if _, err := Render(filepath.Join(t.TempDir(), "none"), Options{Server: "10.0.0.1"}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("export of a directory that does not exist: %v", err)
	}
	// IPv6 goes in brackets, as dracut's nfs4 syntax wants it.
	c, err = Render(root, Options{Server: "fd00::1", Path: "/node", Port: 20049})
	if err != nil || c.Cmdline != "root=nfs4:[fd00::1]:/node:port=20049 ro ip=dhcp rd.neednet=1 rootovl" {
		t.Errorf("IPv6: %q %v", c.Cmdline, err)
	}
}

// TestExportImageModes: with an image file, export gives the boot lines
// that loop-mount it over NFS (dracut's nfs4:SERVER:/PATH syntax) and
// fetch it over HTTP, and refuses a file that is no image.
func TestExportImageModes(t *testing.T) {
	root := fixture(t, map[string]string{
		"boot/nroot-cmdline":         "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1 rootovl\n",
		"boot/nroot-cmdline-image":   "root=live:IMAGEURL ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1\n",
		"boot/vmlinuz-6.1.0-9-amd64": "k",
		"lib/modules/6.1.0-9-amd64/": "",
	})
	dir := t.TempDir()
	sb := make([]byte, 4096)
	copy(sb, "hsqs")
	binary.LittleEndian.PutUint32(sb[12:], 1<<17)
	binary.LittleEndian.PutUint16(sb[20:], 6)
	binary.LittleEndian.PutUint16(sb[22:], 17)
	binary.LittleEndian.PutUint16(sb[28:], 4)
	binary.LittleEndian.PutUint64(sb[40:], 4096)
	img := filepath.Join(dir, "root.squashfs")
	os.WriteFile(img, sb, 0o644)
	os.WriteFile(filepath.Join(dir, "text.squashfs"), []byte("not an image"), 0o644)
	c, err := Render(root, Options{Server: "10.0.0.1", Path: "/node", Image: img, ImagePath: "/img", HTTP: "http://10.0.0.1:8080/root.squashfs"})
	if err != nil {
		t.Fatal(err)
	}
	// An old dracut is refused: jammy's 051 fails at switch-root.
	old := fixture(t, map[string]string{
		"boot/nroot-cmdline":            "root=nfs4:SERVER:/PATH ro ip=dhcp rd.neednet=1\n",
		"boot/nroot-cmdline-image":      "root=live:IMAGEURL ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1\n",
		"boot/vmlinuz-5.15.0-9-generic": "k",
		"lib/modules/5.15.0-9-generic/": "",
		"var/lib/dpkg/status":           "Package: dracut-core\nStatus: install ok installed\nVersion: 051-1\n",
	})
	var oe *usage.Error
	if _, err := Render(old, Options{Server: "10.0.0.1", Image: img}); !errors.As(err, &oe) || !strings.Contains(err.Error(), "051") {
		t.Errorf("dracut 051: %v, want a refusal naming it", err)
	}
	if want := "root=live:nfs4:10.0.0.1:/img/root.squashfs ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1"; c.CmdlineNFSImg != want {
		t.Errorf("NFS image line %q, want %q", c.CmdlineNFSImg, want)
	}
	if want := "root=live:http://10.0.0.1:8080/root.squashfs ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1"; c.CmdlineHTTP != want {
		t.Errorf("HTTP image line %q, want %q", c.CmdlineHTTP, want)
	}
	if c.Image == nil || c.Image.Format != "squashfs" || !strings.Contains(c.ImageGanesha, "Path = "+dir+";") || !strings.Contains(c.ImageGanesha, "Pseudo = /img;") {
		t.Errorf("image %+v, ganesha block %q", c.Image, c.ImageGanesha)
	}
	c, err = Render(root, Options{Server: "fd00::1", Image: img, Port: 20049})
	if want := "root=live:nfs4:[fd00::1]:" + img + ":port=20049 "; err != nil || !strings.HasPrefix(c.CmdlineNFSImg, want) {
		t.Errorf("IPv6 and a port: %q %v, want %q...", c.CmdlineNFSImg, err, want)
	}
	for _, tt := range []struct {
		o      Options
		option string
	}{
		{Options{Server: "10.0.0.1", Image: filepath.Join(dir, "none.squashfs")}, "--image"},
		{Options{Server: "10.0.0.1", Image: filepath.Join(dir, "text.squashfs")}, "--image"},
		{Options{Server: "10.0.0.1", Image: dir}, "--image"},
		{Options{Server: "10.0.0.1", Image: img, HTTP: "ftp://x/root.squashfs"}, "--http"},
		{Options{Server: "10.0.0.1", HTTP: "http://x/root.squashfs"}, "--image"},
		{Options{Server: "10.0.0.1", Image: img, ImagePath: "img"}, "--image-path"},
	} {
		_, err := Render(root, tt.o)
		var oe *usage.Error
		if !errors.As(err, &oe) || oe.Option != tt.option {
			t.Errorf("%+v: %v, want an error naming %s", tt.o, err, tt.option)
		}
	}
}

// TestExportOptions: every malformed option is refused naming the flag,
// before the image is read.
func TestExportOptions(t *testing.T) {
	tests := []struct {
		o      Options
		option string
	}{
		{Options{}, "--server"},
		{Options{Server: "bad host!"}, "--server"},
		{Options{Server: "10.0.0.1:2049"}, "--server"},
		{Options{Server: "ganesha"}, "--server"},
		{Options{Server: "fe80::1%eth0"}, "--server"},
		{Options{Server: "10.0.0.1", Port: -5}, "--port"},
		{Options{Server: "10.0.0.1", Port: 99999}, "--port"},
		{Options{Server: "10.0.0.1", Path: "srv/node"}, "--path"},
		{Options{Server: "10.0.0.1", Path: "/srv/a:b"}, "--path"},
		{Options{Server: "10.0.0.1", Path: "/srv/my node"}, "--path"},
		{Options{Server: "10.0.0.1", Path: `/srv/"node"`}, "--path"},
		{Options{Server: "10.0.0.1", Path: "/srv/a,b"}, "--path"},
		{Options{Server: "10.0.0.1", Path: "/srv/a;}"}, "--path"},
		{Options{Server: "10.0.0.1", ImagePath: "/srv/a#b"}, "--image-path"},
		{Options{Server: "nfs.example.org", Path: "/srv/node", Port: 2049}, ""},
		{Options{Server: "[fd00::1]"}, ""},
	}
	for _, tt := range tests {
		err := tt.o.Validate()
		var oe *usage.Error
		if tt.option == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.o, err)
			}
			continue
		}
		if !errors.As(err, &oe) || oe.Option != tt.option {
			t.Errorf("%+v: err = %v, want one naming %s", tt.o, err, tt.option)
		}
	}
}

// TestExportRefusesUnservableRoot: a ROOT whose path the exports line, the
// ganesha block or the command line cannot carry is refused, naming it,
// rather than printed broken.
func TestExportRefusesUnservableRoot(t *testing.T) {
	for _, name := range []string{"my node", `node"1`, "node's", "a#b", "a,b", "x;y", "a$b", "tab\there"} {
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), name)
			if err := os.CopyFS(root, os.DirFS(fixture(t, map[string]string{
				"boot/nroot-cmdline":         "root=nfs4:SERVER:/PATH ro ip=dhcp\n",
				"boot/vmlinuz-6.1.0-9-amd64": "k",
				"lib/modules/6.1.0-9-amd64/": "",
			}))); err != nil {
				t.Fatal(err)
			}
			_, err := Render(root, Options{Server: "10.0.0.1"})
			var oe *usage.Error
			if !errors.As(err, &oe) || oe.Option != "ROOT" || oe.Value != root {
				t.Fatalf("Render(%q) = %v, want an option error naming ROOT", root, err)
			}
		})
	}
}

// TestExportImageDirectory: given an nroot image directory, export
// exports its generations only, never the directory whose nodes/ holds
// the identity segments.
func TestExportImageDirectory(t *testing.T) {
	dir := fixture(t, map[string]string{"generations/1/root/etc/": "", "nodes/n.img": "private keys"})
	c, err := Render(dir, Options{Server: "10.0.0.1", Path: "/nroot"})
	if err != nil {
		t.Fatal(err)
	}
	gens := filepath.Join(dir, "generations")
	if !c.ImageDir || !strings.HasPrefix(c.Exports, gens+" *(ro,") || !strings.Contains(c.Ganesha, "Path = "+gens+";") || !strings.Contains(c.Ganesha, "Pseudo = /nroot/generations;") {
		t.Errorf("exports %q, ganesha %q: want %s alone, at /nroot/generations", c.Exports, c.Ganesha, gens)
	}
	if strings.Contains(c.Exports+c.Ganesha, "Path = "+dir+";") || strings.HasPrefix(c.Exports, dir+" ") {
		t.Errorf("the image directory itself is exported: %q %q", c.Exports, c.Ganesha)
	}
}
