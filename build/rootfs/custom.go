package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"nroot/build/deb"
	"nroot/build/hook"
	"nroot/build/lockfile"
	"nroot/build/nspawn"
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

// setup writes the dpkg and apt options into the image, so that dpkg and
// apt run later inside it follow them, then runs the setup hooks.
func (c *custom) setup(ctx context.Context, dir string, env hook.Env) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range []struct {
		dir   string
		lines []string
	}{{"etc/dpkg/dpkg.cfg.d", c.dpkgCfg}, {"etc/apt/apt.conf.d", c.aptCfg}} {
		if len(f.lines) == 0 {
			continue
		}
		if err := root.MkdirAll(f.dir, 0o755); err != nil {
			return err
		}
		body := "# Written by nroot bootstrap from its command line.\n" + strings.Join(f.lines, "\n") + "\n"
		if err := root.WriteFile(f.dir+"/99nroot", strings.NewReader(body), int64(len(body)), fsroot.Meta{Mode: 0o644}); err != nil {
			return err
		}
	}
	return hook.Run(ctx, c.hooks, hook.Setup, env)
}

// hookEnv is the environment of the build's hooks.
func hookEnv(dir string, plan *lockfile.Plan, out io.Writer) hook.Env {
	var essential []string
	for _, p := range plan.Packages {
		if p.Essential || p.Stage == "essential" {
			essential = append(essential, p.Name)
		}
	}
	return hook.Env{
		Target: dir, Mode: "root", Include: plan.Include, Essential: essential,
		Verbosity: 1, Stdout: out, Stderr: out,
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
