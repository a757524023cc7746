//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"nroot/build/nspawn"
	"nroot/internal/fetch"
)

// runnerFlags are the flags of the commands that enter an image.
type runnerFlags struct {
	noDNS   bool
	chroot  bool
	binds   []string
	noCache bool
}

func (f *runnerFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.noDNS, "no-dns", false, "do not give the image the host's resolvers for the duration")
	cmd.Flags().BoolVar(&f.chroot, "chroot", false, "use chroot (in a private mount namespace) even if systemd-nspawn exists")
	cmd.Flags().StringArrayVar(&f.binds, "bind", nil, "bind-mount SRC:DST into the image; repeatable")
	cmd.Flags().BoolVar(&f.noCache, "no-package-cache", false, "do not bind nroot's apt package cache over /var/cache/apt/archives")
}

func (f *runnerFlags) runner(g *globals, root string) (*nspawn.Runner, error) {
	r, err := nspawn.New(root)
	if err != nil {
		return nil, err
	}
	r.DNS, r.Chroot, r.Binds = !f.noDNS, f.chroot, append(r.Binds, f.binds...)
	if !f.noCache {
		dir := g.cacheDir
		if dir == "" {
			dir = fetch.DefaultCacheDir()
		}
		if err := r.BindPackageCache(filepath.Join(dir, "apt-archives")); err != nil {
			return nil, err
		}
	}
	g.logger().Debug("runner", "kind", r.Name(), "root", root)
	return r, nil
}

// passStatus turns a command's failure inside the image into nroot's
// exit status.
func passStatus(err error) error {
	var ee *nspawn.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.Status, err: fmt.Errorf("%s exited with status %d", ee.Argv[0], ee.Status)}
	}
	return err
}

func newRunCmd(g *globals) *cobra.Command {
	var rf runnerFlags
	cmd := &cobra.Command{
		Use:   "run ROOT -- COMMAND [ARG...]",
		Short: "Run a command inside an image, passing its exit status through",
		Long: `Run runs a command inside ROOT with systemd-nspawn (chroot in a private mount
namespace when nspawn is missing), with the host's resolvers for the duration:
the image's own /etc/resolv.conf, a file or a symlink, is put back afterwards.`,
		Example: `  nroot run ./node -- apt-get update
  nroot run ./node -- sh -c 'dpkg -l | wc -l'`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.runner(g, args[0])
			if err != nil {
				return err
			}
			r.Stdin, r.Stdout, r.Stderr = os.Stdin, os.Stdout, os.Stderr
			return passStatus(r.Run(cmd.Context(), args[1:]...))
		},
	}
	rf.register(cmd)
	return cmd
}

func newShellCmd(g *globals) *cobra.Command {
	var rf runnerFlags
	cmd := &cobra.Command{
		Use:   "shell ROOT [COMMAND...]",
		Short: "Open an interactive shell inside an image",
		Long: `Shell opens bash (or sh) inside ROOT on this terminal, or runs COMMAND
interactively, in systemd-nspawn (or a chroot in a private mount namespace
with --chroot), with the host's resolvers for the duration and the image's
own apt package cache. The image's resolv.conf is put back afterwards,
unless the shell replaced it.`,
		Example: `  nroot shell ./node`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := rf.runner(g, args[0])
			if err != nil {
				return err
			}
			r.Stdin, r.Stdout, r.Stderr = os.Stdin, os.Stdout, os.Stderr
			return passStatus(r.Shell(cmd.Context(), args[1:]...))
		},
	}
	rf.register(cmd)
	return cmd
}

func newBootCmd(g *globals) *cobra.Command {
	var rf runnerFlags
	cmd := &cobra.Command{
		Use:   "boot ROOT",
		Short: "Boot an image's init as a container, to try it",
		Long: `Boot runs systemd-nspawn --boot on ROOT (the seed's systemd-nspawn -D ROOT
/sbin/init): the image's own init starts its units, and the console is yours
until the container powers off (press ^] three times to leave).`,
		Example: `  nroot boot ./node`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rf.noDNS = true
			r, err := rf.runner(g, args[0])
			if err != nil {
				return err
			}
			r.Stdin, r.Stdout, r.Stderr = os.Stdin, os.Stdout, os.Stderr
			return passStatus(r.Boot(cmd.Context()))
		},
	}
	rf.register(cmd)
	return cmd
}
