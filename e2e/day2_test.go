//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"nroot/build/apt"
	"nroot/build/lockfile"
	"nroot/e2e/ganesha"
	"nroot/internal/fsroot"
	"nroot/node"
	"nroot/node/dracut"
	"nroot/serve/identity"
	"nroot/serve/image"
	"nroot/verify/nfsclient"
)

// kernelABI is what the archive has of the node's kernel, read at run
// time: the release's ABI, and the newest with the suite's -updates and
// -security (whose sources the image's update adds).
type kernelABI struct {
	meta            string // the metapackage nroot node installs
	release, newest string // kernel releases, as uname -r gives them
	newestPackage   string // linux-image-NEWEST
	sources         []lockfile.Source
}

// kernelImage matches a kernel package (not a metapackage): its name
// ends in the kernel release.
var kernelImage = regexp.MustCompile(`^linux-image-([0-9]\S*)$`)

// kernelABIs resolves the node's kernel metapackage from the release
// alone and with -updates and -security, and fails unless the two cross
// a kernel ABI: a day-2 update that keeps the kernel proves nothing of
// its kernel handling.
func kernelABIs(ctx context.Context, suite string, mirrors []string) (kernelABI, error) {
	abi := kernelABI{meta: "linux-image-amd64"}
	if apt.SuiteDistribution(suite) == apt.Ubuntu {
		abi.meta = "linux-image-virtual" // as nroot node chooses for Ubuntu
	}
	resolve := func(releaseOnly bool) (string, *lockfile.Plan, error) {
		cfg := apt.Config{Suite: suite, Variant: "custom", Include: []string{abi.meta}, Mirrors: mirrors, NoUpdates: releaseOnly, NoSecurity: releaseOnly}
		plan, err := apt.Resolve(ctx, cfg, apt.Options{Fetcher: cache(), NoCheckValidUntil: os.Getenv("NROOT_E2E_NO_CHECK_VALID_UNTIL") == "1"})
		if err != nil {
			return "", nil, err
		}
		var found []string
		for _, p := range plan.Packages {
			if m := kernelImage.FindStringSubmatch(p.Name); m != nil {
				found = append(found, m[1])
			}
		}
		if len(found) != 1 {
			return "", nil, fmt.Errorf("%s resolves to kernels %v in %s (release only: %v); want one", abi.meta, found, suite, releaseOnly)
		}
		return found[0], plan, nil
	}
	var err error
	if abi.release, _, err = resolve(true); err != nil {
		return abi, err
	}
	var plan *lockfile.Plan
	if abi.newest, plan, err = resolve(false); err != nil {
		return abi, err
	}
	abi.newestPackage = "linux-image-" + abi.newest
	abi.sources = plan.Sources
	if node.CompareKernels(abi.newest, abi.release) <= 0 {
		return abi, fmt.Errorf("the archive's %s-security and -updates have kernel %s and the release %s: no kernel ABI to cross, so the day-2 update would prove nothing of it; run the e2e against an archive whose security suite has a newer kernel ABI", suite, abi.newest, abi.release)
	}
	return abi, nil
}

// maxSources bounds an APT sources file read from the image.
const maxSources = 1 << 20

// addSuites lists, in the image's APT sources, the suites of sources that
// the image's own sources (written by nroot bootstrap) do not name, with
// that file's components and keyring.
func addSuites(root string, sources []lockfile.Source) error {
	r, err := fsroot.Open(root)
	if err != nil {
		return err
	}
	defer r.Close()
	const dir = "etc/apt/sources.list.d"
	names, err := r.ReadDir(dir)
	if err != nil {
		return err
	}
	field := func(stanza, name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:\s*(.*)$`).FindStringSubmatch(stanza)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	var listed []string
	var components, signedBy string
	for _, n := range names {
		if !strings.HasSuffix(n, ".sources") {
			continue
		}
		b, err := r.ReadFile(path.Join(dir, n), maxSources)
		if err != nil {
			return err
		}
		listed = append(listed, strings.Fields(field(string(b), "Suites"))...)
		if components == "" {
			components, signedBy = field(string(b), "Components"), field(string(b), "Signed-By")
		}
	}
	if components == "" || signedBy == "" {
		return fmt.Errorf("%s/%s: no deb822 sources with Components and Signed-By (nroot bootstrap writes one)", root, dir)
	}
	var b strings.Builder
	b.WriteString("# Added by nroot's e2e before the day-2 update.\n")
	added := 0
	for _, s := range sources {
		if slices.Contains(listed, s.Codename) {
			continue
		}
		fmt.Fprintf(&b, "\nTypes: deb\nURIs: %s\nSuites: %s\nComponents: %s\nSigned-By: %s\n", s.URI, s.Codename, components, signedBy)
		added++
	}
	if added == 0 {
		return fmt.Errorf("%s already lists every suite of %v: it was not built from the release alone", root, listed)
	}
	return r.WriteFile(path.Join(dir, "nroot-e2e-updates.sources"), strings.NewReader(b.String()), int64(b.Len()), fsroot.Meta{Mode: 0o644})
}

// verifyGenerationInitrd checks the generation's initramfs (the one
// copied beside its root) against its recorded kernel: dracut's modules
// and that kernel's own modules.
func verifyGenerationInitrd(im image.Image, g image.Generation) error {
	f, err := os.Open(filepath.Join(filepath.Dir(im.Root(g.ID)), "initrd.img"))
	if err != nil {
		return err
	}
	defer f.Close()
	checks, _, err := dracut.Verify(f, dracut.Options{NFS: true, Overlay: true, Kver: g.Kernel, Rootfs: im.Root(g.ID)})
	if err != nil {
		return fmt.Errorf("generation %d's initramfs: %w", g.ID, err)
	}
	for _, c := range checks {
		if !c.Passed() {
			return fmt.Errorf("generation %d's initramfs for %s: %s: %s", g.ID, g.Kernel, c.Name, c.Detail)
		}
	}
	return nil
}

// exportHoldsNoIdentity walks everything the NFS server serves, over
// NFSv4 from its pseudo root as a node could, and fails if any node's
// identity is reachable: its segment (IMAGE/nodes/NAME.img, which holds
// its private host keys), the nodes/ directory, or a private host key
// file. The segments must exist in the image (or the check would be
// empty), and the walk must reach the generations nodes boot.
func exportHoldsNoIdentity(ctx context.Context, t *testing.T, srv *ganesha.Server, im image.Image, ids map[string]*identity.Identity) error {
	segments := map[string]bool{}
	for name := range ids {
		seg := name + ".img"
		if _, err := os.Stat(filepath.Join(im.Dir, "nodes", seg)); err != nil {
			return fmt.Errorf("node %s has no segment in the image: %w", name, err)
		}
		segments[seg] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	tree, err := walkPseudoRoot(ctx, t, srv)
	if err != nil {
		return err
	}
	if err := identityReachable(tree, segments); err != nil {
		return err
	}
	for _, p := range []string{"nroot/generations/1/root/etc/os-release", "nroot/generations/1/vmlinuz", "check/etc/os-release"} {
		if tree[p] == nil {
			return fmt.Errorf("the walk from the pseudo root did not reach %s (%d entries)", p, len(tree))
		}
	}
	return nil
}

// walkPseudoRoot walks everything the server serves over NFSv4: the
// pseudo root's entries, each walked on its own (two exports of one
// directory are one directory met twice, which a single walk refuses as
// a loop). Paths are given from the pseudo root.
func walkPseudoRoot(ctx context.Context, t *testing.T, srv *ganesha.Server) (nfsclient.Tree, error) {
	target := nfsclient.Target{Host: srv.Addr(), NFSPort: srv.NFSPort, Path: "/", Version: 4}
	c, err := nfsclient.Mount(ctx, target)
	if err != nil {
		return nil, err
	}
	top, err := c.ReadDirPlus(ctx, c.Root, 1000)
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("listing the NFS server's pseudo root: %w", err)
	}
	tree := nfsclient.Tree{}
	for _, e := range top {
		start := time.Now()
		target.Path = "/" + e.Name
		c, err := nfsclient.Mount(ctx, target)
		if err != nil {
			return nil, err
		}
		var stats nfsclient.Stats
		sub, err := nfsclient.WalkRemote(ctx, c, nfsclient.WalkOptions{}, &stats)
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("walking %s from the NFS server's pseudo root: %w", target.Path, err)
		}
		for p, n := range sub {
			tree[path.Join(e.Name, p)] = n
		}
		t.Logf("NFSv4 %s: %d entries in %.1fs", target.Path, stats.Entries, time.Since(start).Seconds())
	}
	return tree, nil
}

// privateHostKey is an SSH private host key's file name.
var privateHostKey = regexp.MustCompile(`^ssh_host_[a-z0-9]+_key$`)

// identityReachable names the first path of tree that holds, or may
// hold, a node's identity.
func identityReachable(tree nfsclient.Tree, segments map[string]bool) error {
	var bad []string
	for p := range tree {
		base := path.Base(p)
		if segments[base] || base == "nodes" && !strings.Contains(p, "/root/") || privateHostKey.MatchString(base) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("the NFS server serves a node's identity: %s", strings.Join(firstN(bad, 5), ", "))
	}
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("(%d more)", len(s)-n))
	}
	return s
}
