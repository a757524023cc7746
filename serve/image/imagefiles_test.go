package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/build/fsimage"
	"nroot/e2e/testenv"
	"nroot/internal/usage"
	"nroot/serve/inventory"
)

const imageLine = "root=live:IMAGEURL ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1"

// TestBootScriptModes runs each generation's script as iPXE would for
// every root= a node can be given: a mode the generation has boots its
// line with the identity segment; one it lacks says so and fails.
func TestBootScriptModes(t *testing.T) {
	vars := map[string]string{"nroot-base": "http://10.0.0.1", "nroot-server": "10.0.0.1", "nroot-export": "/nroot", "nroot-node": "n1", "nroot-args": "quiet"}
	tree := "root=nfs4:10.0.0.1:/nroot/generations/7/root ro ip=dhcp quiet"
	nfsSq := "root=live:nfs4:10.0.0.1:/nroot/generations/7/root.squashfs ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1 quiet"
	httpSq := "root=live:http://10.0.0.1/generations/7/root.squashfs ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1 quiet"
	httpEro := "root=live:http://10.0.0.1/generations/7/root.erofs ip=dhcp rd.neednet=1 rd.live.overlay.overlayfs=1 quiet"
	tests := []struct {
		name     string
		images   []string
		cmdline  string // the image line; "" for a generation made without --fsimage
		root     string // nroot-root; "" leaves it unset
		cache    string // nroot-image-base; "" leaves it unset
		nfsOpts  string // nroot-nfs-opts; "" leaves it unset
		want     string // the kernel's root= and what follows; "" when the boot must fail
		wantEcho string
	}{
		{"a tree generation boots the tree when root is unset", nil, "", "", "", "", tree, ""},
		{"and when root=tree", nil, "", "tree", "", "", tree, ""},
		{"a tree generation refuses nfs-squashfs, saying what it has", nil, "", "nfs-squashfs", "", "", "", "generation 7 has no nfs-squashfs image (root=nfs-squashfs); it boots root=tree."},
		{"a squashfs generation boots the tree", []string{"root.squashfs"}, imageLine, "", "", "", tree, ""},
		{"a squashfs generation over NFS", []string{"root.squashfs"}, imageLine, "nfs-squashfs", "", "", nfsSq, ""},
		{"a squashfs generation over HTTP from nroot-base", []string{"root.squashfs"}, imageLine, "http-squashfs", "", "", httpSq, ""},
		{"over HTTP from a caching tier", []string{"root.squashfs"}, imageLine, "http-squashfs", "http://cache:8080", "", strings.Replace(httpSq, "http://10.0.0.1", "http://cache:8080", 1), ""},
		{"a squashfs generation refuses erofs", []string{"root.squashfs"}, imageLine, "http-erofs", "", "", "", "it boots root=tree,nfs-squashfs,http-squashfs. Make the image with nroot image create or update --fsimage squashfs,erofs"},
		{"a tree on another NFS port", nil, "", "", "", ":port=20490", strings.Replace(tree, "/root ", "/root:port=20490 ", 1), ""},
		{"an image over NFS on another port", []string{"root.squashfs"}, imageLine, "nfs-squashfs", "", ":port=20490", strings.Replace(nfsSq, "root.squashfs ", "root.squashfs:port=20490 ", 1), ""},
		{"both formats", []string{"root.squashfs", "root.erofs"}, imageLine, "http-erofs", "", "", httpEro, ""},
		{"a mode nobody knows fails too", []string{"root.squashfs", "root.erofs"}, imageLine, "zip", "", "", "", "generation 7 has no zip image"},
		{"image files without their line boot the tree alone", []string{"root.squashfs"}, "", "nfs-squashfs", "", "", "", "it boots root=tree."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Generation{ID: 7, Kernel: "6.1.0-9-amd64", Cmdline: "root=nfs4:SERVER:/PATH ro ip=dhcp", Images: tt.images, ImageCmdline: tt.cmdline}
			v := map[string]string{}
			for k, x := range vars {
				v[k] = x
			}
			if tt.root != "" {
				v["nroot-root"] = tt.root
			}
			if tt.cache != "" {
				v["nroot-image-base"] = tt.cache
			}
			if tt.nfsOpts != "" {
				v["nroot-nfs-opts"] = tt.nfsOpts
			}
			script := BootScript(g)
			run, err := runIPXE(script, v)
			if err != nil {
				t.Fatalf("%v\n%s", err, script)
			}
			if tt.want == "" {
				if run.End != "exit 1" || run.Kernel != "" || len(run.Echo) != 1 || !strings.Contains(run.Echo[0], tt.wantEcho) {
					t.Errorf("ended %q with kernel %q, echo %q; want exit 1, no kernel, one line saying %q\n%s", run.End, run.Kernel, run.Echo, tt.wantEcho, script)
				}
				return
			}
			wantKernel := "http://10.0.0.1/generations/7/vmlinuz initrd=initrd.img initrd=identity.img " + tt.want
			wantInitrds := []string{"--name initrd.img http://10.0.0.1/generations/7/initrd.img", "--name identity.img http://10.0.0.1/nodes/n1.img"}
			if run.End != "boot" || run.Kernel != wantKernel || !slices.Equal(run.Initrds, wantInitrds) || len(run.Echo) != 0 {
				t.Errorf("ran\n kernel %s\n initrd %q\n echo %q\n end %q\nwant\n kernel %s\n initrd %q\n%s", run.Kernel, run.Initrds, run.Echo, run.End, wantKernel, wantInitrds, script)
			}
		})
	}
}

// TestReplayFormats: update gives the new generation its parent's image
// formats unless --fsimage says otherwise, none included.
func TestReplayFormats(t *testing.T) {
	both := &Generation{Images: []string{"root.squashfs", "root.erofs"}, ImageCmdline: imageLine}
	tests := []struct {
		name   string
		parent *Generation
		asked  []fsimage.Format
		want   []fsimage.Format
	}{
		{"the parent's formats when none are asked for", both, nil, []fsimage.Format{fsimage.Squashfs, fsimage.EROFS}},
		{"a tree parent gives none", &Generation{}, nil, nil},
		{"the flag wins", both, []fsimage.Format{fsimage.EROFS}, []fsimage.Format{fsimage.EROFS}},
		{"--fsimage none makes none", both, []fsimage.Format{}, []fsimage.Format{}},
		{"a tree parent can gain one", &Generation{}, []fsimage.Format{fsimage.Squashfs}, []fsimage.Format{fsimage.Squashfs}},
	}
	for _, tt := range tests {
		got := FSImageOptions{Formats: tt.asked}.replay(tt.parent, nil).Formats
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseFormats(t *testing.T) {
	tests := []struct {
		in   []string
		want []fsimage.Format
		ok   bool
	}{
		{[]string{"squashfs"}, []fsimage.Format{fsimage.Squashfs}, true},
		{[]string{"erofs", "squashfs", "erofs"}, []fsimage.Format{fsimage.Squashfs, fsimage.EROFS}, true},
		{[]string{"none"}, []fsimage.Format{}, true},
		{[]string{"sqfs"}, nil, false},
		{[]string{"squashfs", "tar"}, nil, false},
	}
	for _, tt := range tests {
		got, err := ParseFormats(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("ParseFormats(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && !usage.Is(err) {
			t.Errorf("ParseFormats(%q): %v is not a usage error", tt.in, err)
		}
	}
}

// imageRoot is a node root whose node stage wrote the image line, with a
// dracut of the version given.
func imageRoot(t *testing.T, dracut string) string {
	return fixture(t, []string{"base-files 12", "dracut " + dracut}, map[string]string{"boot/nroot-cmdline-image": imageLine + "\n", "etc/motd": "hello"})
}

// TestImportFSImage: --fsimage writes each file into the generation
// before it is sealed, records it, counts it in the generation's bytes,
// and its script boots it.
func TestImportFSImage(t *testing.T) {
	testenv.Command(t, "mksquashfs")
	testenv.Command(t, "mkfs.erofs")
	ctx := context.Background()
	im := Image{Dir: t.TempDir()}
	tree, err := im.Import(ctx, imageRoot(t, "059-4"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := im.Import(ctx, imageRoot(t, "059-4"), ImportOptions{FSImage: FSImageOptions{Formats: []fsimage.Format{fsimage.Squashfs, fsimage.EROFS}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Images, []string{"root.squashfs", "root.erofs"}) || g.ImageCmdline != imageLine {
		t.Errorf("images %q, line %q", g.Images, g.ImageCmdline)
	}
	if want := inventory.RootModes; !slices.Equal(g.Modes(), want) {
		t.Errorf("modes %q, want %q", g.Modes(), want)
	}
	var files int64
	for _, name := range g.Images {
		f, err := os.Open(filepath.Join(im.Dir, "generations/2", name))
		if err != nil {
			t.Fatal(err)
		}
		format, err := fsimage.Detect(f)
		fi, _ := f.Stat()
		f.Close()
		if err != nil || "root."+string(format) != name || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: format %s (%v), mode %v; want its format, 0600", name, format, err, fi.Mode().Perm())
		}
		files += fi.Size()
	}
	if g.Bytes < tree.Bytes+files {
		t.Errorf("generation bytes %d, want at least the tree's %d and the files' %d", g.Bytes, tree.Bytes, files)
	}
	got, err := im.Get(2)
	if err != nil || got.Problem != "" || !slices.Equal(got.Images, g.Images) || got.ImageCmdline != imageLine {
		t.Fatalf("Get: %+v %v", got, err)
	}
	script, _ := os.ReadFile(filepath.Join(im.Dir, "generations/2/boot.ipxe"))
	if string(script) != BootScript(g) || !strings.Contains(string(script), ":nroot-root-nfs-erofs\n") {
		t.Errorf("boot.ipxe:\n%s", script)
	}
	ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations/2"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"boot.ipxe", "generation.json", "initrd.img", "root", "root.erofs", "root.squashfs", "vmlinuz"}; !slices.Equal(names, want) {
		t.Errorf("generation 2 holds %q, want %q (no temporary files)", names, want)
	}

	// A recorded file that is gone breaks the generation.
	os.Remove(filepath.Join(im.Dir, "generations/2/root.erofs"))
	if got, err := im.Get(2); err != nil || !strings.Contains(got.Problem, "root.erofs is missing") {
		t.Errorf("Get after root.erofs went: %+v %v", got, err)
	}
	if err := im.Publish(2); !errors.Is(err, ErrBroken) {
		t.Errorf("publishing it: %v, want ErrBroken", err)
	}
}

// TestImportFSImageFails: a root that cannot boot image files is refused
// before the copy, and a writer that fails leaves no generation and no
// temporary directory.
func TestImportFSImageFails(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "mksquashfs"), []byte("#!/bin/sh\necho 'FATAL ERROR: no space left' >&2\nexit 1\n"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	squashfs := FSImageOptions{Formats: []fsimage.Format{fsimage.Squashfs}}
	tests := []struct {
		name  string
		root  func(t *testing.T) string
		usage bool
		says  string
	}{
		{"jammy's dracut cannot boot image files", func(t *testing.T) string { return imageRoot(t, "051-1ubuntu1") }, true, "dracut 051-1ubuntu1 cannot boot from an image file"},
		{"a root without the image line", func(t *testing.T) string {
			return fixture(t, []string{"dracut 059-4"}, map[string]string{"etc/motd": "x"})
		}, true, "run nroot node on it again"},
		{"the writer fails", func(t *testing.T) string { return imageRoot(t, "059-4") }, false, "no space left"},
		{"the writer fails after --move", func(t *testing.T) string { return imageRoot(t, "059-4") }, false, "is back where it was"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := Image{Dir: t.TempDir()}
			root := tt.root(t)
			move := strings.Contains(tt.name, "--move")
			_, err := im.Import(context.Background(), root, ImportOptions{FSImage: squashfs, Move: move})
			if _, serr := os.Stat(filepath.Join(root, "etc/motd")); serr != nil {
				t.Errorf("the root is not where it was: %v", serr)
			}
			if err == nil || !strings.Contains(err.Error(), tt.says) || usage.Is(err) != tt.usage {
				t.Fatalf("err %v, want one saying %q, usage error %v", err, tt.says, tt.usage)
			}
			if tt.usage && !strings.Contains(err.Error(), "--fsimage") {
				t.Errorf("err %v does not name --fsimage", err)
			}
			ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations"))
			for _, e := range ents {
				t.Errorf("left generations/%s behind", e.Name())
			}
		})
	}
}

// TestGenerationModes: a generation boots the modes of the files it
// records, and only with the image line; names other than a format's
// file are no mode and break it.
func TestGenerationModes(t *testing.T) {
	tests := []struct {
		images  []string
		cmdline string
		want    []string
	}{
		{nil, "", []string{"tree"}},
		{[]string{"root.squashfs"}, imageLine, []string{"tree", "nfs-squashfs", "http-squashfs"}},
		{[]string{"root.erofs"}, imageLine, []string{"tree", "nfs-erofs", "http-erofs"}},
		{[]string{"root.squashfs"}, "", []string{"tree"}},
		{[]string{"../root.squashfs", "root.tar"}, imageLine, []string{"tree"}},
	}
	for _, tt := range tests {
		g := &Generation{Images: tt.images, ImageCmdline: tt.cmdline}
		if got := g.Modes(); !slices.Equal(got, tt.want) {
			t.Errorf("images %q, line %q: modes %q, want %q", tt.images, tt.cmdline, got, tt.want)
		}
		if !g.Boots("") || g.Boots("squashfs") || g.Boots("nfs-") {
			t.Errorf("images %q: Boots is wrong about the tree or a bad mode", tt.images)
		}
	}
	im := Image{Dir: t.TempDir()}
	if _, err := im.Import(context.Background(), fixture(t, nil, nil), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := im.problem(1, &Generation{Images: []string{"../root.squashfs"}}); !strings.Contains(p, `"../root.squashfs"`) {
		t.Errorf("problem %q, want it to name the bad file", p)
	}
}
