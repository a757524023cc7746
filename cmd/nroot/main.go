// Command nroot builds and checks root filesystems for diskless Linux
// clusters. Each subcommand parses its flags and makes one library call.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "nroot:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

type globals struct {
	cacheDir string
	verbose  bool
	quiet    bool
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	if g.quiet {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
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
	root.AddCommand(newResolveCmd(g), newBootstrapCmd(g), newConfigureCmd(g), newKeyringCmd(g), newMirrorCmd(g), newInitrdCmd(g), newNodeCmd(g), newCheckCmd(g), newExportCmd(g), newRunCmd(g), newShellCmd(g), newBootCmd(g))
	return root
}
