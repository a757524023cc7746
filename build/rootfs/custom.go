package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"nroot/build/apt"
	"nroot/build/deb"
	"nroot/build/hook"
	"nroot/build/lockfile"
	"nroot/build/nspawn"
	"nroot/format/keyring"
	"nroot/internal/fsroot"
)

// Skips are the mmdebstrap --skip names nroot honours; each names a step
// a build leaves out.
var Skips = []string{
	"cleanup", "cleanup/apt", "cleanup/apt/lists", "cleanup/apt/cache",
	"cleanup/mmdebstrap", "cleanup/reproducible", "cleanup/reproducible/machine-id",
	"cleanup/run", "cleanup/tmp",
	"output/dev", "output/mknod",
	"essential/unlink", // nroot never leaves .debs in the image: nothing to skip

}

// ErrBadOption marks a --skip, --dpkgopt or --aptopt value nroot cannot
// honour.
var ErrBadOption = errors.New("option")

// skipSet answers whether a step is skipped: by its own name or by one
// above it ("cleanup/apt" skips "cleanup/apt/lists").
type skipSet map[string]bool

func newSkipSet(names []string) (skipSet, error) {
	s := skipSet{}
	for _, n := range names {
		for _, f := range strings.FieldsFunc(n, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !slices.Contains(Skips, f) {
				return nil, fmt.Errorf("%w: --skip=%s: nroot has no such step (it skips %s)", ErrBadOption, f, strings.Join(Skips, ", "))
			}
			s[f] = true
		}
	}
	return s, nil
}

func (s skipSet) has(step string) bool {
	for {
		if s[step] {
			return true
		}
		i := strings.LastIndexByte(step, '/')
		if i < 0 {
			return false
		}
		step = step[:i]
	}
}

// optionLines turns --dpkgopt or --aptopt values into configuration
// lines: a value naming an existing file gives that file's lines, as in
// mmdebstrap.
func optionLines(flag string, values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s=%s: %v", ErrBadOption, flag, v, err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					out = append(out, l)
				}
			}
			continue
		}
		if strings.ContainsAny(v, "\n\x00") {
			return nil, fmt.Errorf("%w: %s=%q: one option per flag, on one line", ErrBadOption, flag, v)
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out, nil
}

// aptoptsRefused are apt options that would change what apt resolves or
// fetches. nroot resolves without apt, so honouring them silently would
// build something else than asked: they are refused.
var aptoptsRefused = []string{
	"apt::install-recommends", "apt::install-suggests", "apt::default-release",
	"apt::architecture", "apt::architectures", "apt::get::allowunauthenticated",
	"acquire::allowinsecurerepositories", "acquire::allowdowngradetoinsecurerepositories",
	"apt::solver", "dir",
}

// custom is what a build does beyond the plan: dpkg and apt options,
// hooks and skipped steps.
type custom struct {
	skip    skipSet
	filter  *deb.PathFilter
	dpkgCfg []string
	aptCfg  []string
	hooks   []hook.Hook
}

// CheckOptions refuses what Bootstrap would refuse in o's --dpkgopt,
// --aptopt and --skip, without building: a dry run says what the build
// would.
func CheckOptions(o Options) error {
	_, err := newCustom(o)
	return err
}

func newCustom(o Options) (*custom, error) {
	c := &custom{hooks: o.Hooks, filter: &deb.PathFilter{}}
	var err error
	if c.skip, err = newSkipSet(o.Skip); err != nil {
		return nil, err
	}
	if c.dpkgCfg, err = optionLines("--dpkgopt", o.DpkgOpts); err != nil {
		return nil, err
	}
	for _, l := range c.dpkgCfg {
		if err := c.filter.AddOption(l); err != nil && !errors.Is(err, deb.ErrNotPathOption) {
			return nil, fmt.Errorf("%w: --dpkgopt=%s: %v", ErrBadOption, l, err)
		}
	}
	if c.aptCfg, err = optionLines("--aptopt", o.AptOpts); err != nil {
		return nil, err
	}
	for i, l := range c.aptCfg {
		name := strings.ToLower(strings.TrimSpace(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' || r == '"' || r == '{' })[0]))
		for _, r := range []string{"acquire::http::proxy", "acquire::https::proxy", "acquire::ftp::proxy"} {
			if name == r || strings.HasPrefix(name, r+"::") {
				return nil, fmt.Errorf("%w: --aptopt=%s: nroot downloads without apt and would not use this proxy; set http_proxy or https_proxy in the environment instead", ErrBadOption, l)
			}
		}
		for _, r := range aptoptsRefused {
			if name == r || strings.HasPrefix(name, r+"::") {
				if r == "apt::install-recommends" || r == "apt::install-suggests" {
					if v := strings.ToLower(l); strings.Contains(v, `"false"`) || strings.Contains(v, `"0"`) {
						continue // what nroot does anyway
					}
				}
				return nil, fmt.Errorf("%w: --aptopt=%s: nroot resolves packages itself and does not apply %s; use nroot's own flags (--include, --architectures, --keyring)", ErrBadOption, l, name)
			}
		}
		if !strings.HasSuffix(l, ";") && !strings.HasSuffix(l, "}") {
			c.aptCfg[i] = l + ";" // as mmdebstrap completes them
		}
	}
	return c, nil
}

// setupDirs are the directories mmdebstrap makes before its setup hooks
// run, so that a hook can write "$1/etc/passwd" or run apt on the image.
var setupDirs = []string{
	"etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/apt/preferences.d",
	"var/cache/apt", "var/lib/apt/lists/partial", "var/lib/dpkg", "etc/dpkg/dpkg.cfg.d",
	"var/log/apt", "var/lib/dpkg/triggers", "var/lib/dpkg/info", "var/lib/dpkg/alternatives",
	"var/lib/dpkg/updates",
}

// setup makes the directories mmdebstrap makes, and /dev when mkdev is
// set (as mmdebstrap does where it may mknod), writes the dpkg and apt
// options into the image, so that dpkg and apt run later inside it
// follow them, then runs the setup hooks.
func (c *custom) setup(ctx context.Context, dir string, env hook.Env, mkdev bool) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, d := range setupDirs {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := root.MkdirAll("tmp", 0o755); err != nil {
		return err
	}
	if err := root.SetDirMeta("tmp", fsroot.Meta{Mode: 0o1777}); err != nil {
		return err
	}
	if _, err := root.Lstat("var/lib/dpkg/status"); err != nil { // apt needs one
		if err := root.WriteFile("var/lib/dpkg/status", strings.NewReader(""), 0, fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
	}
	if mkdev {
		if err := makeDev(root, true, false); err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
	}
	for _, f := range []struct {
		dir   string
		lines []string
	}{{"etc/dpkg/dpkg.cfg.d", c.dpkgCfg}, {"etc/apt/apt.conf.d", c.aptCfg}} {
		if len(f.lines) == 0 {
			continue
		}
		body := "# Written by nroot bootstrap from its command line.\n" + strings.Join(f.lines, "\n") + "\n"
		if err := root.WriteFile(f.dir+"/99nroot", strings.NewReader(body), int64(len(body)), fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
	}
	return hook.Run(ctx, c.hooks, hook.Setup, env)
}

// hookEnv is the environment of the build's hooks.
func hookEnv(dir string, plan *lockfile.Plan, out io.Writer, o Options) hook.Env {
	var essential []string
	for _, p := range plan.Packages {
		if p.Essential || p.Stage == "essential" {
			essential = append(essential, p.Name)
		}
	}
	mode := o.Mode
	if mode == "" {
		mode = "root"
	}
	return hook.Env{
		Target: dir, Mode: mode, Include: plan.Include, Essential: essential,
		Verbosity: o.Verbosity, Stdout: out, Stderr: out,
		Chroot: func(ctx context.Context, command string, env []string) error {
			r, err := nspawn.New(dir)
			if err != nil {
				return err
			}
			r.Env = append(r.Env, env...)
			r.Stdout, r.Stderr = out, out
			return r.Run(ctx, "/bin/sh", "-c", command)
		},
	}
}

// writeAptConfig writes, in a new directory outside the image, the apt
// configuration hooks get as MMDEBSTRAP_APT_CONFIG. apt run with it works
// on the image at dir: its state, cache, lists and dpkg database are the
// image's, dpkg runs chrooted into it, and its sources are the plan's,
// signed by the plan's keyrings. Its configuration directories are empty
// ones beside the file, so neither the host's nor the image's
// configuration is read; the --aptopt lines are in the file. remove
// deletes the directory.
func writeAptConfig(dir string, plan *lockfile.Plan, rings map[string]*keyring.Keyring, aptopts []string) (file string, remove func(), err error) {
	top, err := os.MkdirTemp("", "nroot-apt-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(top) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	// apt reads the keyrings as its _apt user.
	if err := os.Chmod(top, 0o755); err != nil {
		return "", nil, err
	}
	etc := filepath.Join(top, "etc")
	for _, d := range []string{"apt.conf.d", "preferences.d", "trusted.gpg.d", "sources.list.d"} {
		if err := os.MkdirAll(filepath.Join(etc, d), 0o755); err != nil {
			return "", nil, err
		}
	}
	signedBy := map[string]string{}
	for _, k := range plan.Keyrings {
		if kr := rings[k.Name]; kr != nil {
			p := filepath.Join(top, "keyring-"+safeName(k.Name)+".pgp")
			if err := os.WriteFile(p, kr.Raw, 0o644); err != nil {
				return "", nil, err
			}
			signedBy[k.Name] = p
		}
	}
	sources := sourcesText(plan, signedBy)
	if err := os.WriteFile(filepath.Join(etc, "sources.list.d", "nroot.sources"), []byte(sources), 0o644); err != nil {
		return "", nil, err
	}
	var b strings.Builder
	b.WriteString("# Written by nroot bootstrap for its hooks: apt on the image being built.\n")
	q := func(s string) string { return strconv.Quote(s) }
	fmt.Fprintf(&b, "Dir %s;\n", q(dir+"/"))
	fmt.Fprintf(&b, "Dir::State::Status %s;\n", q(dir+"/var/lib/dpkg/status"))
	fmt.Fprintf(&b, "Dir::Etc %s;\n", q(etc+"/"))
	fmt.Fprintf(&b, "Dir::Etc::Main \"apt.conf\";\nDir::Etc::Parts \"apt.conf.d\";\n")
	fmt.Fprintf(&b, "DPkg::Chroot-Directory %s;\n", q(dir))
	if len(plan.Architectures) > 0 {
		fmt.Fprintf(&b, "APT::Architecture %s;\nAPT::Architectures {", q(plan.Architectures[0]))
		for _, a := range plan.Architectures {
			fmt.Fprintf(&b, " %s;", q(a))
		}
		b.WriteString(" };\n")
	}
	b.WriteString("APT::Install-Recommends \"false\";\nAcquire::Languages \"none\";\n")
	for _, l := range aptopts {
		b.WriteString(l + "\n")
	}
	file = filepath.Join(top, "apt.conf")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return "", nil, err
	}
	return file, remove, nil
}

// maxAptList bounds one Packages index copied into the image.
const maxAptList = 1 << 30

// writeAptLists leaves in the image's var/lib/apt/lists what apt-get
// update would have: each source's InRelease and Packages indices, under
// apt's names, as mmdebstrap has them from its extract hooks on. So apt
// run by a hook (through MMDEBSTRAP_APT_CONFIG, or inside the image)
// installs without an update first. Every file is verified again: the
// InRelease against its signature and the plan's hash, each index
// against the InRelease. A source whose InRelease changed since the plan
// (an old lock) gets no lists, and a warning.
func writeAptLists(ctx context.Context, dir string, plan *lockfile.Plan, ao apt.Options, log *slog.Logger) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.MkdirAll("var/lib/apt/lists/partial", 0o755); err != nil {
		return err
	}
	for _, s := range plan.Sources {
		src := &apt.Source{URI: s.URI, Suite: s.Suite, Components: s.Components}
		d, err := apt.OpenDist(ctx, src, ao)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn("no apt lists in the image for hooks", "suite", s.Suite, "why", err)
			continue
		}
		if d.InReleaseSHA256 != s.InReleaseSHA256 || !strings.HasSuffix(d.URL, "/InRelease") {
			log.Warn("no apt lists in the image for hooks: the suite changed since the plan", "suite", s.Suite)
			continue
		}
		data, err := ao.Fetcher.GetMeta(ctx, d.URL)
		if err != nil {
			return err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != s.InReleaseSHA256 {
			log.Warn("no apt lists in the image for hooks: the suite changed since the plan", "suite", s.Suite)
			continue
		}
		prefix := "var/lib/apt/lists/" + aptListName(strings.TrimRight(s.URI, "/")+"/dists/"+s.Codename+"/")
		if err := root.WriteFile(prefix+"InRelease", bytes.NewReader(data), int64(len(data)), fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
		for _, comp := range s.Components {
			for _, arch := range plan.Architectures {
				_, r, err := d.FetchIndex(ctx, ao.Fetcher, comp, arch)
				if err != nil {
					return err
				}
				if r == nil {
					continue
				}
				b, err := io.ReadAll(io.LimitReader(r, maxAptList))
				r.Close()
				if err != nil {
					return err
				}
				if err := root.WriteFile(prefix+aptListName(comp+"/binary-"+arch+"/Packages"), bytes.NewReader(b), int64(len(b)), fsroot.Meta{Mode: 0o644}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// aptListName is apt's file name in its lists directory for a URI (its
// URItoFileName): no scheme, user or password, apt's special characters
// percent-quoted, "/" turned into "_".
func aptListName(uri string) string {
	if i := strings.Index(uri, "://"); i >= 0 {
		uri = uri[i+3:]
	}
	if at := strings.IndexByte(uri, '@'); at >= 0 && at < strings.IndexByte(uri+"/", '/') {
		uri = uri[at+1:]
	}
	var b strings.Builder
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		switch {
		case c == '/':
			b.WriteByte('_')
		case strings.IndexByte("\\|{}[]<>\"^~_=!@#$%*", c) >= 0 || c <= 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "%%%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
