//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"nroot/build/apt"
	"nroot/build/lockfile"
	"nroot/build/rootfs"
	"nroot/internal/progress"
)

func newBootstrapCmd(g *globals) *cobra.Command {
	var af aptFlags
	var cf customFlags
	var mf compatFlags
	var asJSON bool
	var lock, fromLock, format, logPath, mode string
	var jobs int
	cmd := &cobra.Command{
		Use:   "bootstrap [flags] SUITE TARGET [MIRROR...] | --from-lock FILE TARGET",
		Short: "Build a Debian or Ubuntu root filesystem, as mmdebstrap does",
		Long: `Bootstrap resolves the variant's packages (or replays --from-lock), downloads
them in parallel into the shared cache, checks each against its signed SHA256,
unpacks them in Go as they arrive, writes the dpkg database, and runs the
maintainer scripts inside systemd-nspawn with service starts forbidden and
dpkg's fsyncs suppressed; the finished tree is synced to disk once. The result gets deb822
APT sources with codenames and a Signed-By keyring, and an uninitialized
/etc/machine-id.

The build happens in a temporary directory beside TARGET, renamed into place
at the end: a failure or Ctrl-C leaves TARGET untouched. An existing empty
TARGET directory, or one holding only lost+found (a new filesystem's mount
point), is built into: the tree is made in a hidden directory inside it and
moved up at the end. TARGET /dev/null keeps nothing (the hooks still run);
TARGET - writes a tarball to standard output, and the summary to stderr;
as in mmdebstrap, a missing TARGET is -, and with no SUITE either the
sources are read from stdin (nroot bootstrap < sources.list > node.tar).

mmdebstrap's spellings are taken: long options abbreviated to uniqueness
(--comp), --format=directory, -d/--debug, -s/--silent, --dry-run and
--simulate, and debootstrap's no-op options (--resolve-deps,
--merged-usr, --no-merged-usr, --force-check-gpg), which are ignored.

Without root (--mode=unshare, the default then), nroot builds as root of a
user namespace whose IDs are yours and your range in /etc/subuid and
/etc/subgid (newuidmap, package uidmap), as mmdebstrap's unshare mode:
files get their true owners, and --format=tar carries them and /dev's
nodes.

Where nroot differs from mmdebstrap: no host apt, dpkg or keyring package is
needed; bookworm gets merged-/usr symlinks and usr-is-merged (mmdebstrap's
merged-usr hook) instead of usrmerge; the host's resolv.conf and hostname are
not copied into the image.

--format=squashfs or erofs (or a TARGET named .squashfs, .sqfs, .erofs)
writes the root as one image file with Debian's mksquashfs or mkfs.erofs
(see nroot fsimage); with SOURCE_DATE_EPOCH and --from-lock, two builds are
byte-identical.`,
		Example: `  nroot bootstrap stable ./node
  nroot bootstrap --variant=minbase --include=openssh-server trixie ./node
  nroot bootstrap --lock node.lock bookworm node.tar.zst
  nroot bootstrap --mode=unshare --variant=minbase bookworm node.tar   # as any user with /etc/subuid
  nroot bootstrap --variant=minbase noble ./node http://MIRROR/ubuntu
  nroot bootstrap --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' bookworm ./node
  nroot bootstrap --customize-hook='echo node > "$1/etc/hostname"' --customize-hook='upload ./motd /etc/motd' bookworm ./node
  SOURCE_DATE_EPOCH=1700000000 nroot bootstrap --from-lock node.lock --format=tar node.tar
  SOURCE_DATE_EPOCH=1700000000 nroot bootstrap --from-lock node.lock node.squashfs`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				// --from-lock TARGET: the lock names the suite. As in
				// mmdebstrap, no TARGET is -, and no SUITE either reads
				// the sources from stdin.
				return nil
			}
			return cobra.MinimumNArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case fromLock != "" && len(args) == 1:
				args = []string{"", args[0]}
			case fromLock != "" && len(args) == 0:
				return usageErr("--from-lock %s: give TARGET; usage: %s", fromLock, cmd.UseLine())
			case len(args) == 0:
				args = []string{"", rootfs.Stdout, "-"}
			case len(args) == 1:
				args = []string{args[0], rootfs.Stdout}
			}
			if (fromLock == "" || args[0] != "") && (args[0] != "" || len(args) < 3) {
				// The lock names the suite, or, for an empty SUITE, the
				// sources given as MIRROR do.
				if err := checkSuite(args[0], cmd); err != nil {
					return err
				}
			}
			mf.apply(g)
			if args[1] == rootfs.Stdout && !mf.dryRun && progress.IsTerminal(os.Stdout) {
				return usageErr("TARGET - writes a tarball to standard output, which is a terminal; redirect it (> node.tar) or give TARGET")
			}
			if asJSON && args[1] == rootfs.Stdout {
				return usageErr("--json and TARGET - both write to standard output; give one")
			}
			if done, err := enterMode(mode); done || err != nil {
				return err
			}
			cfg, err := af.config(args[0], args[2:])
			if err != nil {
				return err
			}
			if fromLock == "" {
				if err := cfg.Validate(); err != nil {
					return usageErr("%w", err)
				}
			}
			if args[1] == rootfs.Stdout && (format == "auto" || format == "") && stdoutIsDevNull() {
				format = "null" // as mmdebstrap: nothing would keep the tarball
			}
			f, err := rootfs.FormatFor(args[1], format)
			if err != nil {
				return usageErr("%w", err)
			}
			format = f
			if jobs < 1 {
				return usageErr("--jobs %d: give at least 1", jobs)
			}
			if err := checkOutputDir("--lock", lock); err != nil {
				return err
			}
			if logPath != "" {
				if err := checkOutputDir("--log", logPath); err != nil {
					return err
				}
				lf, err := os.Create(logPath)
				if err != nil {
					return usageErr("--log: %w", err)
				}
				defer lf.Close()
				g.logFile = lf
			}
			o, err := af.options(g)
			if err != nil {
				return err
			}
			if noValidUntil(cf.aptopts) {
				o.NoCheckValidUntil = true // as apt, which mmdebstrap runs, reads it
			}
			mf.logNoops(o.Log)
			// With TARGET -, standard output carries the tarball alone.
			var stdout io.Writer = os.Stdout
			if args[1] == rootfs.Stdout {
				stdout = os.Stderr
				// A reader that stops early (| head) makes the write
				// fail, so the build directory is removed, rather than
				// killing nroot with SIGPIPE and leaving it behind.
				signal.Ignore(syscall.SIGPIPE)
			}
			bo := rootfs.Options{Config: cfg, Apt: o, Format: format, Jobs: jobs, Progress: os.Stderr, Log: o.Log, Stdout: os.Stdout}
			cf.apply(&bo)
			hookRun(&bo, g, mode, mf.debug)
			if g.quiet {
				bo.Progress = nil
			}
			if bo.SourceDateEpoch, err = sourceDateEpoch(); err != nil {
				return err
			}
			if fromLock != "" {
				f, err := os.Open(fromLock)
				if err != nil {
					return usageErr("--from-lock: %w", err)
				}
				bo.FromLock, err = lockfile.Read(f, fromLock)
				f.Close()
				if err != nil {
					return usageErr("--from-lock: %w", err)
				}
				if s := args[0]; s != "" && s != bo.FromLock.Suite && s != bo.FromLock.Codename {
					return fmt.Errorf("lockfile %s is for %s, not %s", fromLock, bo.FromLock.Codename, s)
				}
			}
			if mf.dryRun {
				if err := rootfs.CheckOptions(bo); err != nil {
					return customErr(err)
				}
				if len(bo.Hooks) > 0 {
					o.Log.Warn("dry run: the hooks are not run")
				}
				plan := bo.FromLock
				if plan == nil {
					if plan, err = apt.Resolve(cmd.Context(), cfg, o); err != nil {
						return err
					}
				}
				if asJSON {
					return printJSON(plan)
				}
				printDryRun(stdout, args[1], plan)
				return nil
			}
			res, err := rootfs.Bootstrap(cmd.Context(), args[1], bo)
			if err != nil {
				return customErr(err)
			}
			if lock != "" {
				if err := writeLockFile(lock, res.Plan); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(res)
			}
			fmt.Fprintf(stdout, "%s: %s %s, %d packages, %s\n", res.Target, res.Plan.Codename, res.Plan.Variant, len(res.Plan.Packages), res.Format)
			if res.Filtered != nil {
				fmt.Fprintf(stdout, "path filters left out %d entries, %d bytes\n", res.Filtered.Entries, res.Filtered.Bytes)
			}
			if res.Note != "" {
				fmt.Fprintln(stdout, "note:", res.Note)
			}
			return nil
		},
	}
	af.register(cmd)
	cf.register(cmd)
	mf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result (plan, timings) as JSON")
	cmd.Flags().StringVar(&lock, "lock", "", "write the plan used to this lockfile")
	cmd.Flags().StringVar(&fromLock, "from-lock", "", "build exactly the packages of this lockfile, resolving nothing")
	cmd.Flags().StringVar(&format, "format", "auto", "output: directory (dir), tar, tar.gz, tar.zst, tar.xz and the other tarballs mmdebstrap names, squashfs, erofs, or null (build, run the hooks, keep nothing); auto (the default) takes it from TARGET's name as mmdebstrap does: /dev/null is null, - a tarball on stdout")
	cmd.Flags().IntVar(&jobs, "jobs", 8, "parallel downloads")
	cmd.Flags().StringVar(&mode, "mode", "auto", "root, or unshare: build as root of a user namespace mapped to your subordinate IDs (/etc/subuid, /etc/subgid), without root on the host; auto (the default) is root for root and unshare otherwise")
	cmd.Flags().StringVar(&logPath, "log", "", "write the stage lines and the maintainer scripts' output to FILE; stderr then shows the stages alone (mmdebstrap's --logfile)")
	cmd.Flags().StringVar(&logPath, "logfile", "", "the same as --log, as mmdebstrap spells it")
	return cmd
}

// stdoutIsDevNull says standard output is /dev/null (character device
// 1:3 on Linux), as mmdebstrap checks for TARGET -.
func stdoutIsDevNull() bool {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(os.Stdout.Fd()), &st); err != nil {
		return false
	}
	return st.Mode&syscall.S_IFMT == syscall.S_IFCHR && st.Rdev == 1<<8|3
}
