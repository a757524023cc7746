//go:build linux

package main

import (
	"errors"

	"github.com/spf13/cobra"

	"nroot/build/nspawn"
	"nroot/build/rootfs"
	"nroot/build/userns"
	"nroot/serve/pxe"
)

// linuxCommands are the commands that need Linux: user namespaces,
// openat2 roots, systemd-nspawn, device nodes and mounts
// (commands_other.go names them elsewhere).
func linuxCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newBootstrapCmd(g), newConfigureCmd(g), newNodeCmd(g), newExportCmd(g), newRunCmd(g), newShellCmd(g), newBootCmd(g), newIdentityCmd(g), newImageCmd(g), newPXECmd(g), newFSImageCmd(g), newStatusCmd(g)}
}

// runHelpers becomes the helper nroot started itself as, if it was.
func runHelpers() {
	userns.RunHelper() // when nroot was started in a new user namespace
	nspawn.RunHelper() // when nroot was started as its own chroot runner
}

// isLinuxUsage reports the usage errors of the Linux commands.
func isLinuxUsage(err error) bool { return errors.Is(err, pxe.ErrPinned) }

// linuxCompletions are the values of the Linux commands' flags.
var linuxCompletions = map[string][]string{"format": append([]string{"auto"}, rootfs.Formats...)}
