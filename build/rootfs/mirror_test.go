package rootfs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nroot/build/apt"
	"nroot/build/lockfile"
	"nroot/build/rootfs"
	"nroot/e2e/testenv"
	"nroot/internal/fetch"
)

// localMirror copies what a bookworm minbase build needs from the real
// archive into a directory laid out as a mirror: the signed InRelease,
// the Packages index (at its path and by hash) and the plan's packages.
func localMirror(t *testing.T, mirror string) (dir string, plan *lockfile.Plan) {
	t.Helper()
	ctx := context.Background()
	f := fetch.NewFetcher(cacheDir())
	plan, err := apt.Resolve(ctx, apt.Config{Suite: "bookworm", Variant: "minbase", Mirrors: []string{"deb " + mirror + " bookworm main"}, MergedUsr: true}, apt.Options{Fetcher: f})
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := rootfs.Fetch(ctx, plan, f, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	put := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inrel, err := f.GetMeta(ctx, mirror+"/dists/bookworm/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	put("dists/bookworm/InRelease", inrel)
	// The Release part of the clearsigned file, unverified: only to find
	// the index's path and hash; nroot verifies everything when it reads
	// the copy.
	body := string(inrel)
	body = body[strings.Index(body, "\n\n")+2 : strings.Index(body, "-----BEGIN PGP SIGNATURE")]
	rel, err := apt.ParseRelease([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	arch := apt.HostArch()
	idx := "main/binary-" + arch + "/Packages.xz"
	fh := rel.Files[idx]
	path, err := f.FetchVerified(ctx, []string{mirror + "/dists/bookworm/" + idx}, fh.Size, fh.SHA256, "download")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	put("dists/bookworm/"+idx, data)
	put("dists/bookworm/main/binary-"+arch+"/by-hash/SHA256/"+fh.SHA256, data)
	for _, p := range plan.Packages {
		deb, err := os.ReadFile(fetched[p.SHA256])
		if err != nil {
			t.Fatal(err)
		}
		put(p.Filename, deb)
	}
	return dir, plan
}

// TestLocalMirrors builds from a file:// mirror, read in place, and
// resolves from the same directory as copy://, with the same packages as
// from the network mirror it was copied from.
func TestLocalMirrors(t *testing.T) {
	mirror := requireBootstrap(t)
	dir, want := localMirror(t, mirror)
	names := func(p *lockfile.Plan) []string {
		var out []string
		for _, pkg := range p.Packages {
			out = append(out, pkg.Name+"="+pkg.Version+" "+pkg.SHA256)
		}
		slices.Sort(out)
		return out
	}
	for _, scheme := range []string{"file", "copy"} {
		t.Run(scheme, func(t *testing.T) {
			// An empty cache: nothing may come from the network copy.
			o := rootfs.Options{
				Config: apt.Config{Suite: "bookworm", Variant: "minbase", Mirrors: []string{scheme + "://" + dir}, NoUpdates: true, NoSecurity: true},
				Apt:    apt.Options{Fetcher: fetch.NewFetcher(t.TempDir())},
			}
			if scheme == "copy" {
				cfg := o.Config
				cfg.MergedUsr = true // as Bootstrap resolves
				plan, err := apt.Resolve(context.Background(), cfg, o.Apt)
				if err != nil {
					t.Fatal(err)
				}
				if got := names(plan); !slices.Equal(got, names(want)) {
					t.Errorf("copy:// plan differs from the network one: only copy:// %v, only network %v", diff(got, names(want)), diff(names(want), got))
				}
				return
			}
			target := filepath.Join(t.TempDir(), "img")
			res, err := rootfs.Bootstrap(context.Background(), target, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res.Plan); !slices.Equal(got, names(want)) {
				t.Errorf("file:// plan differs from the network one: only file:// %v, only network %v", diff(got, names(want)), diff(names(want), got))
			}
			if res.Plan.Packages[0].URI != "file://"+dir {
				t.Errorf("package URI %q", res.Plan.Packages[0].URI)
			}
			src, _ := os.ReadFile(filepath.Join(target, "etc/apt/sources.list.d/debian.sources"))
			if !bytes.Contains(src, []byte("URIs: file://"+dir)) {
				t.Errorf("the image's sources do not name the local mirror:\n%s", src)
			}
			if out, err := exec.Command("chroot", target, "dpkg", "--audit").CombinedOutput(); err != nil || len(out) != 0 {
				t.Errorf("dpkg --audit: %v\n%s", err, out)
			}
		})
	}
	// A local mirror that does not exist is a clear error, not a hang.
	o := rootfs.Options{
		Config: apt.Config{Suite: "bookworm", Variant: "minbase", Mirrors: []string{"file://" + dir + "/missing"}, NoUpdates: true, NoSecurity: true},
		Apt:    apt.Options{Fetcher: fetch.NewFetcher(t.TempDir())},
	}
	if _, err := rootfs.Bootstrap(context.Background(), filepath.Join(t.TempDir(), "x"), o); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing local mirror: %v", err)
	}
}

// TestLocalPackageInclude installs a package file given to --include,
// built here with dpkg-deb, whose dependency comes from the archive, and
// records it in the lock with its SHA256.
func TestLocalPackageInclude(t *testing.T) {
	mirror := requireBootstrap(t)
	dpkgDeb := testenv.Command(t, "dpkg-deb")
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755)
	os.MkdirAll(filepath.Join(src, "usr/share/nroot-local-test"), 0o755)
	os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte("Package: nroot-local-test\nVersion: 1.0\nArchitecture: all\nMaintainer: nroot tests <tests@nroot.invalid>\nDepends: hello\nDescription: a package built by the test\n a second line\n"), 0o644)
	os.WriteFile(filepath.Join(src, "usr/share/nroot-local-test/marker"), []byte("local\n"), 0o644)
	debs := t.TempDir()
	file := filepath.Join(debs, "nroot-local-test_1.0_all.deb")
	if out, err := exec.Command(dpkgDeb, "--root-owner-group", "-b", src, file).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	names, local, err := apt.SplitIncludes([]string{"zstd", debs})
	if err != nil || !slices.Equal(names, []string{"zstd"}) || len(local) != 1 {
		t.Fatalf("SplitIncludes: %v %v %v", names, local, err)
	}
	o := bootstrapOptions(mirror, "bookworm", "minbase")
	o.Config.Include, o.Config.Local = names, local
	target := filepath.Join(t.TempDir(), "img")
	res, err := rootfs.Bootstrap(context.Background(), target, o)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]lockfile.Package{}
	for _, p := range res.Plan.Packages {
		byName[p.Name] = p
	}
	lp, ok := byName["nroot-local-test"]
	if !ok || lp.URI != "file://"+debs || lp.SHA256 != local[0].SHA256 {
		t.Errorf("the local package in the plan: %+v", lp)
	}
	if h := byName["hello"]; h.URI == "" || strings.HasPrefix(h.URI, "file:") {
		t.Errorf("hello should come from the archive: %+v", h)
	}
	if _, ok := byName["zstd"]; !ok {
		t.Error("zstd, included by name, is missing")
	}
	if b, _ := os.ReadFile(filepath.Join(target, "usr/share/nroot-local-test/marker")); string(b) != "local\n" {
		t.Errorf("marker %q", b)
	}
	if out, err := exec.Command("chroot", target, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "nroot-local-test", "hello").CombinedOutput(); err != nil || string(out) != "ii ii " {
		t.Errorf("dpkg-query: %v %q", err, out)
	}
	// The lock replays it, from the file, checked against its SHA256.
	var lock bytes.Buffer
	if err := lockfile.Write(&lock, res.Plan); err != nil {
		t.Fatal(err)
	}
	plan, err := lockfile.Read(&lock, "test.lock")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte("changed"), 0o644)
	o.FromLock = plan
	o.Apt.Fetcher = fetch.NewFetcher(t.TempDir()) // nothing cached: the file is read again
	if _, err := rootfs.Bootstrap(context.Background(), filepath.Join(t.TempDir(), "replay"), o); err == nil || !strings.Contains(err.Error(), "nroot-local-test") {
		t.Errorf("a changed package file was not refused: %v", err)
	}
}
