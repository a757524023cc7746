//go:build linux

package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/cobra"

	"nroot/build/hook"
	"nroot/build/rootfs"
	"nroot/build/userns"
)

// customFlags are bootstrap's mmdebstrap options beyond the plan: hooks,
// dpkg and apt options, skipped steps.
type customFlags struct {
	hooks    []hook.Hook
	hookErr  error
	dpkgopts []string
	aptopts  []string
	skip     []string
}

// hookValue is one hook flag. All of them append to one list, so hooks
// keep the order they were given in across flags, as mmdebstrap keeps it.
type hookValue struct {
	f        *customFlags
	stage    string
	chrooted bool
	dir      bool
	name     string
}

func (v *hookValue) String() string { return "" }
func (v *hookValue) Type() string {
	if v.dir {
		return "DIR"
	}
	return "COMMAND"
}

func (v *hookValue) Set(s string) error {
	if v.dir {
		hs, err := hook.Directory(s)
		if err != nil {
			return err
		}
		v.f.hooks = append(v.f.hooks, hs...)
		return nil
	}
	h, err := hook.New(v.stage, s, v.chrooted, "--"+v.name)
	if err != nil {
		return err
	}
	v.f.hooks = append(v.f.hooks, h)
	return nil
}

func (f *customFlags) register(cmd *cobra.Command) {
	for _, st := range hook.Stages {
		cmd.Flags().Var(&hookValue{f: f, stage: st, name: st + "-hook"}, st+"-hook",
			fmt.Sprintf("run COMMAND at the %s stage, as mmdebstrap does: on the host with the image as $1, or a special hook (copy-in, copy-out, tar-in, tar-out, upload, download, sync-in, sync-out)", st))
		cmd.Flags().Var(&hookValue{f: f, stage: st, chrooted: true, name: "chrooted-" + st + "-hook"}, "chrooted-"+st+"-hook",
			fmt.Sprintf("run COMMAND inside the image at the %s stage, through nroot's runner", st))
	}
	cmd.Flags().Var(&hookValue{f: f, dir: true, name: "hook-directory"}, "hook-directory", "run the executable files of DIR named setup*, extract*, essential* and customize* at those stages, in name order")
	cmd.Flags().Var(&hookValue{f: f, dir: true, name: "hook-directory"}, "hook-dir", "the same as --hook-directory")
	cmd.Flags().StringArrayVar(&f.dpkgopts, "dpkgopt", nil, "a dpkg option (or a file of them) for the image's /etc/dpkg/dpkg.cfg.d; path-exclude and path-include are applied while unpacking")
	cmd.Flags().StringArrayVar(&f.aptopts, "aptopt", nil, "an apt option (or a file of them) for the image's /etc/apt/apt.conf.d; options that would change what is resolved are refused")
	cmd.Flags().StringArrayVar(&f.skip, "skip", nil, "leave out a step, with mmdebstrap's names: "+fmt.Sprint(rootfs.Skips))
}

// apply puts the flags into bootstrap's options.
func (f *customFlags) apply(o *rootfs.Options) {
	o.Hooks, o.DpkgOpts, o.AptOpts, o.Skip = f.hooks, f.dpkgopts, f.aptopts, f.skip
}

// hookRun says how nroot runs, for hooks' MMDEBSTRAP_MODE and
// MMDEBSTRAP_VERBOSITY: unshare when asked (root keeps its IDs then, as
// in mmdebstrap) or inside the user namespace auto made without root,
// root otherwise.
func hookRun(o *rootfs.Options, g *globals, mode string, debug bool) {
	o.Mode = "root"
	if mode == "unshare" || userns.Started() || userns.Inside() {
		o.Mode = "unshare"
	}
	o.Verbosity = 1
	switch {
	case g.quiet:
		o.Verbosity = 0
	case debug:
		o.Verbosity = 3 // as mmdebstrap's --debug: its hooks "set -x" at 3
	case g.verbose:
		o.Verbosity = 2
	}
}

// customErr turns an option error into a usage error.
func customErr(err error) error {
	if errors.Is(err, rootfs.ErrBadOption) || errors.Is(err, hook.ErrUsage) {
		return usageErr("%w", err)
	}
	return err
}

// noValidUntilOpt is the --aptopt mmdebstrap users pass for an archived
// snapshot, whose Release is past its Valid-Until.
var noValidUntilOpt = regexp.MustCompile(`(?i)^\s*acquire::check-valid-until\s*(\s|=)\s*"?(false|0|no|off)"?\s*;?\s*$`)

// noValidUntil says an --aptopt turns apt's Valid-Until check off: nroot
// then skips its own, as --no-check-valid-until does.
func noValidUntil(aptopts []string) bool {
	for _, o := range aptopts {
		if noValidUntilOpt.MatchString(o) {
			return true
		}
	}
	return false
}
