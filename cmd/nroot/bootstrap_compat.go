//go:build linux

package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"nroot/build/lockfile"
	"nroot/internal/progress"
)

// compatFlags are mmdebstrap's options that change no build: its
// verbosity spellings, --dry-run, and the no-op options it keeps for
// debootstrap wrappers (sbuild-createchroot --debootstrap=mmdebstrap).
type compatFlags struct {
	debug, silent, dryRun bool
	noop                  []string
}

// noopOptions are the debootstrap options mmdebstrap accepts and ignores.
var noopOptions = []string{"resolve-deps", "merged-usr", "no-merged-usr", "force-check-gpg"}

func (f *compatFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVarP(&f.debug, "debug", "d", false, "the same as -v (mmdebstrap's --debug)")
	fl.BoolVarP(&f.silent, "silent", "s", false, "the same as -q (mmdebstrap's --silent)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "resolve and print the plan; download, build and run nothing, and leave TARGET alone (mmdebstrap's --dry-run)")
	fl.BoolVar(&f.dryRun, "simulate", false, "the same as --dry-run")
	for _, name := range noopOptions {
		cmd.Flags().Var(&noopValue{f: f, name: name}, name, "accepted and ignored, as mmdebstrap does, for debootstrap wrappers")
		cmd.Flags().Lookup(name).NoOptDefVal = "true"
	}
	// nroot bootstrap --version answers as the mmdebstrap entry point
	// does, on one line, with nroot's own version at its end.
	cmd.Version = version().String()
	cmd.SetVersionTemplate("nroot bootstrap (mmdebstrap-compatible) {{.Version}}\n")
	cmd.Annotations = map[string]string{abbrevAnnotation: "yes"}
}

// apply sets the verbosity and says which options were ignored.
func (f *compatFlags) apply(g *globals) {
	if f.debug {
		g.verbose, g.quiet = true, false
	}
	if f.silent {
		g.verbose, g.quiet = false, true
	}
}

// logNoops says, as mmdebstrap does, that the no-op options were ignored.
func (f *compatFlags) logNoops(log *slog.Logger) {
	for _, name := range f.noop {
		log.Info(fmt.Sprintf("the option --%s is a no-op; it exists for compatibility with debootstrap wrappers", name))
	}
}

type noopValue struct {
	f    *compatFlags
	name string
}

func (v *noopValue) String() string   { return "false" }
func (v *noopValue) Type() string     { return "bool" }
func (v *noopValue) IsBoolFlag() bool { return true }
func (v *noopValue) Set(string) error {
	v.f.noop = append(v.f.noop, v.name)
	return nil
}

// printDryRun prints what a build would install.
func printDryRun(w io.Writer, target string, plan *lockfile.Plan) {
	fmt.Fprintf(w, "dry run: %s would be %s %s, %d packages, %s to download; nothing was written\n",
		target, plan.Codename, plan.Variant, len(plan.Packages), progress.Bytes(plan.TotalSize))
}
