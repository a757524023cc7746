package main

import (
	"fmt"
	"nroot/internal/usage"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"nroot/build/apt"
	"nroot/build/lockfile"
	"nroot/format/keyring"
	"nroot/internal/atomicfile"
	"nroot/internal/fetch"
	"nroot/internal/progress"
)

// aptFlags are the flags shared by every command that reads an archive.
type aptFlags struct {
	variant           string
	include, exclude  []string
	components        []string
	archs             []string
	keyrings          []string
	noCheckValidUntil bool
	noUpdates         bool
	noSecurity        bool
	allowOlder        bool
}

func (f *aptFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.variant, "variant", "important", "package set, as mmdebstrap: "+strings.Join(apt.Variants, ", "))
	fl.Var(includeValue{&f.include}, "include", "extra packages, comma-separated; repeatable; an entry starting with /, ./ or ../ is a .deb file (or a directory of them) to install, its dependencies resolved from the archive; an apt pattern ?exact-name(NAME), or ?or(...) of them, names packages exactly")
	fl.StringSliceVar(&f.exclude, "exclude", nil, "packages never to install, comma-separated; repeatable")
	fl.Var(newWordsValue(&f.components, []string{"main"}), "components", "archive components, comma- or space-separated; repeatable")
	fl.Var(newWordsValue(&f.archs, []string{apt.HostArch()}), "architectures", "architectures, native first, comma- or space-separated; repeatable")
	fl.StringArrayVar(&f.keyrings, "keyring", nil, "trust this keyring file (armored or binary), or the *.gpg and *.asc keyrings of this directory (as /usr/share/keyrings or /etc/apt/trusted.gpg.d), instead of the bundled ones; repeatable")
	fl.BoolVar(&f.noCheckValidUntil, "no-check-valid-until", false, "accept a Release past its Valid-Until (archived snapshots)")
	fl.BoolVar(&f.allowOlder, "allow-older-release", false, "accept a Release older than one seen before for the same suite and mirror (snapshots); otherwise refused as a rollback")
	fl.BoolVar(&f.noUpdates, "no-updates", false, "leave out SUITE-updates (otherwise added, and required, for Debian and Ubuntu)")
	fl.BoolVar(&f.noSecurity, "no-security", false, "leave out SUITE-security (otherwise added, and required, for Debian and Ubuntu); recorded in the plan")
}

// config is the configuration the flags give; package files given to
// --include are read here, so a bad one is a usage error before any
// work.
func (f *aptFlags) config(suite string, mirrors []string) (apt.Config, error) {
	names, local, err := apt.SplitIncludes(f.include)
	if err != nil {
		return apt.Config{}, usageErr("%w", err)
	}
	if mirrors, err = sourceArgs(mirrors); err != nil {
		return apt.Config{}, err
	}
	if suite == "" {
		suite = suiteFromSources(mirrors)
	}
	variant := f.variant
	if variant == "-" {
		variant = "debootstrap" // mmdebstrap's other spelling of it
	}
	return apt.Config{
		Suite: suite, Mirrors: mirrors, Components: f.components, Archs: f.archs,
		Variant: variant, Include: names, Local: local, Exclude: f.exclude,
		NoUpdates: f.noUpdates, NoSecurity: f.noSecurity,
	}, nil
}

func (f *aptFlags) options(g *globals) (apt.Options, error) {
	o := apt.Options{NoCheckValidUntil: f.noCheckValidUntil, AllowOlderRelease: f.allowOlder, Log: g.logger()}
	if g.cacheDir != "" {
		if fi, err := os.Stat(g.cacheDir); err == nil && !fi.IsDir() {
			return o, usageErr("--cache-dir %s: not a directory", g.cacheDir)
		} else if err == nil {
			if err := fetch.CheckPrivateDir(g.cacheDir); err != nil {
				return o, usageErr("--cache-dir: %w", err)
			}
		}
	}
	o.Fetcher = fetch.NewFetcher(g.cacheDir)
	o.Fetcher.Log = o.Log
	for _, path := range f.keyrings {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			// A directory of keyrings, as mmdebstrap passes one to apt.
			ks, err := keyring.LoadDir(path)
			if err != nil {
				return o, usageErr("--keyring: %w", err)
			}
			o.Keyrings = append(o.Keyrings, ks...)
			continue
		}
		k, err := keyring.Load(path)
		if err != nil {
			return o, usageErr("--keyring: %w", err)
		}
		o.Keyrings = append(o.Keyrings, k)
	}
	return o, nil
}

func newResolveCmd(g *globals) *cobra.Command {
	var af aptFlags
	var asJSON bool
	var lock string
	cmd := &cobra.Command{
		Use:   "resolve [flags] SUITE [MIRROR...]",
		Short: "Choose the packages of a root filesystem, as apt would",
		Long: `Resolve fetches and verifies the suite's InRelease against the bundled
keyrings, reads its Packages indices and selects the packages of the variant,
the way mmdebstrap and apt do. It prints each package with its version,
architecture and download size.

MIRROR is a URL (http://HOST/debian, http://HOST/ubuntu), a "deb URL SUITE
COMPONENT..." line, a sources.list file (one-line or deb822 .sources), or -
for one on stdin; with a file or -, SUITE may be "" (the first entry's). Without one, the mirror comes from $NROOT_MIRROR or the
host's APT sources. With one URL, or none, the suite's -updates and -security
suites are added for Debian and Ubuntu, and a missing one is an error unless
--no-updates or --no-security says to leave it out. Source lines are used
exactly as given. An Ubuntu suite asked of a Debian mirror, or the reverse,
stops with a line that says so.

Stricter than apt: a Release without SHA256 sums, or text outside the signed
part of InRelease, is refused.`,
		Example: `  nroot resolve stable
  nroot resolve --variant=minbase --include=openssh-server trixie
  nroot resolve --lock trixie.lock --json trixie http://MIRROR/debian
  nroot resolve --variant=minbase noble http://MIRROR/ubuntu
  NROOT_MIRROR=http://MIRROR/ubuntu nroot resolve --components=main,universe noble`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "" || len(args) < 2 { // else the sources name it
				if err := checkSuite(args[0], cmd); err != nil {
					return err
				}
			}
			cfg, err := af.config(args[0], args[1:])
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return usageErr("%w", err)
			}
			if err := checkOutputDir("--lock", lock); err != nil {
				return err
			}
			o, err := af.options(g)
			if err != nil {
				return err
			}
			plan, err := apt.Resolve(cmd.Context(), cfg, o)
			if err != nil {
				return err
			}
			if lock != "" {
				if err := writeLockFile(lock, plan); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(plan)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PACKAGE\tVERSION\tARCH\tSIZE")
			for _, p := range plan.Packages {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.Name, p.Version, p.Architecture, p.Size)
			}
			fmt.Fprintf(tw, "\n%d packages, %s to download (%s %s, %s)\n", len(plan.Packages), progress.Bytes(plan.TotalSize), plan.Codename, plan.Variant, strings.Join(plan.Architectures, ","))
			return tw.Flush()
		},
	}
	af.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (the lockfile format)")
	cmd.Flags().StringVar(&lock, "lock", "", "write the plan to this lockfile")
	return cmd
}

// suiteName is what a SUITE argument may be: a name as the archive's
// dists/ has it (stable, trixie, bookworm-backports, noble).
var suiteName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,99}$`)

// checkSuite refuses, before any work or network access, a SUITE that is
// no suite's name: a path or URL there is a TARGET or MIRROR given first
// (nroot bootstrap ./out bookworm), which would otherwise be asked of the
// mirror as dists/./out/InRelease.
func checkSuite(suite string, cmd *cobra.Command) error {
	if suiteName.MatchString(suite) {
		return nil
	}
	why := "give a suite (e.g. stable, trixie, noble)"
	if suite != "" {
		why = "a suite is a plain name such as stable, trixie or noble, not a path or URL; give SUITE first"
	}
	return usageErr("%w; usage: %s", &usage.Error{Option: "SUITE", Value: suite, Why: why}, cmd.UseLine())
}

func writeLockFile(path string, plan *lockfile.Plan) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("lockfile %s: %w", path, err)
	}
	defer f.Abort()
	if err := lockfile.Write(f, plan); err != nil {
		return fmt.Errorf("lockfile %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("lockfile %s: %w", path, err)
	}
	return nil
}

// checkOutputDir refuses, before any work, an output file whose directory
// does not exist.
func checkOutputDir(flag, path string) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageErr("%s %s: the directory %s does not exist", flag, path, dir)
	}
	return nil
}
