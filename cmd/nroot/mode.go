//go:build linux

package main

import (
	"fmt"
	"os"

	"nroot/build/userns"
)

// enterMode runs the rest of the command as --mode says: in this process
// (root), or in a new user namespace where nroot runs again with the
// same arguments and its exit status becomes this process's (unshare).
// It returns done when the command ran there, and nothing is left to do
// here.
func enterMode(mode string) (done bool, err error) {
	switch mode {
	case "auto":
		if os.Geteuid() == 0 {
			return false, nil
		}
	case "root":
		if os.Geteuid() != 0 {
			return false, usageErr("--mode=root: nroot runs as uid %d, not root; run it as root, or give --mode=unshare (the default without root)", os.Geteuid())
		}
		return false, nil
	case "unshare":
		if os.Geteuid() == 0 && !userns.Inside() {
			// As mmdebstrap: root needs no user namespace, nor a
			// subordinate ID range; the build runs in namespaces of
			// its own (nspawn's or the chroot runner's) anyway.
			return false, nil
		}
	case "sudo", "fakeroot", "fakechroot", "chrootless":
		return false, usageErr("--mode=%s is not supported: nroot builds as root (--mode=root) or, without root, as root of a user namespace (--mode=unshare)", mode)
	default:
		return false, usageErr("--mode %q: one of auto, root, unshare", mode)
	}
	if userns.Started() {
		return false, nil
	}
	m, err := userns.CallerMaps()
	if err != nil {
		return false, fmt.Errorf("--mode=unshare: %w; give the user a range of 65536 IDs in /etc/subuid and /etc/subgid (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER)", err)
	}
	code, err := userns.Reexec(m)
	if err != nil {
		return false, fmt.Errorf("--mode=unshare: %w", err)
	}
	if code == 0 {
		return true, nil
	}
	return true, &exitError{code: code, err: fmt.Errorf("exit status %d", code), reported: true}
}
