// Command nroot builds and checks root filesystems for diskless Linux
// clusters. Each subcommand parses its flags and makes one library call.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"nroot/internal/usage"
	"nroot/serve/inventory"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"nroot/internal/progress"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
	// reported: the error was printed already, by nroot run again in a
	// user namespace.
	reported bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitUsage is the exit status of a usage error (a bad flag, argument or
// URL), as sysexits.h has it: distinct from 1 (a check failed) and from
// nroot check's 2 (the server cannot be reached).
const exitUsage = 64

// exitInterrupted is the status after Ctrl-C (128 + SIGINT), as a shell
// gives a command SIGINT ended.
const exitInterrupted = 130

// usageErr reports a usage error: it names the flag or argument and says
// what to give instead.
func usageErr(format string, a ...any) error { return usage.Errorf(format, a...) }

// usageArgs makes a cobra argument validator's complaint a usage error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			if usage.Is(err) {
				return err // said already, once
			}
			return usage.Errorf("%w; usage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

func main() {
	runHelpers()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	args, err := expandAbbrev(root, os.Args[1:])
	if err == nil {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
	}
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.reported {
		os.Exit(ee.code)
	}
	code := exitCode(ctx, err)
	if code == exitInterrupted {
		// Ctrl-C or SIGTERM: said as such, whichever step it broke.
		fmt.Fprintln(os.Stderr, "nroot: interrupted:", err)
	} else {
		fmt.Fprintln(os.Stderr, "nroot:", err)
	}
	os.Exit(code)
}

// exitCode is the one place an error becomes an exit status: 130 after
// Ctrl-C or SIGTERM (a shell's status for a death by SIGINT), 64 for a
// usage error (a flag, an argument, or a file the user wrote, such as
// the inventory), a command's own status (exitError: nroot check's 2,
// nroot run's child's), and 1 for everything else.
func exitCode(ctx context.Context, err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, ctx.Err())):
		return exitInterrupted
	case errors.As(err, &ee):
		return ee.code
	case usage.Is(err), errors.Is(err, inventory.ErrSyntax), isLinuxUsage(err):
		return exitUsage
	}
	return 1
}

type globals struct {
	cacheDir string
	verbose  bool
	quiet    bool
	// cpuProfile: write a pprof CPU profile of this run to the file.
	cpuProfile string
	logFile    io.Writer // --log: the whole log, programs' output included, goes here too
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	if g.quiet {
		level = slog.LevelWarn
	}
	h := progress.NewHandler(os.Stderr, level)
	if g.logFile == nil {
		return slog.New(h)
	}
	// The file keeps everything, programs' output included, whatever -q
	// or -v say; stderr keeps the stage lines.
	return slog.New(slog.NewMultiHandler(h.StagesOnly(), progress.NewHandler(g.logFile, slog.LevelDebug)))
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "nroot",
		Short: "Build, check and serve root filesystems for diskless Linux clusters",
		Long: `nroot builds a Debian or Ubuntu root filesystem for diskless nodes without
apt, dpkg or debootstrap on the host, turns it into a bootable node image and
checks the NFS export it is served from.

The mirror comes from the command line, then $NROOT_MIRROR, then the host's
APT sources. Downloads are cached in $XDG_CACHE_HOME/nroot.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.cacheDir, "cache-dir", "", "download cache (default $XDG_CACHE_HOME/nroot)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log more detail to stderr")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "log only warnings and errors")
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of this nroot process (not of the programs it runs) to `FILE`, for go tool pprof")
	root.AddCommand(newResolveCmd(g), newKeyringCmd(g), newMirrorCmd(g), newInitrdCmd(g), newCheckCmd(g), newStormCmd(g), newVersionCmd())
	root.AddCommand(linuxCommands(g)...)
	root.AddCommand(newManCmd(root))
	registerCompletions(root)
	root.Version = version().String()
	root.SetVersionTemplate("nroot {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usage.Errorf("%w; see %s --help", err, cmd.CommandPath())
	})
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.quiet && g.verbose {
			return usageErr("-q and -v contradict each other; give one")
		}
		return startProfile(g.cpuProfile)
	}
	walkCommands(root, func(c *cobra.Command) {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
		// A command that only groups others: nothing to run, and an
		// unknown word after it is an error, not a cue for help.
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usageErr("unknown command %q for %q; the commands are: %s", args[0], cmd.CommandPath(), subNames(cmd))
				}
				return nil
			}
			c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
		}
	})
	return root
}

func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}

func subNames(c *cobra.Command) string {
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return strings.Join(names, ", ")
}
