package rootfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"nroot/build/apt"
	"nroot/build/lockfile"
	"nroot/build/userns"
	"nroot/format/keyring"
	"nroot/internal/fsroot"
)

// packagedKeyrings are where the distributions' keyring packages install
// their keyrings; Signed-By points there when the image has one, so the
// image follows the distribution's key rotations.
var packagedKeyrings = map[string][]string{
	keyring.Debian: {"usr/share/keyrings/debian-archive-keyring.pgp", "usr/share/keyrings/debian-archive-keyring.gpg"},
	keyring.Ubuntu: {"usr/share/keyrings/ubuntu-archive-keyring.gpg"},
}

// writeSources writes the image's APT sources as one deb822 file, with
// codenames (never aliases), every component, and a Signed-By keyring
// inside the image.
func writeSources(root *fsroot.Root, plan *lockfile.Plan, rings map[string]*keyring.Keyring) error {
	if err := root.MkdirAll("etc/apt/sources.list.d", 0o755); err != nil {
		return err
	}
	signedBy := map[string]string{}
	for _, k := range plan.Keyrings {
		for _, p := range packagedKeyrings[k.Name] {
			if _, err := root.Lstat(p); err == nil {
				signedBy[k.Name] = "/" + p
				break
			}
		}
		if signedBy[k.Name] != "" {
			continue
		}
		kr := rings[k.Name]
		if kr == nil {
			return fmt.Errorf("keyring %s of the plan is not loaded; pass it with --keyring", k.Name)
		}
		rel := "etc/apt/keyrings/nroot-" + safeName(k.Name) + ".pgp"
		if err := root.MkdirAll("etc/apt/keyrings", 0o755); err != nil {
			return err
		}
		if err := root.WriteFile(rel, bytes.NewReader(kr.Raw), int64(len(kr.Raw)), fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
		signedBy[k.Name] = "/" + rel
	}
	b := sourcesText(plan, signedBy)
	name := "etc/apt/sources.list.d/" + strings.ToLower(safeName(plan.Origin)) + ".sources"
	if plan.Origin == "" {
		name = "etc/apt/sources.list.d/nroot.sources"
	}
	return root.WriteFile(name, strings.NewReader(b), int64(len(b)), fsroot.Meta{Mode: 0o644})
}

// sourcesText is the plan's sources as one deb822 file, each signed by
// the keyring signedBy names for its keyring.
func sourcesText(plan *lockfile.Plan, signedBy map[string]string) string {
	type group struct {
		uri, keyring string
		suites       []string
		components   []string
		expired      bool
	}
	var groups []*group
	for _, s := range plan.Sources {
		var g *group
		for _, x := range groups {
			if x.uri == s.URI && x.keyring == s.Keyring && x.expired == s.Expired && strings.Join(x.components, " ") == strings.Join(s.Components, " ") {
				g = x
			}
		}
		if g == nil {
			g = &group{uri: s.URI, keyring: s.Keyring, components: s.Components, expired: s.Expired}
			groups = append(groups, g)
		}
		g.suites = append(g.suites, s.Codename)
	}
	var b strings.Builder
	b.WriteString("# Written by nroot bootstrap.\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "\nTypes: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n",
			g.uri, strings.Join(g.suites, " "), strings.Join(listedComponents(plan.Origin, g.components), " "), signedBy[g.keyring])
		if g.expired {
			// Built from an archived snapshot, past its Valid-Until,
			// with --no-check-valid-until: apt in the image must
			// accept it too.
			b.WriteString("Check-Valid-Until: no\n")
		}
	}
	return b.String()
}

// ubuntuComponents are the components an Ubuntu installation lists by
// default. The image was resolved from the plan's components only; the
// rest are listed so that apt in the image finds, say, dracut in universe.
var ubuntuComponents = []string{"main", "restricted", "universe", "multiverse"}

// listedComponents are the components the image's sources name: the ones
// resolved, then, for Ubuntu, the rest of its defaults.
func listedComponents(origin string, resolved []string) []string {
	out := append([]string(nil), resolved...)
	if origin != apt.Ubuntu {
		return out
	}
	for _, c := range ubuntuComponents {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// cleanupPaths are removed as mmdebstrap removes them: logs of the build,
// caches, and the dpkg database's backups.
// cleanupGlobs are the build leftovers removed, under the --skip name
// that keeps them.
var cleanupGlobs = []struct {
	skip  string
	globs []string
}{
	{"cleanup/apt/cache", []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin"}},
	{"cleanup/apt/lists", []string{"var/lib/apt/lists/*_*"}},
	{"cleanup/reproducible", []string{"var/log/dpkg.log", "var/log/apt/*.log", "var/log/apt/eipp.log.xz", "var/log/alternatives.log", "var/log/bootstrap.log",
		"var/cache/ldconfig/aux-cache", "var/lib/dbus/machine-id"}},
	{"cleanup/mmdebstrap", []string{"var/lib/dpkg/*-old", "var/cache/debconf/*-old"}},
	{"cleanup/run", []string{"run/*"}},
	{"cleanup/tmp", []string{"tmp/*"}},
}

// cleanup removes build leftovers and writes /etc/machine-id as
// "uninitialized", so each node generates its own at first boot; skip
// keeps what it names.
func cleanup(root *fsroot.Root, skip skipSet) error {
	for _, c := range cleanupGlobs {
		if skip.has(c.skip) {
			continue
		}
		for _, g := range c.globs {
			for _, rel := range root.Glob(g) {
				if err := root.RemoveAll(rel); err != nil && !os.IsNotExist(err) {
					return err
				}
			}
		}
	}
	if skip.has("cleanup/reproducible/machine-id") {
		return nil
	}
	if err := root.MkdirAll("etc", 0o755); err != nil {
		return err
	}
	const id = "uninitialized\n"
	return root.WriteFile("etc/machine-id", strings.NewReader(id), int64(len(id)), fsroot.Meta{Mode: 0o444})
}

// clampMtimes sets every mtime later than t to t, for reproducible
// output under SOURCE_DATE_EPOCH.
func clampMtimes(dir string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if time.Unix(st.Mtim.Unix()).After(t) {
			return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		return nil
	})
}

// devNodes are the device nodes, links and directories mmdebstrap puts in
// /dev, for chroot use; a booted node mounts devtmpfs over them.
var devNodes = []struct {
	name         string
	mode         uint32 // type and permission bits; 0 for a symlink
	major, minor uint32
	link         string
}{
	{"console", unix.S_IFCHR | 0o666, 5, 1, ""},
	{"fd", 0, 0, 0, "/proc/self/fd"},
	{"full", unix.S_IFCHR | 0o666, 1, 7, ""},
	{"null", unix.S_IFCHR | 0o666, 1, 3, ""},
	{"ptmx", unix.S_IFCHR | 0o666, 5, 2, ""},
	{"pts", unix.S_IFDIR | 0o755, 0, 0, ""},
	{"random", unix.S_IFCHR | 0o666, 1, 8, ""},
	{"shm", unix.S_IFDIR | 0o755, 0, 0, ""},
	{"stderr", 0, 0, 0, "/proc/self/fd/2"},
	{"stdin", 0, 0, 0, "/proc/self/fd/0"},
	{"stdout", 0, 0, 0, "/proc/self/fd/1"},
	{"tty", unix.S_IFCHR | 0o666, 5, 0, ""},
	{"urandom", unix.S_IFCHR | 0o666, 1, 9, ""},
	{"zero", unix.S_IFCHR | 0o666, 1, 5, ""},
}

// canMknod reports whether this process may make device nodes: root,
// and not in a user namespace, where the kernel forbids them.
func canMknod() bool { return os.Geteuid() == 0 && !userns.Inside() }

// makeDev fills /dev as mmdebstrap does. Device nodes are made when
// mknod is set and allowed; where they are not allowed, placeholders
// leaves empty files in their place for a tarball to carry as nodes
// (devTarNodes), and otherwise only the links and directories are made.
func makeDev(root *fsroot.Root, mknod, placeholders bool) error {
	if err := root.MkdirAll("dev", 0o755); err != nil {
		return err
	}
	mknod = mknod && canMknod()
	for _, d := range devNodes {
		rel := "dev/" + d.name
		if _, err := root.Lstat(rel); err == nil {
			continue
		}
		var err error
		switch {
		case d.link != "":
			err = root.Symlink(d.link, rel, fsroot.Meta{})
		case d.mode&unix.S_IFMT == unix.S_IFDIR:
			err = root.Mkdir(rel, d.mode&0o7777)
		case mknod:
			err = root.Mknod(rel, d.mode, unix.Mkdev(d.major, d.minor), fsroot.Meta{Mode: d.mode & 0o7777})
		case placeholders:
			err = root.WriteFile(rel, strings.NewReader(""), 0, fsroot.Meta{Mode: d.mode & 0o7777})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// devTarNodes are /dev's device nodes for fsroot.TarOptions.Nodes.
func devTarNodes() map[string]fsroot.Node {
	m := map[string]fsroot.Node{}
	for _, d := range devNodes {
		if t := d.mode & unix.S_IFMT; t == unix.S_IFCHR || t == unix.S_IFBLK {
			m["dev/"+d.name] = fsroot.Node{Mode: d.mode, Dev: unix.Mkdev(d.major, d.minor)}
		}
	}
	return m
}

// writeBaseFiles writes what mmdebstrap and debootstrap leave in every
// image: an fstab with no root entry, and apt's record of which packages
// were installed only as dependencies, so `apt autoremove` works.
func writeBaseFiles(root *fsroot.Root, plan *lockfile.Plan) error {
	if _, err := root.Lstat("etc/fstab"); err != nil {
		const fstab = "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n"
		if err := root.WriteFile("etc/fstab", strings.NewReader(fstab), int64(len(fstab)), fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
	}
	var b strings.Builder
	for _, p := range plan.Packages {
		if p.AutoInstalled() {
			arch := p.Architecture
			if arch == "all" {
				arch = plan.Architectures[0]
			}
			fmt.Fprintf(&b, "Package: %s\nArchitecture: %s\nAuto-Installed: 1\n\n", p.Name, arch)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := root.MkdirAll("var/lib/apt", 0o755); err != nil {
		return err
	}
	return root.WriteFile("var/lib/apt/extended_states", strings.NewReader(b.String()), int64(b.Len()), fsroot.Meta{Mode: 0o644})
}
