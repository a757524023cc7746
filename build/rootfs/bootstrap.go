package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"nroot/build/apt"
	"nroot/build/hook"
	"nroot/build/lockfile"
	"nroot/build/nspawn"
	"nroot/format/keyring"
	"nroot/internal/fetch"
	"nroot/internal/fsroot"
	"nroot/internal/progress"
)

// Options control Bootstrap.
type Options struct {
	// Config says what to resolve; ignored with FromLock.
	Config apt.Config
	Apt    apt.Options
	// FromLock rebuilds exactly this plan, resolving nothing.
	FromLock *lockfile.Plan
	// Format is one of Formats: dir (the default), a tarball, an image
	// file, or null (build, run the hooks, keep nothing).
	Format string
	// Stdout receives the tarball when target is "-".
	Stdout io.Writer
	// SourceDateEpoch, when set, clamps every mtime.
	SourceDateEpoch time.Time
	// Jobs bounds parallel downloads.
	Jobs int
	// Progress receives the progress bars (lines when it is no terminal).
	Progress io.Writer
	// Log receives the stage lines and, one record per line, what dpkg,
	// the maintainer scripts and the hooks print (progress.Output).
	Log *slog.Logger
	// Hooks run at mmdebstrap's stages: setup before unpacking, extract
	// after it, essential once the essential set is configured, customize
	// once everything is and the APT sources are written, before the
	// clean-up. A failing hook fails the build.
	Hooks []hook.Hook
	// DpkgOpts and AptOpts are mmdebstrap's --dpkgopt and --aptopt: each
	// an option, or a file of them. They are written to the image's
	// /etc/dpkg/dpkg.cfg.d/99nroot and /etc/apt/apt.conf.d/99nroot;
	// path-exclude and path-include are applied while unpacking.
	DpkgOpts, AptOpts []string
	// Skip names steps to leave out, with mmdebstrap's names (Skips).
	Skip []string
	// Mode and Verbosity are given to hooks as MMDEBSTRAP_MODE ("root"
	// when empty) and MMDEBSTRAP_VERBOSITY (0 quiet, 1 normal, 2
	// verbose).
	Mode      string
	Verbosity int
}

// Result reports what Bootstrap did.
type Result struct {
	Plan       *lockfile.Plan           `json:"plan"`
	Target     string                   `json:"target"`
	Format     string                   `json:"format"`
	Configured bool                     `json:"configured"`
	Note       string                   `json:"note,omitempty"`
	Timings    map[string]time.Duration `json:"timings_ns"`
	// Filtered counts what --dpkgopt path-exclude left out.
	Filtered *Filtered `json:"filtered,omitempty"`
}

// Filtered is what dpkg path filters left out of an image.
type Filtered struct {
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// Bootstrap builds a root filesystem at target: resolve (or replay a
// lock), fetch, unpack, configure inside systemd-nspawn, write APT
// sources, clean up. It builds in a temporary directory beside target and
// renames it into place at the end, so a failure or an interrupt leaves
// target as it was.
func Bootstrap(ctx context.Context, target string, o Options) (res *Result, err error) {
	if o.Format == "" {
		o.Format = "dir"
	}
	if !slices.Contains(Formats, o.Format) {
		return nil, fmt.Errorf("bootstrap: unknown format %q (one of %s)", o.Format, strings.Join(Formats, ", "))
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := checkTarget(target, o.Format, o.Stdout); err != nil {
		return nil, err
	}
	c, err := newCustom(o)
	if err != nil {
		return nil, err
	}
	if isImage(o.Format) && devPlaceholders(o, c.skip) {
		// squashfs and erofs are written from the tree as it is: /dev's
		// nodes must be real.
		return nil, fmt.Errorf("bootstrap: --format %s needs /dev's device nodes made, which this process cannot (not root); run as root, or pass --skip=output/dev", o.Format)
	}
	res = &Result{Target: target, Format: o.Format, Timings: map[string]time.Duration{}}
	step := func(name string, start time.Time) {
		res.Timings[name] = time.Since(start)
		o.Log.Info(fmt.Sprintf("done in %.2f s", time.Since(start).Seconds()), "stage", name)
	}

	t := time.Now()
	plan := o.FromLock
	if plan == nil {
		cfg := o.Config
		cfg.MergedUsr = true
		if plan, err = apt.Resolve(ctx, cfg, o.Apt); err != nil {
			return nil, err
		}
	}
	res.Plan = plan
	step("resolve", t)

	fetcher := o.Apt.Fetcher
	if fetcher == nil {
		fetcher = fetch.NewFetcher("")
	}
	// Packages unpack as they arrive: the downloads run on while the
	// build directory is made, the setup hooks run and the first
	// packages unpack. The unpack bar is shown once the fetch bar is
	// done, so that one bar is drawn at a time.
	ctx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	arrivals := NewArrivals(plan)
	unpackBar := &gatedWriter{w: o.Progress}
	var unpackProgress io.Writer
	if o.Progress != nil {
		unpackProgress = unpackBar
	}
	fetchErr := make(chan error, 1)
	go func(t time.Time) {
		err := fetchInto(ctx, plan, fetcher, o.Jobs, o.Progress, arrivals)
		if err == nil {
			step("fetch", t)
		}
		unpackBar.open()
		fetchErr <- err
	}(time.Now())
	// Whatever fails before the downloads end waits for them to stop,
	// so nothing writes to the cache or the terminal after Bootstrap
	// returns.
	fetching := true
	defer func() {
		if fetching {
			cancelFetch()
			<-fetchErr
		}
	}()
	waitFetch := func() error {
		fetching = false
		if err := <-fetchErr; err != nil {
			return fmt.Errorf("bootstrap: fetch: %w", err)
		}
		return nil
	}

	// Absolute: hooks get it as $1 and run in the caller's directory.
	tmp, err := buildDir(target, o.Format)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()

	hookOut := progress.Output(o.Log, "hook")
	defer hookOut.Flush()
	env := hookEnv(tmp, plan, hookOut, o)
	if len(c.hooks) > 0 {
		aptConf, remove, err := writeAptConfig(tmp, plan, loadedKeyrings(o), c.aptCfg)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: apt configuration for hooks: %w", err)
		}
		defer remove()
		env.AptConfig = aptConf
	}
	if err := c.setup(ctx, tmp, env, !c.skip.has("output/dev") && !c.skip.has("output/mknod") && canMknod()); err != nil {
		return nil, fmt.Errorf("bootstrap: setup: %w", err)
	}

	if laterHooks(c.hooks) || c.skip.has("cleanup/apt/lists") {
		ao := o.Apt
		ao.Fetcher = fetcher
		if err := writeAptLists(ctx, tmp, plan, ao, o.Log); err != nil {
			return nil, fmt.Errorf("bootstrap: apt lists: %w", err)
		}
	}

	t = time.Now()
	uo := UnpackOptions{ClampMtime: o.SourceDateEpoch, Progress: unpackProgress, TarCache: filepath.Join(fetcher.CacheDir, "unpacked"), Arrivals: arrivals}
	if !c.filter.Empty() {
		uo.Filter = c.filter
	}
	pkgs, err := Unpack(ctx, plan, nil, tmp, uo)
	if err != nil {
		cancelFetch() // a failed unpack needs no more downloads
	}
	if ferr := waitFetch(); ferr != nil && (err == nil || !errors.Is(ferr, context.Canceled)) {
		return nil, ferr // the cause, rather than an unpack that waited for it
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if uo.Filter != nil {
		res.Filtered = &Filtered{}
		for _, p := range pkgs {
			res.Filtered.Entries += p.manifest.Filtered
			res.Filtered.Bytes += p.manifest.FilteredSize
		}
	}
	step("unpack", t)
	if laterHooks(c.hooks) {
		// The image's APT sources, as mmdebstrap has them before its
		// hooks, for apt run by a hook inside the image or with Dir at
		// it. Written once the keyring packages are unpacked, so that
		// Signed-By names theirs, as the final sources do.
		if err := writeImageSources(tmp, plan, o); err != nil {
			return nil, fmt.Errorf("bootstrap: apt sources: %w", err)
		}
	}
	if err := hook.Run(ctx, c.hooks, hook.Extract, env); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	// As in mmdebstrap, the extract variant installs nothing and runs no
	// essential or customize hooks; custom installs what was asked and
	// runs them, whether the packages could be configured or not.
	installs := plan.Variant != "extract" && plan.Variant != "custom"
	laterHooks := plan.Variant != "extract"

	t = time.Now()
	// The extract variant only unpacks, as mmdebstrap's extracts: no
	// maintainer script runs, and nothing is left to configure.
	if plan.Variant != "extract" {
		if err := configureStage(ctx, tmp, target, plan, pkgs, c, env, installs, o, res); err != nil {
			return nil, err
		}
	}
	if res.Configured {
		step("configure", t)
	}

	t = time.Now()
	if err := prepare(tmp, plan, o, c.skip); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if laterHooks && !res.Configured && hook.Has(c.hooks, hook.Essential) {
		if err := hook.Run(ctx, c.hooks, hook.Essential, env); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	if laterHooks && hook.Has(c.hooks, hook.Customize) {
		if err := customize(ctx, tmp, c, env); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	if err := finish(tmp, o, c.skip); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := output(ctx, tmp, target, o, c.skip); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if o.Format == "dir" {
		tmp = "" // moved into place
	}
	step("finish", t)
	return res, nil
}

// configureStage runs the maintainer scripts (and the essential hooks
// between the essential set and the rest) when this host can run the
// image's programs. When it cannot, the packages stay unpacked, res.Note
// says how to finish with nroot configure, and hooks that need a
// configured image are refused.
func configureStage(ctx context.Context, tmp, target string, plan *lockfile.Plan, pkgs []*Unpacked, c *custom, env hook.Env, installs bool, o Options, res *Result) error {
	if archErr := nspawn.CheckArch(tmp); archErr != nil {
		if installs && (hook.Has(c.hooks, hook.Essential) || hook.Has(c.hooks, hook.Customize)) {
			return fmt.Errorf("bootstrap: %w; essential and customize hooks need a configured image", archErr)
		}
		res.Note = strings.ReplaceAll(archErr.Error(), tmp, target) + "; the packages are unpacked but not configured: run `nroot configure " + target + "` on a " + plan.Architectures[0] + " host (or one with a binfmt handler for it) to finish"
		o.Log.Warn("not configured", "why", archErr)
		return nil
	}
	stageOf := map[string]string{}
	for _, p := range plan.Packages {
		stageOf[p.Name] = p.Stage
	}
	out := progress.Output(o.Log, "configure")
	defer out.Flush()
	var afterEssential func() error
	if (installs || plan.Variant == "custom") && hook.Has(c.hooks, hook.Essential) {
		afterEssential = func() error { return hook.Run(ctx, c.hooks, hook.Essential, env) }
	}
	if err := configure(ctx, tmp, pkgs, stageOf, out, afterEssential); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	res.Configured = true
	return nil
}

// laterHooks says hooks run after the packages are unpacked.
func laterHooks(hooks []hook.Hook) bool {
	return hook.Has(hooks, hook.Extract) || hook.Has(hooks, hook.Essential) || hook.Has(hooks, hook.Customize)
}

// writeImageSources writes the image's APT sources.
func writeImageSources(dir string, plan *lockfile.Plan, o Options) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeSources(root, plan, loadedKeyrings(o))
}

// customize runs the customize hooks as mmdebstrap runs them: services
// cannot start (policy-rc.d and the fake start-stop-daemon are back in
// place), and afterwards the real start-stop-daemon is put back and
// policy-rc.d removed, whatever the hooks did to them.
func customize(ctx context.Context, dir string, c *custom, env hook.Env) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if root.IsDir("usr/sbin") { // as mmdebstrap: none in an image without it
		undo, err := installShims(root)
		defer undo()
		if err != nil {
			return fmt.Errorf("customize: %w", err)
		}
	}
	return hook.Run(ctx, c.hooks, hook.Customize, env)
}

// prepare writes APT sources, the base files and /dev: the image as
// customize hooks see it.
func prepare(dir string, plan *lockfile.Plan, o Options, skip skipSet) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := writeSources(root, plan, loadedKeyrings(o)); err != nil {
		return fmt.Errorf("apt sources: %w", err)
	}
	if err := writeBaseFiles(root, plan); err != nil {
		return err
	}
	if !skip.has("output/dev") {
		if err := makeDev(root, !skip.has("output/mknod"), devPlaceholders(o, skip)); err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
	}
	return nil
}

// loadedKeyrings are the keyrings a plan's sources may name: the bundled
// ones, and the user's as "user".
func loadedKeyrings(o Options) map[string]*keyring.Keyring {
	rings := map[string]*keyring.Keyring{}
	for _, k := range keyring.Bundled() {
		rings[k.Name] = k
	}
	if len(o.Apt.Keyrings) > 0 {
		rings["user"] = keyring.Merge("user", o.Apt.Keyrings...)
	}
	return rings
}

// finish removes build leftovers and clamps mtimes.
func finish(dir string, o Options, skip skipSet) error {
	root, err := fsroot.Open(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := cleanup(root, skip); err != nil {
		return fmt.Errorf("clean-up: %w", err)
	}
	if !o.SourceDateEpoch.IsZero() {
		return clampMtimes(dir, o.SourceDateEpoch)
	}
	return nil
}

// devPlaceholders says /dev gets placeholders for its device nodes: a
// tarball is written by a process that may not make them.
func devPlaceholders(o Options, skip skipSet) bool {
	return o.Format != "dir" && !skip.has("output/dev") && !skip.has("output/mknod") && !canMknod()
}

// gatedWriter drops what is written to it until it is opened, and
// passes it on to w (which may be nil) afterwards. It has w's Fd, so
// that a progress bar drawn through it is redrawn on a terminal.
type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	isOpen bool
}

func (g *gatedWriter) open() {
	g.mu.Lock()
	g.isOpen = true
	g.mu.Unlock()
}

// Fd is w's file descriptor, or an invalid one when w is no file.
func (g *gatedWriter) Fd() uintptr {
	if f, ok := g.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOpen || g.w == nil {
		return len(p), nil
	}
	return g.w.Write(p)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
