//go:build !linux

package main

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// ErrNeedsLinux is the error of a command run on a system it does not
// work on.
var ErrNeedsLinux = errors.New("needs Linux")

// linuxCommands stand in for the Linux commands here: each says, in one
// line, that it needs Linux, and exits 1.
func linuxCommands(*globals) []*cobra.Command {
	var cmds []*cobra.Command
	for _, c := range linuxOnly {
		c := c
		cmds = append(cmds, &cobra.Command{
			Use:                c.name,
			Short:              fmt.Sprintf("(Linux only: %s)", c.needs),
			DisableFlagParsing: true,
			RunE: func(*cobra.Command, []string) error {
				return fmt.Errorf("nroot %s %w (%s), and this is %s/%s; run it on a Linux host", c.name, ErrNeedsLinux, c.needs, runtime.GOOS, runtime.GOARCH)
			},
		})
	}
	return cmds
}

// runHelpers: nroot starts itself as a helper on Linux alone.
func runHelpers() {}

// isLinuxUsage: the Linux commands' usage errors do not arise here.
func isLinuxUsage(error) bool { return false }

// linuxCompletions: the Linux commands' flags are not here.
var linuxCompletions = map[string][]string{}
