package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nroot/build/apt"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
	"nroot/internal/fsroot"
)

// fixture writes a minimal node root: a kernel with its modules
// directory and initramfs, the command line nroot node leaves and a dpkg
// status with the packages given ("name version").
func fixture(t *testing.T, pkgs []string, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	var status strings.Builder
	for _, p := range pkgs {
		n, v, _ := strings.Cut(p, " ")
		status.WriteString("Package: " + n + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + v + "\n\n")
	}
	all := map[string]string{
		"boot/vmlinuz-6.1.0-9-amd64":            "kernel",
		"boot/initrd.img-6.1.0-9-amd64":         "initrd",
		"lib/modules/6.1.0-9-amd64/modules.dep": "",
		"boot/nroot-cmdline":                    "root=nfs4:SERVER:/PATH rd.live.overlay.overlayfs=1 ip=dhcp\n",
		"var/lib/dpkg/status":                   status.String(),
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestGenerations(t *testing.T) {
	ctx := context.Background()
	im := Image{Dir: t.TempDir()}
	g1, err := im.Import(ctx, fixture(t, []string{"base-files 12", "hello 2.10-2", "gone 1"}, map[string]string{"etc/motd": "one"}), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src2 := fixture(t, []string{"base-files 12.4", "hello 2.10-2", "htop 3.2"}, map[string]string{"etc/motd": "two", "etc/new": "x"})
	g2, err := im.Import(ctx, src2, ImportOptions{Move: true})
	if err != nil {
		t.Fatal(err)
	}
	if g1.ID != 1 || g2.ID != 2 {
		t.Fatalf("generations %d, %d; want 1, 2", g1.ID, g2.ID)
	}
	if _, err := os.Stat(src2); !os.IsNotExist(err) {
		t.Errorf("--move left %s behind", src2)
	}
	for _, f := range []string{"vmlinuz", "initrd.img", "boot.ipxe", "generation.json", "root/etc/motd"} {
		if _, err := os.Stat(filepath.Join(im.Dir, "generations/1", f)); err != nil {
			t.Errorf("generation 1: %v", err)
		}
	}
	script, _ := os.ReadFile(filepath.Join(im.Dir, "generations/2/boot.ipxe"))
	for _, want := range []string{
		"kernel ${nroot-base}/generations/2/vmlinuz initrd=initrd.img initrd=identity.img root=nfs4:${nroot-server}:${nroot-export}/generations/2/root${nroot-nfs-opts} rd.live.overlay.overlayfs=1 ip=dhcp ${nroot-args}",
		"initrd --name initrd.img ${nroot-base}/generations/2/initrd.img",
		"initrd --name identity.img ${nroot-base}/nodes/${nroot-node}.img",
	} {
		if !strings.Contains(string(script), want+"\n") {
			t.Errorf("boot.ipxe lacks %q:\n%s", want, script)
		}
	}

	d, err := im.Diff(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0].Name != "htop" || len(d.Removed) != 1 || d.Removed[0].Name != "gone" ||
		len(d.Upgraded) != 1 || d.Upgraded[0] != (PackageChange{Name: "base-files", Architecture: "amd64", Old: "12", New: "12.4"}) {
		t.Errorf("packages: added %v, removed %v, changed %v", d.Added, d.Removed, d.Upgraded)
	}
	var files []string
	for _, f := range d.Files {
		files = append(files, f.Kind+" "+f.Path+" "+f.Fields)
	}
	want := "changed /etc/motd content|added /etc/new |changed /var/lib/dpkg/status size,content"
	if got := strings.Join(files, "|"); got != want {
		t.Errorf("file changes\n got %s\nwant %s", got, want)
	}

	// Publish, rollback and removal.
	if pub, _ := im.Published(); pub != 0 {
		t.Fatalf("published %d before any publish", pub)
	}
	if _, err := im.Rollback(); err == nil {
		t.Error("rollback with nothing published succeeded")
	}
	steps := []struct {
		do   func() error
		want int
	}{
		{func() error { return im.Publish(1) }, 1},
		{func() error { return im.Publish(2) }, 2},
		{func() error { _, err := im.Rollback(); return err }, 1},
		{func() error { return im.Publish(2) }, 2},
		{func() error { return im.Publish(2) }, 2},
		{func() error { _, err := im.Rollback(); return err }, 1},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if pub, err := im.Published(); err != nil || pub != s.want {
			t.Fatalf("step %d: published %d (%v), want %d", i, pub, err, s.want)
		}
	}
	if err := im.Publish(7); !errors.Is(err, ErrNotFound) {
		t.Errorf("publishing a missing generation: %v", err)
	}
	if err := im.Remove(1, nil); !errors.Is(err, ErrInUse) {
		t.Errorf("removing the published generation: %v", err)
	}
	if err := im.Remove(2, []int{2}); !errors.Is(err, ErrInUse) {
		t.Errorf("removing a pinned generation: %v", err)
	}
	if err := im.Remove(2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := im.Rollback(); err == nil {
		t.Error("rollback to nothing succeeded")
	}
	list, err := im.List()
	if err != nil || len(list) != 1 || list[0].ID != 1 || !list[0].Published {
		t.Errorf("list %+v (%v)", list, err)
	}
	// A third generation is numbered after the highest ever given, never
	// the removed 2 again.
	g3, err := im.Import(ctx, fixture(t, []string{"a 1"}, nil), ImportOptions{})
	if err != nil || g3.ID != 3 {
		t.Errorf("next generation %v (%v)", g3, err)
	}
}

func TestImportRefuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		root func(t *testing.T) string
		want string
	}{
		{"not a node root", func(t *testing.T) string { return t.TempDir() }, "run nroot node"},
		{"no kernel", func(t *testing.T) string {
			r := fixture(t, []string{"a 1"}, nil)
			os.Remove(filepath.Join(r, "boot/vmlinuz-6.1.0-9-amd64"))
			return r
		}, "no kernel"},
		{"initramfs a symlink out", func(t *testing.T) string {
			r := fixture(t, []string{"a 1"}, nil)
			p := filepath.Join(r, "boot/initrd.img-6.1.0-9-amd64")
			os.Remove(p)
			os.Symlink("/etc/shadow", p)
			return r
		}, "initrd.img"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := Image{Dir: t.TempDir()}
			_, err := im.Import(ctx, tt.root(t), ImportOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to mention %q", err, tt.want)
			}
			ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations"))
			for _, e := range ents {
				t.Errorf("left %s behind", e.Name())
			}
		})
	}
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		ok   bool
	}{
		{"", nil, true},
		{"2026-01-01T00:00:00Z publish 1\n2026-01-02T00:00:00Z rollback 12\n", []int{1, 12}, true},
		{"2026-01-01T00:00:00Z publish 0\n", nil, false},
		{"2026-01-01T00:00:00Z publish -3\n", nil, false},
		{"publish 1\n", nil, false},
		{"\n", nil, false},
	}
	for _, tt := range tests {
		got, err := parseHistory([]byte(tt.in), "history")
		if (err == nil) != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("parseHistory(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseHistory(f *testing.F) {
	f.Add([]byte("2026-01-01T00:00:00Z publish 1\n"))
	f.Add([]byte("x y 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseHistory(b, "history")
		if err != nil {
			return
		}
		for _, id := range ids {
			if id <= 0 {
				t.Fatalf("generation %d accepted", id)
			}
		}
		if len(ids) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%d generations from %d lines", len(ids), strings.Count(string(b), "\n")+1)
		}
	})
}

func FuzzDecodeGeneration(f *testing.F) {
	f.Add([]byte(`{"generation": 3, "packages": [{"name": "a"}]}`))
	f.Add([]byte(`{"generation": -1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGeneration(b)
		if err == nil && g.ID <= 0 {
			t.Fatalf("generation %d accepted", g.ID)
		}
	})
}

// An image whose generations/ is a symlink is refused before anything is
// written through it.
func TestSymlinkedGenerationsRefused(t *testing.T) {
	im := Image{Dir: t.TempDir()}
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(im.Dir, "generations")); err != nil {
		t.Fatal(err)
	}
	_, err := im.Import(context.Background(), fixture(t, []string{"a 1"}, nil), ImportOptions{})
	if !errors.Is(err, ErrNoImage) {
		t.Fatalf("import into a symlinked generations/: %v", err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) > 0 {
		t.Errorf("wrote %s through the symlink", ents[0].Name())
	}
	if _, err := Open(im.Dir); !errors.Is(err, ErrNoImage) {
		t.Errorf("Open: %v", err)
	}
}

// TestNumbersNeverReused: whatever is removed, and whether or not it was
// ever published, the next generation gets a number never given before,
// from the counter, or from what the image shows when the counter is gone.
func TestNumbersNeverReused(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		steps func(t *testing.T, im Image)
		want  int
	}{
		{"the newest removed, never published", func(t *testing.T, im Image) {
			mustImport(t, im, 2)
			if err := im.Remove(2, nil); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"every one removed", func(t *testing.T, im Image) {
			mustImport(t, im, 2)
			for _, id := range []int{1, 2} {
				if err := im.Remove(id, nil); err != nil {
					t.Fatal(err)
				}
			}
		}, 3},
		{"counter lost, published one removed", func(t *testing.T, im Image) {
			mustImport(t, im, 3)
			if err := im.Publish(3); err != nil {
				t.Fatal(err)
			}
			if err := im.Publish(1); err != nil {
				t.Fatal(err)
			}
			if err := im.Remove(3, nil); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(im.Dir, counterFile))
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := Image{Dir: t.TempDir()}
			tt.steps(t, im)
			g, err := im.Import(ctx, fixture(t, []string{"a 1"}, nil), ImportOptions{})
			if err != nil || g.ID != tt.want {
				t.Fatalf("next generation %+v (%v), want %d", g, err, tt.want)
			}
		})
	}
}

func mustImport(t *testing.T, im Image, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := im.Import(context.Background(), fixture(t, []string{"a 1"}, nil), ImportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMoveFailurePutsRootBack: a --move whose sealing fails (no
// initramfs) or that is cancelled leaves ROOT where it was, whole, and
// no generation; the error names ROOT, which exists.
func TestMoveFailurePutsRootBack(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		drop string
		want error
	}{
		{"no initramfs", context.Background(), "boot/initrd.img-6.1.0-9-amd64", nil},
		{"no kernel", context.Background(), "boot/vmlinuz-6.1.0-9-amd64", nil},
		{"cancelled", cancelled, "", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := Image{Dir: t.TempDir()}
			root := fixture(t, []string{"a 1"}, map[string]string{"etc/motd": "mine"})
			if tt.drop != "" {
				os.Remove(filepath.Join(root, tt.drop))
			}
			_, err := im.Import(tt.ctx, root, ImportOptions{Move: true})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Import = %v, want a failure (%v)", err, tt.want)
			}
			if b, rerr := os.ReadFile(filepath.Join(root, "etc/motd")); rerr != nil || string(b) != "mine" {
				t.Fatalf("ROOT not put back (%v): %v", rerr, err)
			}
			if _, rerr := os.Stat(filepath.Join(root, "var/lib/dpkg/status")); rerr != nil {
				t.Fatalf("ROOT not whole: %v", rerr)
			}
			if !strings.Contains(err.Error(), root) {
				t.Errorf("the error does not name ROOT: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations"))
			for _, e := range ents {
				t.Errorf("left %s behind", e.Name())
			}
		})
	}
}

// TestImportRefusesOverlap: --move of a symlink, and a ROOT inside the
// image (a generation's own root) or holding it, are refused before
// anything moves; a generation whose root went is shown broken and not
// published.
func TestImportRefusesOverlap(t *testing.T) {
	ctx := context.Background()
	im := Image{Dir: filepath.Join(t.TempDir(), "image")}
	mustImport(t, im, 1)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(fixture(t, []string{"a 1"}, nil), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root string
		move bool
		want string
	}{
		{"a symlink moved", link, true, "is a symlink"},
		{"a generation's root moved", im.Root(1), true, "overlap"},
		{"a generation's root copied", im.Root(1), false, "overlap"},
		{"a directory holding the image", filepath.Dir(im.Dir), false, "overlap"},
		{"the image through a symlink", filepath.Join(link2(t, im.Dir), "generations/1/root"), true, "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := im.Import(ctx, tt.root, ImportOptions{Move: tt.move})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import(%s) = %v, want %q", tt.root, err, tt.want)
			}
			if g, err := im.Get(1); err != nil || g.Problem != "" {
				t.Fatalf("generation 1 changed: %+v %v", g, err)
			}
		})
	}
	// A generation whose root is gone (by hand) is broken, not published.
	os.Rename(im.Root(1), filepath.Join(t.TempDir(), "gone"))
	if err := im.Publish(1); !errors.Is(err, ErrBroken) {
		t.Errorf("publishing a generation without its root: %v", err)
	}
	list, err := im.List()
	if err != nil || len(list) != 1 || list[0].Problem == "" {
		t.Errorf("list does not show the broken generation: %+v %v", list, err)
	}
}

// TestBrokenMetadataListedAndRemoved: a generation whose generation.json
// says another number, is not JSON, or is missing is listed as broken,
// not publishable, and removable; the others are listed as before.
func TestBrokenMetadataListedAndRemoved(t *testing.T) {
	im := Image{Dir: t.TempDir()}
	for i := 0; i < 4; i++ {
		if _, err := im.Import(context.Background(), fixture(t, []string{"dpkg 1.21"}, nil), ImportOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(id int) string { return filepath.Join(im.genDir(id), "generation.json") }
	b, _ := os.ReadFile(meta(1))
	os.WriteFile(meta(2), b, 0o644) // says generation 1
	os.WriteFile(meta(3), []byte("{"), 0o644)
	os.Remove(meta(4))
	list, err := im.List()
	if err != nil || len(list) != 4 {
		t.Fatalf("List = %d generations, %v; want 4", len(list), err)
	}
	for i, g := range list {
		if g.ID != i+1 || (g.Problem == "") != (i == 0) {
			t.Errorf("generation %d: id %d, problem %q", i+1, g.ID, g.Problem)
		}
	}
	for id := 2; id <= 4; id++ {
		if err := im.Publish(id); !errors.Is(err, ErrBroken) {
			t.Errorf("Publish(%d) = %v, want ErrBroken", id, err)
		}
		if err := im.Remove(id, nil); err != nil {
			t.Errorf("Remove(%d) = %v", id, err)
		}
	}
	if ids, _ := im.IDs(); !slices.Equal(ids, []int{1}) {
		t.Errorf("left %v, want [1]", ids)
	}
	if err := im.Remove(7, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(7) = %v, want ErrNotFound", err)
	}
}

func link2(t *testing.T, dir string) string {
	l := filepath.Join(t.TempDir(), "imagelink")
	if err := os.Symlink(dir, l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHoldRefusesRemove: a generation an update is copying cannot be
// removed until the copy ends.
func TestHoldRefusesRemove(t *testing.T) {
	im := Image{Dir: t.TempDir()}
	mustImport(t, im, 1)
	release, err := im.hold(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Remove(1, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("removing a held generation: %v", err)
	}
	release()
	release()
	if err := im.Remove(1, nil); err != nil {
		t.Fatalf("removing after release: %v", err)
	}
	if _, err := im.hold(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("holding a removed generation: %v", err)
	}
}

// TestRollbackSteps: rollback walks back down what was published, once
// per call, passing over removed generations, and never returns to the
// one it left.
func TestRollbackSteps(t *testing.T) {
	im := Image{Dir: t.TempDir()}
	mustImport(t, im, 4)
	for _, id := range []int{1, 2, 3, 4} {
		if err := im.Publish(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.Remove(3, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{2, 1} {
		got, err := im.Rollback()
		if err != nil || got != want {
			t.Fatalf("rollback = %d (%v), want %d", got, err, want)
		}
	}
	if _, err := im.Rollback(); err == nil || !strings.Contains(err.Error(), "1 stays published") {
		t.Fatalf("rollback past the first: %v", err)
	}
	if pub, _ := im.Published(); pub != 1 {
		t.Fatalf("published %d, want 1", pub)
	}
	// A publish after rollbacks starts a new top.
	if err := im.Publish(4); err != nil {
		t.Fatal(err)
	}
	if got, err := im.Rollback(); err != nil || got != 1 {
		t.Fatalf("rollback after a new publish = %d (%v), want 1", got, err)
	}
}

// TestNodeChoicesRecorded: the node stage's recorded choices reach the
// generation, and its --kver picks the kernel a generation boots.
func TestNodeChoicesRecorded(t *testing.T) {
	im := Image{Dir: t.TempDir()}
	state := `{"hostname_requested": true, "cmdline": "x", "kernels": ["6.1.0-9-amd64"],
	  "choices": {"kernel": "linux-image-rt-amd64", "kver": "6.1.0-9-amd64", "hostname": "n", "packages": ["htop"], "e2e_probe": true}}`
	root := fixture(t, []string{"a 1"}, map[string]string{
		"etc/nroot/node.json":                    state,
		"boot/vmlinuz-6.1.0-10-amd64":            "kernel",
		"boot/initrd.img-6.1.0-10-amd64":         "initrd",
		"lib/modules/6.1.0-10-amd64/modules.dep": "",
	})
	g, err := im.Import(context.Background(), root, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Node == nil || g.Node.Kernel != "linux-image-rt-amd64" || g.Node.Hostname != "n" || !g.Node.E2EProbe || !slices.Equal(g.Node.Packages, []string{"htop"}) {
		t.Fatalf("recorded choices %+v", g.Node)
	}
	if g.Kernel != "6.1.0-9-amd64" {
		t.Errorf("kernel %s, want the --kver 6.1.0-9-amd64", g.Kernel)
	}
	again, err := im.Get(g.ID)
	if err != nil || again.Node == nil || again.Node.Kver != "6.1.0-9-amd64" {
		t.Errorf("generation.json lost the choices: %+v %v", again, err)
	}
	// Without --kver the newest ABI by Debian version order.
	g2, err := im.Import(context.Background(), fixture(t, []string{"a 1"}, map[string]string{
		"boot/vmlinuz-6.1.0-10-amd64":            "kernel",
		"boot/initrd.img-6.1.0-10-amd64":         "initrd",
		"lib/modules/6.1.0-10-amd64/modules.dep": "",
	}), ImportOptions{})
	if err != nil || g2.Kernel != "6.1.0-10-amd64" {
		t.Errorf("kernel %v (%v), want 6.1.0-10-amd64", g2, err)
	}
}

// TestImportCancelledMidCopy: Ctrl-C during the copy of a large root
// returns within 2 s and leaves no generation.
func TestImportCancelledMidCopy(t *testing.T) {
	root := fixture(t, []string{"a 1"}, nil)
	f, err := os.Create(filepath.Join(root, "big"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(8 << 30)
	f.Close()
	im := Image{Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	g, err := im.Import(ctx, root, ImportOptions{})
	if g != nil && g.Shared > 0 {
		t.Skip("the filesystem shares extents: the copy is instant")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Import = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2200*time.Millisecond {
		t.Errorf("returned %v after the start, want within 2 s of the cancel", took)
	}
	ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations"))
	for _, e := range ents {
		t.Errorf("left %s behind", e.Name())
	}
}

// TestUpdateAsksFirst: an update that adds a package no source of the
// parent has fails before copying anything, naming it, against the real
// archive the parent's sources name; a real package passes the question.
func TestUpdateAsksFirst(t *testing.T) {
	mirror := testenv.Mirror(t)
	sources := "Types: deb\nURIs: " + mirror + "\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
	im := Image{Dir: t.TempDir()}
	if _, err := im.Import(context.Background(), fixture(t, []string{"dpkg 1.21"}, map[string]string{"etc/apt/sources.list.d/debian.sources": sources}), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	o := apt.Options{Fetcher: fetch.NewFetcher(os.Getenv("NROOT_TEST_CACHE"))}
	_, err := im.Update(context.Background(), UpdateOptions{Install: []string{"hello", "helo", "mail-transport-agent"}, Apt: o})
	var ue *UnavailableError
	if !errors.As(err, &ue) || !slices.Equal(ue.Packages, []string{"helo"}) || !strings.Contains(err.Error(), "bookworm") {
		t.Fatalf("Update = %v, want an UnavailableError naming helo alone", err)
	}
	ents, _ := os.ReadDir(filepath.Join(im.Dir, "generations"))
	if len(ents) != 1 {
		t.Errorf("generations/ holds %d entries, want generation 1 alone", len(ents))
	}
	src, err := fsroot.Open(im.Root(1))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if missing, _, ok := unavailable(context.Background(), src, []string{"hello", "mail-transport-agent"}, "amd64", o); !ok || len(missing) != 0 {
		t.Errorf("hello and a virtual package: missing %v (asked: %v)", missing, ok)
	}
}
